"""tfdock: a reproducible TensorFlow environment kit."""

__version__ = "0.1.0"
