# learner bug: ignores Gemm's transB, multiplying by PyTorch's (OC, C) weight untransposed
def apply_op(op_type, args, attrs):
    """One ONNX node in numpy: Gemm, MatMul, Add or Relu; `args` are the input arrays."""
    ### BEGIN SOLUTION
    if op_type == "Gemm":
        a, b = args[0], args[1]
        a = a.T if attrs.get("transA", 0) else a
        y = attrs.get("alpha", 1.0) * (a @ b)
        if len(args) > 2:
            y = y + attrs.get("beta", 1.0) * args[2]
        return y
    if op_type == "MatMul":
        return args[0] @ args[1]
    if op_type == "Add":
        return args[0] + args[1]
    if op_type == "Relu":
        return np.maximum(args[0], 0)
    raise NotImplementedError(f"apply_op: op {op_type!r} is not supported")
    ### END SOLUTION
