# learner bug: argmax over the batch axis (axis=0) instead of over the classes (axis=1)
def accuracy(logits, y):
    """Fraction of rows of `logits` (N, K) whose argmax equals the label in `y` (N,)."""
    ### BEGIN SOLUTION
    return float(np.mean(np.argmax(logits, axis=0) == y))
    ### END SOLUTION
