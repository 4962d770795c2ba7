%%cpp warmup
// learner bug: off-by-one: the loop stops at N-1 and never updates the last element
#include <stdexcept>

// y[i] += a * x[i] for i in [0, N)
void axpy(float* y, const float* x, float a, int N) {
    // BEGIN SOLUTION
    for (int i = 0; i < N - 1; ++i) y[i] += a * x[i];
    // END SOLUTION
}
