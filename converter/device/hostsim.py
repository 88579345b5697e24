"""The firmware as a host process: the board loop without a board.

`build_host_firmware()` compiles the runtime, the application (firmware/src/app) and the host
port (firmware/ports/host/port_host.c) with a generated model directory (model.c,
model_data.c, model.h, sqz_target.h). `start_host_firmware()` runs it and opens the
pseudo-terminal it serves the protocol on, so converter.device talks to it exactly as to a
board:

    with start_host_firmware(model_dir, sanitize=True) as fw:
        dev = DeviceClient(fw.port)
        dev.hello()

The process is always stopped when the block ends, whatever ends it.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .. import arch
from ..errors import BuildError, DeviceError, InputFileError
from ..paths import FIRMWARE, require
from .build import (
    WARN_FLAGS,
    compile_c,
    compiler,
    content_digest,
    firmware_headers,
    runtime_sources,
)
from .simproc import SimulatedDevice

START_TIMEOUT = 10.0  # s for the process to print its SQZ-PTY line
STOP_TIMEOUT = 3.0    # s to exit after SIGTERM before it is killed
MODEL_FILES = ("model.c", "model_data.c", "model.h", "sqz_target.h")

# Findings abort the process with a report on stderr; leaks are checked at exit.
SANITIZER_ENV = {
    "ASAN_OPTIONS": "abort_on_error=0:halt_on_error=1:detect_leaks=1:exitcode=23",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:exitcode=24",
}


def app_dir() -> Path:
    return FIRMWARE / "src" / "app"


def host_port_source() -> Path:
    return FIRMWARE / "ports" / "host" / "port_host.c"


def firmware_sources(model_dir: Path) -> list[Path]:
    """Every C file of the host firmware for the model in `model_dir`."""
    model_dir = Path(model_dir)
    for name in MODEL_FILES:
        if not (model_dir / name).is_file():
            raise InputFileError(
                f"{model_dir / name} is missing: a generated model directory holds "
                f"{', '.join(MODEL_FILES)} (run sqz-convert to produce one)")
    return [*runtime_sources(), *arch.sources(arch.of_model_dir(model_dir)),
            *sorted(require(app_dir()).glob("*.c")), require(host_port_source()),
            model_dir / "model.c", model_dir / "model_data.c"]


def build_host_firmware(model_dir: Path, build_dir: Path | None = None, *,
                        sanitize: bool = False, opt: str = "-O2") -> Path:
    """The host firmware executable for `model_dir`, built into `build_dir` (default: a
    shared directory under the system temp dir). The file name carries a hash of every
    source, header and flag, so an unchanged firmware is not rebuilt."""
    model_dir = Path(model_dir)
    sources = firmware_sources(model_dir)
    build_dir = Path(build_dir) if build_dir else Path(tempfile.gettempdir()) / "sqz-hostsim"
    digest = content_digest((compiler(), WARN_FLAGS, opt, sanitize),
                            [*sources, *firmware_headers(model_dir)])
    exe = build_dir / f"sqz-host-{'asan-' if sanitize else ''}{digest}"
    if exe.is_file():
        return exe
    tmp = exe.with_name(f"{exe.name}.tmp{os.getpid()}")
    compile_c(sources, tmp, includes=[model_dir, app_dir()], opt=opt, sanitize=sanitize)
    os.replace(tmp, exe)  # atomic: concurrent builds of the same firmware are harmless
    return exe


class HostFirmware(SimulatedDevice):
    """A running host firmware: `port` is an open pyserial port on its pty."""

    def __init__(self, exe: Path, *, baud: int = 115200,
                 start_timeout: float = START_TIMEOUT) -> None:
        super().__init__(baud=baud, start_timeout=start_timeout)
        self.exe = Path(exe)
        self.pty_path: str | None = None

    def start(self) -> HostFirmware:
        from .client import POLL_INTERVAL, open_port

        self._stderr = tempfile.TemporaryFile()
        env = {**os.environ, **SANITIZER_ENV}
        try:
            self.proc = subprocess.Popen([str(self.exe)], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=self._stderr, env=env)
        except OSError as e:
            raise BuildError(f"cannot start the host firmware {self.exe}: {e}") from e
        line = self._read_line(self.start_timeout)
        if not line.startswith("SQZ-PTY "):
            raise DeviceError(
                f"the host firmware {self.exe.name} printed {line!r} instead of "
                f"'SQZ-PTY <path>'{self._stderr_hint()}")
        self.pty_path = line[len("SQZ-PTY "):].strip()
        self.port = open_port(self.pty_path, self.baud, POLL_INTERVAL)
        return self

    def _read_line(self, timeout: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        out = self.proc.stdout
        buf = bytearray()
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(out, selectors.EVENT_READ)
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DeviceError(
                        f"the host firmware {self.exe.name} did not print its 'SQZ-PTY' line "
                        f"within {timeout:.0f} s{self._stderr_hint()}")
                if not sel.select(left):
                    continue
                chunk = os.read(out.fileno(), 4096)
                if not chunk:
                    code = self.proc.wait()
                    raise DeviceError(
                        f"the host firmware {self.exe.name} exited with status {code} before "
                        f"opening its pty{self._stderr_hint()}")
                buf += chunk
        return buf.split(b"\n", 1)[0].decode(errors="replace")

    def _stderr_hint(self) -> str:
        text = self.stderr_text().strip()
        return f"; its stderr:\n{text[-3000:]}" if text else ""

    def close(self) -> int | None:
        """Stops the process (stdin EOF, then SIGTERM, then SIGKILL); returns its status."""
        self._close_port()
        code = None
        if self.proc is not None:
            proc = self.proc
            try:
                try:
                    if proc.stdin:
                        proc.stdin.close()
                except OSError:
                    pass
                try:
                    code = proc.wait(timeout=0.5)  # stdin EOF alone makes it exit
                except subprocess.TimeoutExpired:
                    proc.terminate()
                    try:
                        code = proc.wait(timeout=STOP_TIMEOUT)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        code = proc.wait()
            except BaseException:
                if proc.poll() is None:  # interrupted while stopping: do not leave it behind
                    proc.kill()
                    proc.wait()
                raise
            finally:
                if proc.stdout:
                    proc.stdout.close()
        return code


@contextmanager
def start_host_firmware(model_dir: Path, *, sanitize: bool = False,
                        build_dir: Path | None = None, baud: int = 115200,
                        start_timeout: float = START_TIMEOUT) -> Iterator[HostFirmware]:
    """Builds (if needed) and runs the host firmware; yields the HostFirmware (its `port` is
    open). The process is stopped on exit from the block, exceptions and Ctrl-C included."""
    exe = build_host_firmware(model_dir, build_dir, sanitize=sanitize)
    fw = HostFirmware(exe, baud=baud, start_timeout=start_timeout)
    try:
        fw.start()
        yield fw
    finally:
        fw.close()


@contextmanager
def open_host_port(model_dir: Path, **kwargs) -> Iterator[object]:
    """Like start_host_firmware, but yields just the open pyserial port."""
    with start_host_firmware(model_dir, **kwargs) as fw:
        yield fw.port
