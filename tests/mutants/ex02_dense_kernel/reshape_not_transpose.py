# reshapes the (OC, C) weight to (C, OC) instead of transposing it: right shape, scrambled values
def torch_to_keras_dense(weight, bias):
    """PyTorch Linear (weight (OC, C), bias (OC,)) -> Keras Dense [kernel (C, OC), bias (OC,)]."""
    ### BEGIN SOLUTION
    return weight.reshape(weight.shape[1], weight.shape[0]), bias
    ### END SOLUTION
