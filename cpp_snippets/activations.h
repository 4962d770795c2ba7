// activations.h: elementwise ReLU, tanh and sigmoid, as torch.relu / torch.tanh / torch.sigmoid.
// Shapes: N elements (any tensor, flattened). tanh and sigmoid backward use the forward OUTPUT
// (tanh' = 1 - out^2, sigmoid' = out (1 - out)); ReLU backward uses the input (gradient 0 at 0).
// Checked against torch float64 autograd and finite differences (tests/test_kernels.py).
#pragma once

#include "common.h"

COURSE_KERNEL void relu_forward(float* out, const float* inp, int N) {
    course_require(out && inp && N > 0, "relu_forward", "out, inp required and N > 0");
    for (int i = 0; i < N; i++) {
        out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
    }
}

COURSE_KERNEL void relu_backward(float* dinp, const float* dout, const float* inp, int N) {
    course_require(dinp && dout && inp && N > 0, "relu_backward",
                   "dinp, dout, inp required, N > 0");
    for (int i = 0; i < N; i++) {
        // the gradient passes where the unit was active, as in PyTorch (0 at exactly 0)
        dinp[i] += inp[i] > 0.0f ? dout[i] : 0.0f;
    }
}

COURSE_KERNEL void tanh_forward(float* out, const float* inp, int N) {
    course_require(out && inp && N > 0, "tanh_forward", "out, inp required and N > 0");
    for (int i = 0; i < N; i++) {
        out[i] = std::tanh(inp[i]);
    }
}

COURSE_KERNEL void tanh_backward(float* dinp, const float* dout, const float* out, int N) {
    course_require(dinp && dout && out && N > 0, "tanh_backward",
                   "dinp, dout, out required, N > 0");
    for (int i = 0; i < N; i++) {
        dinp[i] += dout[i] * (1.0f - out[i] * out[i]);
    }
}

COURSE_KERNEL void sigmoid_forward(float* out, const float* inp, int N) {
    course_require(out && inp && N > 0, "sigmoid_forward", "out, inp required and N > 0");
    for (int i = 0; i < N; i++) {
        // exp of a non-positive number only, so large |x| never overflows
        const float x = inp[i];
        if (x >= 0.0f) {
            out[i] = 1.0f / (1.0f + std::exp(-x));
        } else {
            const float e = std::exp(x);
            out[i] = e / (1.0f + e);
        }
    }
}

COURSE_KERNEL void sigmoid_backward(float* dinp, const float* dout, const float* out, int N) {
    course_require(dinp && dout && out && N > 0, "sigmoid_backward",
                   "dinp, dout, out required, N > 0");
    for (int i = 0; i < N; i++) {
        dinp[i] += dout[i] * out[i] * (1.0f - out[i]);
    }
}
