# learner bug: wrong sign: param += lr * v climbs the loss instead of descending it
def sgd_momentum_step(params, velocities, lr, momentum):
    """In place: v = momentum * v + grad, then param -= lr * v, for each (param, v) pair."""
    with torch.no_grad():
        for param, v in zip(params, velocities):
            ### BEGIN SOLUTION
            v.mul_(momentum).add_(param.grad)
            param.add_(lr * v)
            ### END SOLUTION
