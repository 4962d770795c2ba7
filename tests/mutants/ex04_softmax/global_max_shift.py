# learner bug: subtracts the max of the whole array, not each row's: small rows underflow to 0/0
def softmax(logits):
    """Row-wise softmax of a (N, K) array, stable for large logits."""
    ### BEGIN SOLUTION
    z = logits - logits.max()
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
    ### END SOLUTION
