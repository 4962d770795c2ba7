// softmax_cross_entropy.h: softmax over V classes fused with the cross-entropy loss,
// as torch.nn.functional.cross_entropy(logits, targets, reduction="none").
//   probs[b,:] = softmax(logits[b,:]);  losses[b] = logsumexp(logits[b,:]) - logits[b, targets[b]]
// Shapes: B batch, V classes; targets int32 in [0, V). The forward subtracts the row maximum, so
// huge logits neither overflow nor give NaN. The backward uses the saved probs:
//   dlogits[b,v] += dlosses[b] * (probs[b,v] - [v == targets[b]])
// For a mean loss pass dlosses[b] = 1/B. Checked against torch float64 (tests/test_kernels.py).
#pragma once

#include "common.h"

COURSE_KERNEL void softmax_cross_entropy_check_target(int target, int b, int V,
                                                      const char* kernel) {
    if (target < 0 || target >= V) {
        throw std::invalid_argument(std::string(kernel) + ": targets[" + std::to_string(b) +
                                    "] = " + std::to_string(target) + " is outside [0, " +
                                    std::to_string(V) + "); targets must be class indices");
    }
}

COURSE_KERNEL void softmax_cross_entropy_forward(float* losses, float* probs, const float* logits,
                                                 const int* targets, int B, int V) {
    const char* name = "softmax_cross_entropy_forward";
    course_require(losses && probs && logits && targets, name,
                   "losses, probs, logits and targets are required");
    course_require(B > 0 && V > 0, name, "B and V must be positive");
    for (int b = 0; b < B; b++) {
        const float* logits_b = logits + static_cast<size_t>(b) * V;
        float* probs_b = probs + static_cast<size_t>(b) * V;
        const int target = targets[b];
        softmax_cross_entropy_check_target(target, b, V, name);
        // shift by the row maximum: exp() then sees values <= 0 and cannot overflow
        float maxval = logits_b[0];
        for (int v = 1; v < V; v++) {
            maxval = logits_b[v] > maxval ? logits_b[v] : maxval;
        }
        float sum = 0.0f;
        for (int v = 0; v < V; v++) {
            probs_b[v] = std::exp(logits_b[v] - maxval);
            sum += probs_b[v];
        }
        const float inv_sum = 1.0f / sum;
        for (int v = 0; v < V; v++) {
            probs_b[v] *= inv_sum;
        }
        // loss from log-sum-exp, not log(prob), so a tiny probability gives a finite loss
        losses[b] = std::log(sum) - (logits_b[target] - maxval);
    }
}

COURSE_KERNEL void softmax_cross_entropy_backward(float* dlogits, const float* dlosses,
                                                  const float* probs, const int* targets,
                                                  int B, int V) {
    const char* name = "softmax_cross_entropy_backward";
    course_require(dlogits && dlosses && probs && targets, name,
                   "dlogits, dlosses, probs and targets are required");
    course_require(B > 0 && V > 0, name, "B and V must be positive");
    for (int b = 0; b < B; b++) {
        float* dlogits_b = dlogits + static_cast<size_t>(b) * V;
        const float* probs_b = probs + static_cast<size_t>(b) * V;
        const float dloss = dlosses[b];
        const int target = targets[b];
        softmax_cross_entropy_check_target(target, b, V, name);
        for (int v = 0; v < V; v++) {
            dlogits_b[v] += dloss * probs_b[v];
        }
        dlogits_b[target] -= dloss;
    }
}
