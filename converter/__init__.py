"""sqz: SqueezeNet on microcontrollers, bit-exact with the TFLite reference kernels."""

__version__ = "0.1.0"

# TensorFlow logs through C++ before Python can silence it; these must be set before it loads.
import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

# Ctrl-C while a tool is still importing (before cli.run_cli handles it) would otherwise end in a
# KeyboardInterrupt traceback from some import. Only in sqz's own console scripts, never in a
# program that imports sqz as a library.
import signal as _signal
import sys as _sys


def _interrupted_while_starting(signum, frame):  # pragma: no cover - ends the process
    _sys.stderr.write("sqz: interrupted\n")
    _sys.stderr.flush()
    _os._exit(130)


if (_os.path.basename(_sys.argv[0] if _sys.argv else "").startswith("sqz-")
        and _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler):
    _signal.signal(_signal.SIGINT, _interrupted_while_starting)
