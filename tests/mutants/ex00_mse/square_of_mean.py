# learner bug: squares the mean difference instead of averaging the squared differences
def mse(pred, target):
    """Mean over all elements of (pred - target)**2, as a float."""
    ### BEGIN SOLUTION
    diff = np.asarray(pred, dtype=np.float64) - np.asarray(target, dtype=np.float64)
    return float(np.mean(diff) ** 2)
    ### END SOLUTION
