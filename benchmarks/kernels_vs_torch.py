"""Time the C++ dense kernels against torch eager, single-threaded, on digits-sized batches.

    python benchmarks/kernels_vs_torch.py [--repeat 200]

Prints, per shape, the time of one dense forward + backward (dinp, dweight, dbias) and the ratio
C++ time / torch time, measured in this run. "C++ loop" times the kernels inside a C++ loop, as
the engine runs them (no Python per call); "C++ from Python" calls them one by one through
course.cpp.kernels() (argument checks included); torch runs F.linear + autograd backward.
"""
import argparse
import time

import numpy as np
import torch

SHAPES = [(32, 64, 64), (64, 64, 64), (256, 64, 64), (32, 64, 10), (256, 64, 10)]  # B, C, OC

LOOP = r"""
#include <chrono>
double course_bench_dense(float* out, float* dinp, float* dweight, float* dbias,
                          const float* dout, const float* inp, const float* weight,
                          const float* bias, int B, int C, int OC, int repeat) {
    auto start = std::chrono::steady_clock::now();
    for (int r = 0; r < repeat; r++) {
        dense_forward(out, inp, weight, bias, B, C, OC);
        dense_backward(dinp, dweight, dbias, dout, inp, weight, B, C, OC);
    }
    std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    return took.count() / repeat;
}
"""


def best_of(fn, repeat, rounds=5):
    """Seconds per call: the best of several rounds of `repeat` calls (least disturbed)."""
    fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeat):
            fn()
        times.append((time.perf_counter() - start) / repeat)
    return min(times)


def bench(B, C, OC, repeat, k, loop):
    rng = np.random.default_rng(0)
    inp, weight, bias, dout = (rng.standard_normal(s).astype(np.float32)
                               for s in ((B, C), (OC, C), (OC,), (B, OC)))
    out, dinp = np.empty((B, OC), np.float32), np.zeros((B, C), np.float32)
    dweight, dbias = np.zeros((OC, C), np.float32), np.zeros(OC, np.float32)

    def cpp_call():
        k.dense_forward(out, inp, weight, bias, B, C, OC)
        k.dense_backward(dinp, dweight, dbias, dout, inp, weight, B, C, OC)

    x, w = torch.from_numpy(inp).requires_grad_(), torch.from_numpy(weight).requires_grad_()
    b, d = torch.from_numpy(bias).requires_grad_(), torch.from_numpy(dout)

    def torch_call():
        x.grad = w.grad = b.grad = None
        torch.nn.functional.linear(x, w, b).backward(d)

    cpp_loop = min(loop(out, dinp, dweight, dbias, dout, inp, weight, bias, B, C, OC, repeat)
                   for _ in range(5))
    return cpp_loop, best_of(cpp_call, repeat), best_of(torch_call, repeat)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from course import cpp

    k = cpp.kernels()
    import cppyy

    cppyy.cppdef(LOOP)
    loop = cppyy.gbl.course_bench_dense
    print(f"dense forward+backward, one thread, torch {torch.__version__}; microseconds per step")
    print(f"{'B x C -> OC':>16} {'C++ loop':>9} {'C++ from Python':>16} {'torch':>8} "
          f"{'ratio loop/torch':>17} {'ratio call/torch':>17}")
    for B, C, OC in SHAPES:
        cpp_loop, cpp_call, torch_time = bench(B, C, OC, args.repeat, k, loop)
        print(f"{f'{B} x {C} -> {OC}':>16} {cpp_loop * 1e6:9.1f} {cpp_call * 1e6:16.1f} "
              f"{torch_time * 1e6:8.1f} {cpp_loop / torch_time:17.2f} "
              f"{cpp_call / torch_time:17.2f}")


if __name__ == "__main__":
    main()
