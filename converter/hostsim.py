"""The host firmware under the name sqz 0.1 gave it, for tools written against that layout (the
TFLM anchors beside the project import converter.hostsim): the module is
converter.device.hostsim."""

from .device.hostsim import *  # noqa: F403
from .device.hostsim import start_host_firmware  # noqa: F401
