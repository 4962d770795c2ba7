%%cpp my_pool
// learner bug: spreads dout over the whole window (average-pool backward), not to the max
#include <stdexcept>

// forward: out[b,c,i,j] = max over the K x K window of inp at (i*stride, j*stride)
void maxpool2d_backward(float* dinp, const float* dout, const float* inp, int B, int C, int H,
                        int W, int K, int stride) {
    // BEGIN SOLUTION
    const int OH = (H - K) / stride + 1;
    const int OW = (W - K) / stride + 1;
    for (int bc = 0; bc < B * C; bc++) {
        const float* plane = inp + bc * H * W;
        for (int i = 0; i < OH; i++) {
            for (int j = 0; j < OW; j++) {
                int best = (i * stride) * W + j * stride;
                for (int u = 0; u < K; u++) {
                    for (int v = 0; v < K; v++) {
                        const int at = (i * stride + u) * W + (j * stride + v);
                        if (plane[at] > plane[best]) best = at;
                    }
                }
                for (int u = 0; u < K; u++) {
                    for (int v = 0; v < K; v++) {
                        dinp[bc * H * W + (i * stride + u) * W + (j * stride + v)] +=
                            dout[(bc * OH + i) * OW + j] / (K * K);
                    }
                }
            }
        }
    }
    // END SOLUTION
}
