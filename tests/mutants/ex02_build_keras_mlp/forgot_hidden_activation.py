# learner bug: forgets the ReLU on the hidden layer (two affine maps collapse into one)
def build_keras_mlp(hidden):
    """Keras twin of torch_mlp(hidden=(hidden,)): 64 -> hidden (relu) -> 10 logits."""
    ### BEGIN SOLUTION
    return keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(hidden),
        keras.layers.Dense(10),
    ])
    ### END SOLUTION
