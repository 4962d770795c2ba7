# learner bug: sums the squared differences instead of averaging them (missing the 1/N)
def mse(pred, target):
    """Mean over all elements of (pred - target)**2, as a float."""
    ### BEGIN SOLUTION
    diff = np.asarray(pred, dtype=np.float64) - np.asarray(target, dtype=np.float64)
    return float(np.sum(diff ** 2))
    ### END SOLUTION
