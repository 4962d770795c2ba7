%%cpp my_dense
// learner bug: always reads bias[o], so a nullptr bias (an optional argument) crashes
#include <stdexcept>

// out[B,OC] = inp[B,C] · weight[OC,C]^T + bias[OC];  bias may be nullptr
void dense_forward(float* out, const float* inp, const float* weight, const float* bias,
                   int B, int C, int OC) {
    // BEGIN SOLUTION
    for (int b = 0; b < B; b++) {
        for (int o = 0; o < OC; o++) {
            float acc = bias[o];
            for (int c = 0; c < C; c++) {
                acc += inp[b * C + c] * weight[o * C + c];
            }
            out[b * OC + o] = acc;
        }
    }
    // END SOLUTION
}
