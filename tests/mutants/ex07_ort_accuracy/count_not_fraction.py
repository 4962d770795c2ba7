# learner bug: returns the number of correct rows, not the fraction
def ort_accuracy(onnx_path, x, y):
    """Accuracy of the ONNX model at onnx_path on (x, y), computed by ONNX Runtime."""
    ### BEGIN SOLUTION
    session = runtime.ort_session(onnx_path)
    feed = {session.get_inputs()[0].name: np.ascontiguousarray(x, dtype=np.float32)}
    logits = session.run(None, feed)[0]
    return float(np.sum(logits.argmax(axis=1) == np.asarray(y)))
    ### END SOLUTION
