%%cpp predict
// learner bug: reads the logits column-major (logits[v * B + b]) instead of row-major
#include <stdexcept>

// out[b] = index of the largest logits[b, v]; the first one on ties
void argmax_rows(int* out, const float* logits, int B, int V) {
    // BEGIN SOLUTION
    for (int b = 0; b < B; ++b) {
        int best = 0;
        for (int v = 1; v < V; ++v) {
            if (logits[v * B + b] > logits[best * B + b]) best = v;
        }
        out[b] = best;
    }
    // END SOLUTION
}
