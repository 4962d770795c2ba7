%%cpp my_ce
// learner bug: wrong sign: onehot - probs instead of probs - onehot
#include <stdexcept>

// dlogits[b,v] += dlosses[b] * (probs[b,v] - [v == targets[b]])
void softmax_cross_entropy_backward(float* dlogits, const float* dlosses, const float* probs,
                                    const int* targets, int B, int V) {
    // BEGIN SOLUTION
    for (int b = 0; b < B; b++) {
        for (int v = 0; v < V; v++) {
            const float indicator = v == targets[b] ? 1.0f : 0.0f;
            dlogits[b * V + v] += dlosses[b] * (indicator - probs[b * V + v]);
        }
    }
    // END SOLUTION
}
