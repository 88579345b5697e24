"""sqz: SqueezeNet on microcontrollers, bit-exact with the TFLite reference kernels."""

__version__ = "0.1.0"

# TensorFlow logs through C++ before Python can silence it; these must be set before it loads.
import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
