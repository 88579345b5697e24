"""The emulated boards under the name sqz 0.1 gave them, for tools written against that layout
(the TFLM and cycle anchors beside the project import converter.qemu): the module is
converter.device.qemu."""

from .device.qemu import *  # noqa: F403
from .device.qemu import QemuFirmware, build_qemu_firmware, start_qemu_firmware  # noqa: F401
