// common.h: what every kernel header shares.
//
// COURSE_KERNEL marks every function. By default it is `inline`, so the headers can be included
// from several places (cppyy, g++ translation units) without duplicate symbols. The student
// release compiles the kernels once into a shared library with `-DCOURSE_KERNEL=` (empty) and
// ships declarations only.
//
// Conventions (karpathy/llm.c): row-major, images NCHW, targets int32, outputs first, inputs next,
// shape integers last; every *_backward ADDS (+=) into its gradient outputs; pointers documented
// as optional may be nullptr. Set COURSE_USE_OPENMP (and -fopenmp) to parallelize the outer loops.
// Checked by tests/test_kernels.py (g++ -Wall -Wextra -Werror, and against PyTorch).
#pragma once

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#ifndef COURSE_KERNEL
#define COURSE_KERNEL inline
#endif

#if defined(COURSE_USE_OPENMP) && defined(_OPENMP)
#define COURSE_PARALLEL_FOR _Pragma("omp parallel for")
#else
#define COURSE_PARALLEL_FOR
#endif

// Bad arguments become a C++ exception, which cppyy turns into a Python exception with this text.
COURSE_KERNEL void course_require(bool ok, const char* kernel, const char* what) {
    if (!ok) {
        throw std::invalid_argument(std::string(kernel) + ": " + what);
    }
}
