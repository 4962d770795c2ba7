# learner bug: averages the differences without squaring them (errors cancel)
def mse(pred, target):
    """Mean over all elements of (pred - target)**2, as a float."""
    ### BEGIN SOLUTION
    diff = np.asarray(pred, dtype=np.float64) - np.asarray(target, dtype=np.float64)
    return float(np.mean(diff))
    ### END SOLUTION
