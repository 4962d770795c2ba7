# learner bug: rebinds v = momentum * v + grad instead of updating it in place
def sgd_momentum_step(params, velocities, lr, momentum):
    """In place: v = momentum * v + grad, then param -= lr * v, for each (param, v) pair."""
    with torch.no_grad():
        for param, v in zip(params, velocities):
            ### BEGIN SOLUTION
            v = momentum * v + param.grad
            param.sub_(lr * v)
            ### END SOLUTION
