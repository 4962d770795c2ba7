%%cpp my_adamw
// learner bug: forgot the bias corrections 1 - beta^t
#include <cmath>
#include <stdexcept>

// one torch.optim.AdamW step over N parameters; t counts from 1
void adamw_update(float* param, float* m, float* v, const float* grad, int N, float lr,
                  float beta1, float beta2, float eps, float weight_decay, int t) {
    // BEGIN SOLUTION
    for (int i = 0; i < N; i++) {
        param[i] *= 1.0f - lr * weight_decay;
        m[i] = beta1 * m[i] + (1.0f - beta1) * grad[i];
        v[i] = beta2 * v[i] + (1.0f - beta2) * grad[i] * grad[i];
        param[i] -= lr * m[i] / (std::sqrt(v[i]) + eps);
    }
    // END SOLUTION
}
