# learner bug: returns the number of correct rows instead of the fraction
def accuracy(logits, y):
    """Fraction of rows of `logits` (N, K) whose argmax equals the label in `y` (N,)."""
    ### BEGIN SOLUTION
    return float(np.sum(np.argmax(logits, axis=1) == y))
    ### END SOLUTION
