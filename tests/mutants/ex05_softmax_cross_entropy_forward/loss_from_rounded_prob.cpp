%%cpp my_ce
// learner bug: loss = -log(prob) after the max shift; a probability that rounds to 0 gives inf
#include <algorithm>
#include <cmath>
#include <stdexcept>

// probs[b,:] = softmax(logits[b,:]);  losses[b] = -log probs[b, targets[b]]
void softmax_cross_entropy_forward(float* losses, float* probs, const float* logits,
                                   const int* targets, int B, int V) {
    // BEGIN SOLUTION
    for (int b = 0; b < B; b++) {
        const float* z = logits + b * V;
        float* p = probs + b * V;
        float maxval = z[0];
        for (int v = 1; v < V; v++) {
            maxval = std::max(maxval, z[v]);
        }
        float sum = 0.0f;
        for (int v = 0; v < V; v++) {
            p[v] = std::exp(z[v] - maxval);
            sum += p[v];
        }
        for (int v = 0; v < V; v++) {
            p[v] /= sum;
        }
        losses[b] = -std::log(p[targets[b]]);
    }
    // END SOLUTION
}
