%%cpp my_step
// learner bug: forgot zero_grad: gradient buffers kept across calls (static) and never zeroed
#include <stdexcept>
#include <vector>
#include "kernels.h"

// One SGD step of x[B,C] -> dense(W1[H,C], b1) -> relu -> dense(W2[V,H], b2) -> mean CE.
// Updates W1, b1, W2, b2 in place; returns the mean loss before the update.
float train_step(float* W1, float* b1, float* W2, float* b2, const float* x, const int* y,
                 int B, int C, int H, int V, float lr) {
    // BEGIN SOLUTION
    std::vector<float> h(B * H), a(B * H), logits(B * V), probs(B * V), losses(B);
    dense_forward(h.data(), x, W1, b1, B, C, H);
    relu_forward(a.data(), h.data(), B * H);
    dense_forward(logits.data(), a.data(), W2, b2, B, H, V);
    softmax_cross_entropy_forward(losses.data(), probs.data(), logits.data(), y, B, V);
    float loss = 0.0f;
    for (int b = 0; b < B; b++) {
        loss += losses[b] / B;
    }
    std::vector<float> dlosses(B, 1.0f / B), dlogits(B * V), da(B * H), dh(B * H);
    static std::vector<float> dW1(H * C), db1(H), dW2(V * H), db2(V);
    softmax_cross_entropy_backward(dlogits.data(), dlosses.data(), probs.data(), y, B, V);
    dense_backward(da.data(), dW2.data(), db2.data(), dlogits.data(), a.data(), W2, B, H, V);
    relu_backward(dh.data(), da.data(), h.data(), B * H);
    dense_backward(nullptr, dW1.data(), db1.data(), dh.data(), x, W1, B, C, H);
    sgd_update(W1, nullptr, dW1.data(), H * C, lr, 0.0f, 0.0f);
    sgd_update(b1, nullptr, db1.data(), H, lr, 0.0f, 0.0f);
    sgd_update(W2, nullptr, dW2.data(), V * H, lr, 0.0f, 0.0f);
    sgd_update(b2, nullptr, db2.data(), V, lr, 0.0f, 0.0f);
    return loss;
    // END SOLUTION
}
