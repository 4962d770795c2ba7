%%cpp my_dense
// learner bug: += into out without first overwriting it (a forward kernel must write, not add)
#include <stdexcept>

// out[B,OC] = inp[B,C] · weight[OC,C]^T + bias[OC];  bias may be nullptr
void dense_forward(float* out, const float* inp, const float* weight, const float* bias,
                   int B, int C, int OC) {
    // BEGIN SOLUTION
    for (int b = 0; b < B; b++) {
        for (int o = 0; o < OC; o++) {
            if (bias) {
                out[b * OC + o] += bias[o];
            }
            for (int c = 0; c < C; c++) {
                out[b * OC + o] += inp[b * C + c] * weight[o * C + c];
            }
        }
    }
    // END SOLUTION
}
