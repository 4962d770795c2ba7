%%cpp warmup
// learner bug: multiplies the wrong operand: y[i] = a * y[i] + x[i]
#include <stdexcept>

// y[i] += a * x[i] for i in [0, N)
void axpy(float* y, const float* x, float a, int N) {
    // BEGIN SOLUTION
    for (int i = 0; i < N; ++i) y[i] = a * y[i] + x[i];
    // END SOLUTION
}
