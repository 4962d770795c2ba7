# learner bug: takes run()'s output list as the logits, dropping a dimension ([0] applied twice)
def ort_accuracy(onnx_path, x, y):
    """Accuracy of the ONNX model at onnx_path on (x, y), computed by ONNX Runtime."""
    ### BEGIN SOLUTION
    session = runtime.ort_session(onnx_path)
    feed = {session.get_inputs()[0].name: np.ascontiguousarray(x, dtype=np.float32)}
    logits = session.run(None, feed)[0][0]
    return float(np.mean(logits.argmax(axis=-1) == np.asarray(y)))
    ### END SOLUTION
