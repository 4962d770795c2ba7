# learner bug: updates the velocity but then steps along the raw gradient (param -= lr * grad)
def sgd_momentum_step(params, velocities, lr, momentum):
    """In place: v = momentum * v + grad, then param -= lr * v, for each (param, v) pair."""
    with torch.no_grad():
        for param, v in zip(params, velocities):
            ### BEGIN SOLUTION
            v.mul_(momentum).add_(param.grad)
            param.sub_(lr * param.grad)
            ### END SOLUTION
