%%cpp my_conv
// learner bug: ignores the stride when mapping an output position to the input
#include <stdexcept>

// out[B,OC,OH,OW] = bias[OC] + sum_{c,kh,kw} weight[OC,C,KH,KW] * inp[B,C,H,W] (zero padding)
void conv2d_forward(float* out, const float* inp, const float* weight, const float* bias,
                    int B, int C, int H, int W, int OC, int KH, int KW, int stride, int pad) {
    // BEGIN SOLUTION
    const int OH = (H + 2 * pad - KH) / stride + 1;
    const int OW = (W + 2 * pad - KW) / stride + 1;
    for (int b = 0; b < B; b++) {
        for (int oc = 0; oc < OC; oc++) {
            for (int i = 0; i < OH; i++) {
                for (int j = 0; j < OW; j++) {
                    float acc = bias ? bias[oc] : 0.0f;
                    for (int c = 0; c < C; c++) {
                        for (int kh = 0; kh < KH; kh++) {
                            const int h = i - pad + kh;
                            if (h < 0 || h >= H) continue;
                            for (int kw = 0; kw < KW; kw++) {
                                const int w = j - pad + kw;
                                if (w < 0 || w >= W) continue;
                                acc += weight[((oc * C + c) * KH + kh) * KW + kw] *
                                       inp[((b * C + c) * H + h) * W + w];
                            }
                        }
                    }
                    out[((b * OC + oc) * OH + i) * OW + j] = acc;
                }
            }
        }
    }
    // END SOLUTION
}
