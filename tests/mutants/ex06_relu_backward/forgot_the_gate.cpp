%%cpp my_relu
// learner bug: passes the gradient everywhere (forgot the ReLU derivative)
#include <stdexcept>

// forward: out[i] = max(inp[i], 0).  Adds (+=) into dinp.
void relu_backward(float* dinp, const float* dout, const float* inp, int N) {
    // BEGIN SOLUTION
    for (int i = 0; i < N; i++) {
        dinp[i] += dout[i];
    }
    // END SOLUTION
}
