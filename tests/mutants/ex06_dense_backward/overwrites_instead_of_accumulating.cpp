%%cpp my_dense
// learner bug: = instead of += (overwrites the gradient buffers, and keeps only the last sample)
#include <stdexcept>

// forward: out[B,OC] = inp[B,C] · weight[OC,C]^T + bias[OC].  Adds (+=) into the gradients.
void dense_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                    const float* inp, const float* weight, int B, int C, int OC) {
    // BEGIN SOLUTION
    for (int b = 0; b < B; b++) {
        for (int o = 0; o < OC; o++) {
            const float d = dout[b * OC + o];
            for (int c = 0; c < C; c++) {
                if (dinp) {
                    dinp[b * C + c] = d * weight[o * C + c];
                }
                dweight[o * C + c] = d * inp[b * C + c];
            }
            if (dbias) {
                dbias[o] = d;
            }
        }
    }
    // END SOLUTION
}
