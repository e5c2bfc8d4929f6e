"""The steps of normalizing flows: Keras layers that own the variables and each
build a TFP bijector (``layer.bijector()``)."""
