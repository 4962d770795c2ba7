// kernels.h: every reference kernel of the course in one include (llm.c convention, C++17,
// standard library only). Loaded by course.cpp.kernels(); compiled into the student release's
// shared library with -DCOURSE_KERNEL= -shared -fPIC. Checked by tests/test_kernels.py.
#pragma once

#include "common.h"
#include "dense.h"
#include "activations.h"
#include "softmax_cross_entropy.h"
#include "conv2d.h"
#include "maxpool2d.h"
#include "optim.h"
