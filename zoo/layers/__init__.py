"""Keras layers, and the TFP bijectors built from them."""
