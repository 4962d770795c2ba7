# learner bug: takes the smallest logit as the prediction (argmin instead of argmax)
def accuracy(logits, y):
    """Fraction of rows of `logits` (N, K) whose argmax equals the label in `y` (N,)."""
    ### BEGIN SOLUTION
    return float(np.mean(np.argmin(logits, axis=1) == y))
    ### END SOLUTION
