"""Everything that talks to a device or builds firmware for one.

- `protocol`: the serial protocol's frames (docs/protocol.md), `client`: the host side of it
  (esptool-style retries and timeouts), `fake`: an in-process device for tests;
- `build`: compiling the firmware sources, `hostsim`: the firmware as a host process on a
  pseudo-terminal, `qemu`: on an emulated board, `simproc`: what the two share.
"""

# The client under the name sqz 0.1 exported (converter.device.DeviceClient), for tools written
# against that layout, such as the TFLM anchors beside the project.
from .client import DeviceClient  # noqa: E402,F401
