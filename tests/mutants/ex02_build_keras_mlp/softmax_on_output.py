# learner bug: ends with a softmax (the seed's habit): probabilities, not logits
def build_keras_mlp(hidden):
    """Keras twin of torch_mlp(hidden=(hidden,)): 64 -> hidden (relu) -> 10 logits."""
    ### BEGIN SOLUTION
    return keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(hidden, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    ### END SOLUTION
