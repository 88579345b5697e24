"""Keras model builders (SqueezeNet v1.0 and v1.1, with their bypasses and meta-parameters)
and weights files."""
