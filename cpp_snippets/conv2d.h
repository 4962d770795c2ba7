// conv2d.h: 2-D convolution (cross-correlation), as torch.nn.functional.conv2d and ONNX Conv.
//   out[b,oc,oh,ow] = bias[oc] + sum_{c,kh,kw} weight[oc,c,kh,kw] * inp[b,c,oh*s-p+kh, ow*s-p+kw]
// Shapes: B batch, C/OC in/out channels, H/W input height/width, KH/KW kernel, s stride, p zero
// padding; OH = (H + 2p - KH)/s + 1, OW likewise. Layout NCHW, weight [OC,C,KH,KW].
// Method: im2col. Each image is unrolled into col[K = C*KH*KW, P = OH*OW] so the convolution
// becomes a matrix product weight[OC,K] · col[K,P], written as axpy loops that vectorize.
// bias and the gradients dinp, dbias are optional (nullptr).
// Checked against torch float64 autograd and finite differences (tests/test_kernels.py).
#pragma once

#include "common.h"

COURSE_KERNEL void conv2d_check(const char* name, int B, int C, int H, int W, int OC, int KH,
                                int KW, int stride, int pad) {
    course_require(B > 0 && C > 0 && H > 0 && W > 0 && OC > 0 && KH > 0 && KW > 0, name,
                   "B, C, H, W, OC, KH and KW must be positive");
    course_require(stride > 0 && pad >= 0, name, "stride must be positive and pad >= 0");
    course_require(H + 2 * pad >= KH && W + 2 * pad >= KW, name,
                   "the kernel is larger than the padded image");
}

// col[k, p] (or col[p, k] when transposed) with k = (c*KH + kh)*KW + kw and p = oh*OW + ow;
// positions that fall into the zero padding get 0.
COURSE_KERNEL void conv2d_im2col(float* col, const float* inp_b, int C, int H, int W, int KH,
                                 int KW, int stride, int pad, int OH, int OW, bool transposed) {
    const int K = C * KH * KW, P = OH * OW;
    for (int c = 0; c < C; c++) {
        for (int kh = 0; kh < KH; kh++) {
            for (int kw = 0; kw < KW; kw++) {
                const int k = (c * KH + kh) * KW + kw;
                for (int oh = 0; oh < OH; oh++) {
                    const int ih = oh * stride - pad + kh;
                    for (int ow = 0; ow < OW; ow++) {
                        const int iw = ow * stride - pad + kw;
                        const bool inside = ih >= 0 && ih < H && iw >= 0 && iw < W;
                        const int p = oh * OW + ow;
                        const size_t at = transposed ? static_cast<size_t>(p) * K + k
                                                     : static_cast<size_t>(k) * P + p;
                        col[at] = inside ? inp_b[(static_cast<size_t>(c) * H + ih) * W + iw] : 0.0f;
                    }
                }
            }
        }
    }
}

// the adjoint of im2col: every col[k, p] adds back onto the input pixel it was copied from
COURSE_KERNEL void conv2d_col2im(float* dinp_b, const float* dcol, int C, int H, int W, int KH,
                                 int KW, int stride, int pad, int OH, int OW) {
    const int P = OH * OW;
    for (int c = 0; c < C; c++) {
        for (int kh = 0; kh < KH; kh++) {
            for (int kw = 0; kw < KW; kw++) {
                const float* dcol_k = dcol + static_cast<size_t>((c * KH + kh) * KW + kw) * P;
                for (int oh = 0; oh < OH; oh++) {
                    const int ih = oh * stride - pad + kh;
                    if (ih < 0 || ih >= H) continue;
                    float* row = dinp_b + (static_cast<size_t>(c) * H + ih) * W;
                    for (int ow = 0; ow < OW; ow++) {
                        const int iw = ow * stride - pad + kw;
                        if (iw >= 0 && iw < W) row[iw] += dcol_k[oh * OW + ow];
                    }
                }
            }
        }
    }
}

COURSE_KERNEL void conv2d_forward(float* out, const float* inp, const float* weight,
                                  const float* bias, int B, int C, int H, int W, int OC, int KH,
                                  int KW, int stride, int pad) {
    course_require(out && inp && weight, "conv2d_forward", "out, inp and weight are required");
    conv2d_check("conv2d_forward", B, C, H, W, OC, KH, KW, stride, pad);
    const int OH = (H + 2 * pad - KH) / stride + 1, OW = (W + 2 * pad - KW) / stride + 1;
    const int K = C * KH * KW, P = OH * OW;
    std::vector<float> col(static_cast<size_t>(K) * P);
    for (int b = 0; b < B; b++) {
        conv2d_im2col(col.data(), inp + static_cast<size_t>(b) * C * H * W, C, H, W, KH, KW,
                      stride, pad, OH, OW, false);
        for (int oc = 0; oc < OC; oc++) {
            float* out_plane = out + (static_cast<size_t>(b) * OC + oc) * P;
            const float* w_oc = weight + static_cast<size_t>(oc) * K;
            for (int p = 0; p < P; p++) {
                out_plane[p] = bias ? bias[oc] : 0.0f;
            }
            // out[oc,:] += weight[oc,k] * col[k,:], one axpy per kernel tap
            for (int k = 0; k < K; k++) {
                const float w = w_oc[k];
                const float* col_k = col.data() + static_cast<size_t>(k) * P;
                for (int p = 0; p < P; p++) {
                    out_plane[p] += w * col_k[p];
                }
            }
        }
    }
}

COURSE_KERNEL void conv2d_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                                   const float* inp, const float* weight, int B, int C, int H,
                                   int W, int OC, int KH, int KW, int stride, int pad) {
    course_require(dweight && dout && inp && weight, "conv2d_backward",
                   "dweight, dout, inp and weight are required (dinp and dbias may be nullptr)");
    conv2d_check("conv2d_backward", B, C, H, W, OC, KH, KW, stride, pad);
    const int OH = (H + 2 * pad - KH) / stride + 1, OW = (W + 2 * pad - KW) / stride + 1;
    const int K = C * KH * KW, P = OH * OW;
    std::vector<float> col_t(static_cast<size_t>(P) * K);
    std::vector<float> dcol(dinp ? static_cast<size_t>(K) * P : 0);
    for (int b = 0; b < B; b++) {
        const float* dout_b = dout + static_cast<size_t>(b) * OC * P;
        // dbias[oc] += sum over positions of dout (bias is broadcast over the output plane)
        if (dbias) {
            for (int oc = 0; oc < OC; oc++) {
                for (int p = 0; p < P; p++) {
                    dbias[oc] += dout_b[static_cast<size_t>(oc) * P + p];
                }
            }
        }
        // dweight[oc,:] += dout[oc,p] * col^T[p,:]   (col^T keeps the inner loop contiguous)
        conv2d_im2col(col_t.data(), inp + static_cast<size_t>(b) * C * H * W, C, H, W, KH, KW,
                      stride, pad, OH, OW, true);
        for (int p = 0; p < P; p++) {
            const float* col_p = col_t.data() + static_cast<size_t>(p) * K;
            for (int oc = 0; oc < OC; oc++) {
                const float d = dout_b[static_cast<size_t>(oc) * P + p];
                float* dw_oc = dweight + static_cast<size_t>(oc) * K;
                for (int k = 0; k < K; k++) {
                    dw_oc[k] += d * col_p[k];
                }
            }
        }
        if (!dinp) continue;
        // dcol[k,:] = sum_oc weight[oc,k] * dout[oc,:], then scatter dcol back onto the image
        std::fill(dcol.begin(), dcol.end(), 0.0f);
        for (int oc = 0; oc < OC; oc++) {
            const float* dout_oc = dout_b + static_cast<size_t>(oc) * P;
            for (int k = 0; k < K; k++) {
                const float w = weight[static_cast<size_t>(oc) * K + k];
                float* dcol_k = dcol.data() + static_cast<size_t>(k) * P;
                for (int p = 0; p < P; p++) {
                    dcol_k[p] += w * dout_oc[p];
                }
            }
        }
        conv2d_col2im(dinp + static_cast<size_t>(b) * C * H * W, dcol.data(), C, H, W, KH, KW,
                      stride, pad, OH, OW);
    }
}
