%%cpp my_adamw
// learner bug: Adam with L2 (weight decay added to the gradient), not AdamW's decoupled decay
#include <cmath>
#include <stdexcept>

// one torch.optim.AdamW step over N parameters; t counts from 1
void adamw_update(float* param, float* m, float* v, const float* grad, int N, float lr,
                  float beta1, float beta2, float eps, float weight_decay, int t) {
    // BEGIN SOLUTION
    const float bias_correction1 = 1.0f - std::pow(beta1, t);
    const float bias_correction2 = 1.0f - std::pow(beta2, t);
    for (int i = 0; i < N; i++) {
        const float g = grad[i] + weight_decay * param[i];
        m[i] = beta1 * m[i] + (1.0f - beta1) * g;
        v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
        const float denom = std::sqrt(v[i]) / std::sqrt(bias_correction2) + eps;
        param[i] -= lr / bias_correction1 * m[i] / denom;
    }
    // END SOLUTION
}
