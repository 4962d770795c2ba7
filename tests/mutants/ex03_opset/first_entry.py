# learner bug: takes the first opset_import entry, whatever its domain
def opset_version(model):
    """The opset version (an int) that `model` imports for the default ONNX domain."""
    ### BEGIN SOLUTION
    return int(model.opset_import[0].version)
    ### END SOLUTION
