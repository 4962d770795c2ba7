// optim.h: in-place optimizer steps over N parameters, equal to PyTorch's single-tensor updates.
// sgd_update   = torch.optim.SGD(lr, momentum, weight_decay), no dampening, no Nesterov:
//   g = grad + weight_decay * param;  velocity = momentum * velocity + g;  param -= lr * velocity
//   (velocity starts at zero; it may be nullptr when momentum == 0)
// adamw_update = torch.optim.AdamW(lr, (beta1, beta2), eps, weight_decay), t counts from 1:
//   param *= 1 - lr * weight_decay   (decoupled decay, not added to the gradient)
//   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2   (m, v start at zero)
//   param -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// Checked step by step against torch.optim (tests/test_kernels.py).
#pragma once

#include "common.h"

COURSE_KERNEL void sgd_update(float* param, float* velocity, const float* grad, int N, float lr,
                              float momentum, float weight_decay) {
    course_require(param && grad && N > 0, "sgd_update", "param and grad required, N > 0");
    course_require(velocity || momentum == 0.0f, "sgd_update",
                   "velocity may be nullptr only when momentum == 0");
    for (int i = 0; i < N; i++) {
        float g = grad[i] + weight_decay * param[i];
        if (momentum != 0.0f) {
            velocity[i] = momentum * velocity[i] + g;
            g = velocity[i];
        }
        param[i] -= lr * g;
    }
}

COURSE_KERNEL void adamw_update(float* param, float* m, float* v, const float* grad, int N,
                                float lr, float beta1, float beta2, float eps,
                                float weight_decay, int t) {
    course_require(param && m && v && grad && N > 0, "adamw_update",
                   "param, m, v and grad required, N > 0");
    course_require(t >= 1, "adamw_update", "t is the step number and counts from 1");
    // bias corrections undo the zero start of m and v; computed in double like PyTorch's Python
    const float step_size = static_cast<float>(lr / (1.0 - std::pow(double(beta1), t)));
    const float bias_correction2_sqrt =
        static_cast<float>(std::sqrt(1.0 - std::pow(double(beta2), t)));
    const float decay = 1.0f - lr * weight_decay;
    for (int i = 0; i < N; i++) {
        const float g = grad[i];
        param[i] *= decay;
        m[i] += (1.0f - beta1) * (g - m[i]);
        v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
        const float denom = std::sqrt(v[i]) / bias_correction2_sqrt + eps;
        param[i] -= step_size * m[i] / denom;
    }
}
