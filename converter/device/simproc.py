"""What the simulated devices (host firmware on a pty, firmware in QEMU) share: a child
process with its stderr kept in a file, and a pyserial port to it that closes before the
process is stopped."""

from __future__ import annotations

import subprocess
from typing import IO


class SimulatedDevice:
    """Base of HostFirmware and QemuFirmware; subclasses start the process and open `port`."""

    def __init__(self, *, baud: int, start_timeout: float) -> None:
        self.baud = baud
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = None
        # A file, not a pipe: a chatty process can never block on a full stderr pipe.
        self._stderr: IO[bytes] | None = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stderr_text(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def _close_port(self) -> None:
        if self.port is not None:
            try:
                self.port.close()
            except Exception:  # the other end may already be gone; closing must not raise
                pass
            self.port = None

    def close(self) -> int | None:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
