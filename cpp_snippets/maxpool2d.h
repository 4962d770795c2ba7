// maxpool2d.h: 2-D max pooling without padding, as torch.nn.functional.max_pool2d(K, stride)
// and ONNX MaxPool. out[b,c,oh,ow] = max over the K x K window at (oh*stride, ow*stride).
// Shapes: B batch, C channels, H/W input size, K window, OH = (H - K)/stride + 1, OW likewise.
// The backward recomputes each window's argmax (first maximum in row-major order, as PyTorch)
// and routes dout there; overlapping windows (stride < K) add up.
// Checked against torch float64 autograd and finite differences (tests/test_kernels.py).
#pragma once

#include "common.h"

COURSE_KERNEL int maxpool2d_argmax(const float* plane, int W, int h0, int w0, int K) {
    int best = h0 * W + w0;
    for (int kh = 0; kh < K; kh++) {
        for (int kw = 0; kw < K; kw++) {
            const int at = (h0 + kh) * W + (w0 + kw);
            // a NaN wins, as in PyTorch, so it propagates instead of vanishing
            if (plane[at] > plane[best] || std::isnan(plane[at])) best = at;
            if (std::isnan(plane[best])) return best;
        }
    }
    return best;
}

COURSE_KERNEL void maxpool2d_check(const char* name, int B, int C, int H, int W, int K,
                                   int stride) {
    course_require(B > 0 && C > 0 && H > 0 && W > 0, name, "B, C, H and W must be positive");
    course_require(K > 0 && stride > 0, name, "K and stride must be positive");
    course_require(K <= H && K <= W, name, "the window K is larger than the image");
}

COURSE_KERNEL void maxpool2d_forward(float* out, const float* inp, int B, int C, int H, int W,
                                     int K, int stride) {
    course_require(out && inp, "maxpool2d_forward", "out and inp are required");
    maxpool2d_check("maxpool2d_forward", B, C, H, W, K, stride);
    const int OH = (H - K) / stride + 1, OW = (W - K) / stride + 1;
    for (int bc = 0; bc < B * C; bc++) {
        const float* plane = inp + static_cast<size_t>(bc) * H * W;
        float* out_plane = out + static_cast<size_t>(bc) * OH * OW;
        for (int oh = 0; oh < OH; oh++) {
            for (int ow = 0; ow < OW; ow++) {
                out_plane[oh * OW + ow] = plane[maxpool2d_argmax(plane, W, oh * stride,
                                                                 ow * stride, K)];
            }
        }
    }
}

COURSE_KERNEL void maxpool2d_backward(float* dinp, const float* dout, const float* inp, int B,
                                      int C, int H, int W, int K, int stride) {
    course_require(dinp && dout && inp, "maxpool2d_backward", "dinp, dout and inp are required");
    maxpool2d_check("maxpool2d_backward", B, C, H, W, K, stride);
    const int OH = (H - K) / stride + 1, OW = (W - K) / stride + 1;
    for (int bc = 0; bc < B * C; bc++) {
        const float* plane = inp + static_cast<size_t>(bc) * H * W;
        float* dplane = dinp + static_cast<size_t>(bc) * H * W;
        const float* dout_plane = dout + static_cast<size_t>(bc) * OH * OW;
        for (int oh = 0; oh < OH; oh++) {
            for (int ow = 0; ow < OW; ow++) {
                // only the winning input moved the output, so only it gets the gradient
                dplane[maxpool2d_argmax(plane, W, oh * stride, ow * stride, K)] +=
                    dout_plane[oh * OW + ow];
            }
        }
    }
}
