# learner bug: copies the weight as it is: forgets that Keras' kernel is (in, out)
def torch_to_keras_dense(weight, bias):
    """PyTorch Linear (weight (OC, C), bias (OC,)) -> Keras Dense [kernel (C, OC), bias (OC,)]."""
    ### BEGIN SOLUTION
    return weight, bias
    ### END SOLUTION
