# learner bug: reshapes (OC, C) to (C, OC) instead of transposing: right shape, wrong values
def torch_to_keras_dense(weight, bias):
    """PyTorch Linear (weight (OC, C), bias (OC,)) -> Keras Dense [kernel (C, OC), bias (OC,)]."""
    ### BEGIN SOLUTION
    return weight.reshape(weight.shape[1], weight.shape[0]), bias
    ### END SOLUTION
