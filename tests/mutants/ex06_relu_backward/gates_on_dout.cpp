%%cpp my_relu
// learner bug: gates on the sign of dout instead of the forward input
#include <stdexcept>

// forward: out[i] = max(inp[i], 0).  Adds (+=) into dinp.
void relu_backward(float* dinp, const float* dout, const float* inp, int N) {
    // BEGIN SOLUTION
    for (int i = 0; i < N; i++) {
        if (dout[i] > 0.0f) {
            dinp[i] += dout[i];
        }
    }
    // END SOLUTION
}
