# learner bug: only recognises the domain written "" and misses the spelling "ai.onnx"
def opset_version(model):
    """The opset version (an int) that `model` imports for the default ONNX domain."""
    ### BEGIN SOLUTION
    for entry in model.opset_import:
        if entry.domain == "":
            return int(entry.version)
    return None
    ### END SOLUTION
