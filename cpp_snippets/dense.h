// dense.h: fully connected layer, as torch.nn.Linear and ONNX Gemm(transB=1).
//   out[B,OC] = inp[B,C] · weight[OC,C]^T + bias[OC]
// Shapes: B batch, C in features, OC out features. bias and the gradients dinp, dbias are optional.
// Speed: every inner loop is an axpy over a contiguous row (it vectorizes without -ffast-math,
// a dot product would not), and rows are taken four at a time so each load/store of the
// accumulator row serves four multiply-adds.
// Checked against torch float64 autograd and finite differences (tests/test_kernels.py).
#pragma once

#include "common.h"

// acc[0:n] += a0*x0[0:n] + a1*x1[0:n] + a2*x2[0:n] + a3*x3[0:n]
COURSE_KERNEL void dense_axpy4(float* acc, float a0, const float* x0, float a1, const float* x1,
                               float a2, const float* x2, float a3, const float* x3, int n) {
    for (int i = 0; i < n; i++) {
        acc[i] += a0 * x0[i] + a1 * x1[i] + a2 * x2[i] + a3 * x3[i];
    }
}

// acc[0:n] += a * x[0:n]
COURSE_KERNEL void dense_axpy(float* acc, float a, const float* x, int n) {
    for (int i = 0; i < n; i++) {
        acc[i] += a * x[i];
    }
}

COURSE_KERNEL void dense_forward(float* out, const float* inp, const float* weight,
                                 const float* bias, int B, int C, int OC) {
    course_require(out && inp && weight, "dense_forward", "out, inp and weight are required");
    course_require(B > 0 && C > 0 && OC > 0, "dense_forward", "B, C and OC must be positive");
    // weight^T [C,OC], so that out[b,:] is a sum of its rows: out[b,:] += inp[b,c] * wt[c,:]
    std::vector<float> weight_t(static_cast<size_t>(C) * OC);
    for (int o = 0; o < OC; o++) {
        for (int c = 0; c < C; c++) {
            weight_t[static_cast<size_t>(c) * OC + o] = weight[static_cast<size_t>(o) * C + c];
        }
    }
    const float* wt = weight_t.data();
    COURSE_PARALLEL_FOR
    for (int b = 0; b < B; b++) {
        float* out_b = out + static_cast<size_t>(b) * OC;
        const float* x = inp + static_cast<size_t>(b) * C;
        for (int o = 0; o < OC; o++) {
            out_b[o] = bias ? bias[o] : 0.0f;
        }
        int c = 0;
        for (; c + 4 <= C; c += 4) {
            const float* w = wt + static_cast<size_t>(c) * OC;
            dense_axpy4(out_b, x[c], w, x[c + 1], w + OC, x[c + 2], w + 2 * OC, x[c + 3],
                        w + 3 * OC, OC);
        }
        for (; c < C; c++) {
            dense_axpy(out_b, x[c], wt + static_cast<size_t>(c) * OC, OC);
        }
    }
}

COURSE_KERNEL void dense_backward(float* dinp, float* dweight, float* dbias, const float* dout,
                                  const float* inp, const float* weight, int B, int C, int OC) {
    course_require(dweight && dout && inp && weight, "dense_backward",
                   "dweight, dout, inp and weight are required (dinp and dbias may be nullptr)");
    course_require(B > 0 && C > 0 && OC > 0, "dense_backward", "B, C and OC must be positive");
    // dinp[b,:] += sum_o dout[b,o] * weight[o,:]   (chain rule through out = inp·weight^T)
    if (dinp) {
        for (int b = 0; b < B; b++) {
            const float* d = dout + static_cast<size_t>(b) * OC;
            float* dinp_b = dinp + static_cast<size_t>(b) * C;
            int o = 0;
            for (; o + 4 <= OC; o += 4) {
                const float* w = weight + static_cast<size_t>(o) * C;
                dense_axpy4(dinp_b, d[o], w, d[o + 1], w + C, d[o + 2], w + 2 * C, d[o + 3],
                            w + 3 * C, C);
            }
            for (; o < OC; o++) {
                dense_axpy(dinp_b, d[o], weight + static_cast<size_t>(o) * C, C);
            }
        }
    }
    // dweight[o,:] += sum_b dout[b,o] * inp[b,:]   (summed over the batch)
    int b = 0;
    for (; b + 4 <= B; b += 4) {
        const float* x = inp + static_cast<size_t>(b) * C;
        const float* d = dout + static_cast<size_t>(b) * OC;
        for (int o = 0; o < OC; o++) {
            dense_axpy4(dweight + static_cast<size_t>(o) * C, d[o], x, d[OC + o], x + C,
                        d[2 * OC + o], x + 2 * C, d[3 * OC + o], x + 3 * C, C);
        }
    }
    for (; b < B; b++) {
        for (int o = 0; o < OC; o++) {
            dense_axpy(dweight + static_cast<size_t>(o) * C, dout[static_cast<size_t>(b) * OC + o],
                       inp + static_cast<size_t>(b) * C, C);
        }
    }
    // dbias[o] += sum_b dout[b,o]   (bias is broadcast over the batch, so its gradient sums)
    if (dbias) {
        for (int bb = 0; bb < B; bb++) {
            dense_axpy(dbias, 1.0f, dout + static_cast<size_t>(bb) * OC, OC);
        }
    }
}
