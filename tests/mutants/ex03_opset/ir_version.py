# learner bug: confuses the file format's ir_version with the operator set version
def opset_version(model):
    """The opset version (an int) that `model` imports for the default ONNX domain."""
    ### BEGIN SOLUTION
    return int(model.ir_version)
    ### END SOLUTION
