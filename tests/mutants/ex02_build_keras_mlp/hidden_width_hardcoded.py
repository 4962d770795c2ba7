# learner bug: ignores the argument and always builds 64 hidden units
def build_keras_mlp(hidden):
    """Keras twin of torch_mlp(hidden=(hidden,)): 64 -> hidden (relu) -> 10 logits."""
    ### BEGIN SOLUTION
    return keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10),
    ])
    ### END SOLUTION
