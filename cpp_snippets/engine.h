// engine.h: train an ONNX graph in C++. course/engine.py reads the graph with `onnx` and hands
// this engine a list of ops over numbered activation tensors plus the float32 weights, zero-copy
// (the pointers are numpy arrays that Python owns). One call then runs a whole epoch: draw the
// batches, forward, mean softmax cross-entropy, backward, optimizer update. No Python per step.
// Shapes: B batch; every activation tensor is stored as [B, size] (row-major, so NCHW feature
// maps are [B, C*H*W]); tensor 0 is the model input. Dense weights come in either layout:
// [OC,C] (torch Linear, Gemm transB=1) or [C,OC] (MatMul, Gemm transB=0), used in place.
// Activations, softmax cross-entropy, conv2d, maxpool2d and the optimizers are the reference
// kernels of kernels.h. Checked by tests/test_engine.py: step-by-step loss trajectories against
// PyTorch and Keras, and ONNX Runtime on the weights written back.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "kernels.h"

namespace engine {

enum OpKind { DENSE = 0, RELU = 1, TANH = 2, SIGMOID = 3, CONV = 4, MAXPOOL = 5, TRANSPOSE = 6 };
enum Optimizer { SGD = 0, ADAMW = 1 };

// One trainable initializer: its values live in a numpy array; grad and optimizer state here.
struct Param {
    float* data;
    long n;
    std::string name;
    std::vector<float> grad, m, v;
};

// One node of the graph. dims holds the op's shape integers (see Engine::add_op).
struct Op {
    int kind, in, out, weight, bias;
    std::vector<int> dims;
    float alpha, beta;
    std::string name;
};

// out[B,OC] = alpha * inp[B,C] · W + beta * bias, with W given as w_t = W^T laid out [C,OC].
inline void dense_rows_forward(float* out, const float* inp, const float* w_t, const float* bias,
                               int B, int C, int OC, float alpha, float beta) {
    for (int b = 0; b < B; b++) {
        float* out_b = out + static_cast<size_t>(b) * OC;
        const float* inp_b = inp + static_cast<size_t>(b) * C;
        std::fill(out_b, out_b + OC, 0.0f);
        // one axpy per input feature: the inner loop is contiguous and vectorizes
        for (int c = 0; c < C; c++) {
            const float x = inp_b[c];
            const float* w_c = w_t + static_cast<size_t>(c) * OC;
            for (int o = 0; o < OC; o++) out_b[o] += x * w_c[o];
        }
        for (int o = 0; o < OC; o++) {
            out_b[o] = alpha * out_b[o] + (bias ? beta * bias[o] : 0.0f);
        }
    }
}

// dinp[B,C] += alpha * dout[B,OC] · w_oc[OC,C]   (w_oc is the weight laid out [OC,C])
inline void dense_rows_dinp(float* dinp, const float* dout, const float* w_oc, int B, int C,
                            int OC, float alpha) {
    for (int b = 0; b < B; b++) {
        float* dinp_b = dinp + static_cast<size_t>(b) * C;
        const float* dout_b = dout + static_cast<size_t>(b) * OC;
        for (int o = 0; o < OC; o++) {
            const float d = alpha * dout_b[o];
            const float* w_o = w_oc + static_cast<size_t>(o) * C;
            for (int c = 0; c < C; c++) dinp_b[c] += d * w_o[c];
        }
    }
}

// dweight += alpha * dout^T · inp, written into the weight's own layout; dbias += beta * sum dout
inline void dense_rows_dweight(float* dweight, float* dbias, const float* dout, const float* inp,
                               int B, int C, int OC, bool weight_oc_c, float alpha, float beta) {
    for (int b = 0; b < B; b++) {
        const float* dout_b = dout + static_cast<size_t>(b) * OC;
        const float* inp_b = inp + static_cast<size_t>(b) * C;
        if (weight_oc_c) {  // dweight[o,:] += alpha * dout[b,o] * inp[b,:]
            for (int o = 0; o < OC; o++) {
                const float d = alpha * dout_b[o];
                float* dw_o = dweight + static_cast<size_t>(o) * C;
                for (int c = 0; c < C; c++) dw_o[c] += d * inp_b[c];
            }
        } else {  // dweight[c,:] += alpha * inp[b,c] * dout[b,:]
            for (int c = 0; c < C; c++) {
                const float x = alpha * inp_b[c];
                float* dw_c = dweight + static_cast<size_t>(c) * OC;
                for (int o = 0; o < OC; o++) dw_c[o] += x * dout_b[o];
            }
        }
        if (dbias) {
            for (int o = 0; o < OC; o++) dbias[o] += beta * dout_b[o];
        }
    }
}

// A batch-preserving transpose of each sample: shape[r] per sample, perm over those r axes.
// Forward copies out[b][i] = inp[b][off(i)]; backward adds dinp[b][off(i)] += dout[b][i].
inline void transpose_apply(float* out, const float* inp, int B, const int* shape, const int* perm,
                            int r, bool backward) {
    long size = 1, in_stride[8], step[8];
    int out_shape[8], idx[8];
    for (int k = r - 1; k >= 0; k--) {
        in_stride[k] = size;
        size *= shape[k];
    }
    for (int k = 0; k < r; k++) {
        out_shape[k] = shape[perm[k]];
        step[k] = in_stride[perm[k]];
    }
    for (int b = 0; b < B; b++) {
        const float* src = inp + static_cast<size_t>(b) * size;
        float* dst = out + static_cast<size_t>(b) * size;
        std::fill(idx, idx + r, 0);
        long off = 0;
        for (long i = 0; i < size; i++) {
            if (backward) {
                dst[off] += src[i];
            } else {
                dst[i] = src[off];
            }
            // advance the output index like an odometer, moving the input offset along
            for (int k = r - 1; k >= 0; k--) {
                off += step[k];
                if (++idx[k] < out_shape[k]) break;
                off -= step[k] * out_shape[k];
                idx[k] = 0;
            }
        }
    }
}

inline bool all_finite(const float* x, long n) {
    for (long i = 0; i < n; i++) {
        if (!std::isfinite(x[i])) return false;
    }
    return true;
}

class Engine {
public:
    // Per-sample size of a new activation tensor; returns its id (the first one is the input).
    int add_tensor(long size) {
        sizes_.push_back(size);
        act_.emplace_back();
        grad_.emplace_back();
        return static_cast<int>(sizes_.size()) - 1;
    }

    // A trainable weight: `data` stays owned by the caller and is updated in place.
    int add_param(float* data, long n, const std::string& name) {
        params_.push_back(Param{data, n, name, std::vector<float>(n), {}, {}});
        return static_cast<int>(params_.size()) - 1;
    }

    // dims: DENSE {C, OC, weight_oc_c}; RELU/TANH/SIGMOID {N}; CONV {C, H, W, OC, KH, KW,
    // stride, pad}; MAXPOOL {C, H, W, K, stride}; TRANSPOSE {r, shape[r]..., perm[r]...}.
    void add_op(int kind, int in, int out, int weight, int bias, const int* dims, int ndims,
                float alpha, float beta, const std::string& name) {
        ops_.push_back(Op{kind, in, out, weight, bias, std::vector<int>(dims, dims + ndims),
                          alpha, beta, name});
    }

    void set_output(int tensor, int classes) {
        logits_ = tensor;
        classes_ = classes;
    }

    // Inference: logits[B, classes] for x[B, input size].
    void forward(const float* x, int B, float* logits) {
        load_batch(x, B, nullptr, nullptr);
        run_forward(B, -1);
        std::copy(act_[logits_].begin(), act_[logits_].begin() + static_cast<long>(B) * classes_,
                  logits);
    }

    // Fresh optimizer state and random generator for a fit; step numbers start at 1.
    void start_fit(int optimizer, float lr, float momentum, float weight_decay, float beta1,
                   float beta2, float eps, unsigned seed) {
        optimizer_ = optimizer;
        lr_ = lr;
        momentum_ = momentum;
        weight_decay_ = weight_decay;
        beta1_ = beta1;
        beta2_ = beta2;
        eps_ = eps;
        rng_.seed(seed);
        step_ = 0;
        for (Param& p : params_) {
            p.m.assign(p.n, 0.0f);
            p.v.assign(optimizer == ADAMW ? p.n : 0, 0.0f);
        }
    }

    // One epoch over x[N, input size], y[N]: losses[ceil(N / batch_size)] receives the mean loss
    // of every step. Returns 0, or the failing step number with the reason in error().
    long fit_epoch(const float* x, const int* y, int N, int batch_size, bool shuffle,
                   float* losses) {
        order_.resize(N);
        for (int i = 0; i < N; i++) order_[i] = i;
        if (shuffle) {  // Fisher-Yates with mt19937: the same permutation on every platform
            for (int i = N - 1; i > 0; i--) std::swap(order_[i], order_[rng_() % (i + 1u)]);
        }
        int batch = 0;
        for (int start = 0; start < N; start += batch_size, batch++) {
            const int B = std::min(batch_size, N - start);
            step_++;
            try {
                load_batch(x, B, y, order_.data() + start);
                if (!run_forward(B, step_)) return step_;
                losses[batch] = loss_and_backward(B);
                if (!std::isfinite(losses[batch])) {
                    error_ = "step " + std::to_string(step_) + ": the loss is " +
                             std::to_string(losses[batch]) + " (logits of layer '" +
                             last_layer() + "' overflow the softmax)";
                    return step_;
                }
                if (!update()) return step_;
            } catch (const std::exception& e) {
                error_ = "step " + std::to_string(step_) + ": " + e.what();
                return step_;
            }
        }
        return 0;
    }

    const std::string& error() const { return error_; }
    long step() const { return step_; }

private:
    std::vector<long> sizes_;
    std::vector<std::vector<float>> act_, grad_;
    std::vector<Param> params_;
    std::vector<Op> ops_;
    std::vector<float> losses_, probs_, dlosses_, w_scratch_;
    std::vector<int> targets_, order_;
    int logits_ = -1, classes_ = 0, optimizer_ = SGD;
    float lr_ = 0, momentum_ = 0, weight_decay_ = 0, beta1_ = 0.9f, beta2_ = 0.999f, eps_ = 1e-8f;
    long step_ = 0;
    std::mt19937 rng_;
    std::string error_;

    std::string last_layer() const { return ops_.empty() ? "input" : ops_.back().name; }

    // Copy the batch rows (in `rows` order, or the first B) into tensor 0, targets alongside.
    void load_batch(const float* x, int B, const int* y, const int* rows) {
        for (size_t t = 0; t < sizes_.size(); t++) {
            const size_t n = static_cast<size_t>(B) * sizes_[t];
            if (act_[t].size() < n) act_[t].resize(n);
            if (grad_[t].size() < n) grad_[t].resize(n);
        }
        const long size = sizes_[0];
        for (int b = 0; b < B; b++) {
            const long row = rows ? rows[b] : b;
            std::copy(x + row * size, x + (row + 1) * size, act_[0].data() + b * size);
        }
        if (y) {
            targets_.resize(B);
            for (int b = 0; b < B; b++) targets_[b] = y[rows ? rows[b] : b];
        }
    }

    // The weight of a dense op in the layout asked for, transposing into scratch if needed.
    const float* dense_weight(const Op& op, bool want_oc_c) {
        const int C = op.dims[0], OC = op.dims[1];
        const bool has_oc_c = op.dims[2] != 0;
        const float* w = params_[op.weight].data;
        if (has_oc_c == want_oc_c) return w;
        const int rows = has_oc_c ? OC : C, cols = has_oc_c ? C : OC;
        w_scratch_.resize(static_cast<size_t>(C) * OC);
        for (int i = 0; i < rows; i++) {
            for (int j = 0; j < cols; j++) w_scratch_[static_cast<size_t>(j) * rows + i] =
                w[static_cast<size_t>(i) * cols + j];
        }
        return w_scratch_.data();
    }

    const float* bias_of(const Op& op) const {
        return op.bias >= 0 ? params_[op.bias].data : nullptr;
    }

    // Runs every op; with step >= 0 checks each output for nan/inf and names the layer.
    bool run_forward(int B, long step) {
        for (const Op& op : ops_) {
            float* out = act_[op.out].data();
            const float* inp = act_[op.in].data();
            const std::vector<int>& d = op.dims;
            switch (op.kind) {
                case DENSE:
                    dense_rows_forward(out, inp, dense_weight(op, false), bias_of(op), B, d[0],
                                       d[1], op.alpha, op.beta);
                    break;
                case RELU: relu_forward(out, inp, B * d[0]); break;
                case TANH: tanh_forward(out, inp, B * d[0]); break;
                case SIGMOID: sigmoid_forward(out, inp, B * d[0]); break;
                case CONV:
                    conv2d_forward(out, inp, params_[op.weight].data, bias_of(op), B, d[0], d[1],
                                   d[2], d[3], d[4], d[5], d[6], d[7]);
                    break;
                case MAXPOOL: maxpool2d_forward(out, inp, B, d[0], d[1], d[2], d[3], d[4]); break;
                case TRANSPOSE:
                    transpose_apply(out, inp, B, &d[1], &d[1 + d[0]], d[0], false);
                    break;
                default: throw std::invalid_argument("unknown op kind in layer " + op.name);
            }
            if (step >= 0 && !all_finite(out, B * sizes_[op.out])) {
                error_ = "step " + std::to_string(step) + ": layer '" + op.name +
                         "' produced nan or inf in its forward output";
                return false;
            }
        }
        return true;
    }

    // Mean softmax cross-entropy of the batch, then every gradient (zeroed first: kernels add).
    float loss_and_backward(int B) {
        const size_t n = static_cast<size_t>(B) * classes_;
        losses_.resize(B);
        probs_.resize(n);
        softmax_cross_entropy_forward(losses_.data(), probs_.data(), act_[logits_].data(),
                                      targets_.data(), B, classes_);
        double total = 0.0;
        for (int b = 0; b < B; b++) total += losses_[b];
        for (size_t t = 0; t < sizes_.size(); t++) {
            std::fill(grad_[t].begin(), grad_[t].begin() + B * sizes_[t], 0.0f);
        }
        for (Param& p : params_) std::fill(p.grad.begin(), p.grad.end(), 0.0f);
        dlosses_.assign(B, 1.0f / B);  // d(mean)/d(loss_b)
        softmax_cross_entropy_backward(grad_[logits_].data(), dlosses_.data(), probs_.data(),
                                       targets_.data(), B, classes_);
        for (auto it = ops_.rbegin(); it != ops_.rend(); ++it) backward(*it, B);
        return static_cast<float>(total / B);
    }

    void backward(const Op& op, int B) {
        const std::vector<int>& d = op.dims;
        const float* dout = grad_[op.out].data();
        const float* out = act_[op.out].data();
        const float* inp = act_[op.in].data();
        // the model input needs no gradient
        float* dinp = op.in == 0 ? nullptr : grad_[op.in].data();
        float* dweight = op.weight >= 0 ? params_[op.weight].grad.data() : nullptr;
        float* dbias = op.bias >= 0 ? params_[op.bias].grad.data() : nullptr;
        switch (op.kind) {
            case DENSE:
                dense_rows_dweight(dweight, dbias, dout, inp, B, d[0], d[1], d[2] != 0, op.alpha,
                                   op.beta);
                if (dinp) dense_rows_dinp(dinp, dout, dense_weight(op, true), B, d[0], d[1],
                                          op.alpha);
                break;
            case RELU: if (dinp) relu_backward(dinp, dout, inp, B * d[0]); break;
            case TANH: if (dinp) tanh_backward(dinp, dout, out, B * d[0]); break;
            case SIGMOID: if (dinp) sigmoid_backward(dinp, dout, out, B * d[0]); break;
            case CONV:
                conv2d_backward(dinp, dweight, dbias, dout, inp, params_[op.weight].data, B, d[0],
                                d[1], d[2], d[3], d[4], d[5], d[6], d[7]);
                break;
            case MAXPOOL:
                if (dinp) maxpool2d_backward(dinp, dout, inp, B, d[0], d[1], d[2], d[3], d[4]);
                break;
            case TRANSPOSE:
                if (dinp) transpose_apply(dinp, dout, B, &d[1], &d[1 + d[0]], d[0], true);
                break;
        }
    }

    // One optimizer step on every weight; a weight that turns nan/inf stops the fit.
    bool update() {
        for (Param& p : params_) {
            const int n = static_cast<int>(p.n);
            if (optimizer_ == ADAMW) {
                adamw_update(p.data, p.m.data(), p.v.data(), p.grad.data(), n, lr_, beta1_,
                             beta2_, eps_, weight_decay_, static_cast<int>(step_));
            } else {
                sgd_update(p.data, p.m.data(), p.grad.data(), n, lr_, momentum_, weight_decay_);
            }
            if (!all_finite(p.data, p.n)) {
                error_ = "step " + std::to_string(step_) + ": the update turned weight " +
                         p.name + " into nan or inf (gradient too large for lr " +
                         std::to_string(lr_) + ")";
                return false;
            }
        }
        return true;
    }
};

}  // namespace engine
