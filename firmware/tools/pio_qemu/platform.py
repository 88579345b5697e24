"""PlatformIO platform class of sqz's emulated boards (see platform.json and builder/main.py).

The platform needs no package from the registry: the toolchains and emulators are found on the
machine (builder/qemu_board.py), so there is nothing to install or configure here.
"""

from platformio.public import PlatformBase


class SqzqemuPlatform(PlatformBase):  # PlatformIO derives the name from platform.json's "sqz-qemu"
    pass
