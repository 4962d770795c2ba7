%%cpp my_dense
// learner bug: reads the weight as [C, OC] (Keras layout) instead of torch's [OC, C]
#include <stdexcept>

// out[B,OC] = inp[B,C] · weight[OC,C]^T + bias[OC];  bias may be nullptr
void dense_forward(float* out, const float* inp, const float* weight, const float* bias,
                   int B, int C, int OC) {
    // BEGIN SOLUTION
    for (int b = 0; b < B; b++) {
        for (int o = 0; o < OC; o++) {
            float acc = bias ? bias[o] : 0.0f;
            for (int c = 0; c < C; c++) {
                acc += inp[b * C + c] * weight[c * OC + o];
            }
            out[b * OC + o] = acc;
        }
    }
    // END SOLUTION
}
