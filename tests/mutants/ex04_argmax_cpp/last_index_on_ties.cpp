%%cpp predict
// learner bug: >= instead of >, so ties keep the last index instead of the first
#include <stdexcept>

// out[b] = index of the largest logits[b, v]; the first one on ties
void argmax_rows(int* out, const float* logits, int B, int V) {
    // BEGIN SOLUTION
    for (int b = 0; b < B; ++b) {
        const float* row = logits + b * V;
        int best = 0;
        for (int v = 1; v < V; ++v) {
            if (row[v] >= row[best]) best = v;
        }
        out[b] = best;
    }
    // END SOLUTION
}
