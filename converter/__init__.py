"""sqz: SqueezeNet on microcontrollers, bit-exact with the TFLite reference kernels."""

__version__ = "0.1.0"
