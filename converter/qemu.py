"""The Cortex-M firmware on an emulated board: QEMU's mps2-an386 (Cortex-M4), UART0 on TCP.

`build_qemu_firmware()` cross-compiles the runtime, the application (firmware/src/app) and the
bare-metal port (firmware/ports/mps2_an386/) with a model directory generated for the
mps2-an386 target. `start_qemu_firmware()` boots it in qemu-system-arm under -icount, so that
the counter reports executed instructions, exactly and repeatably, and connects to its UART
through a local TCP socket, so converter.device talks to it exactly as to a board:

    with start_qemu_firmware(model_dir) as q:
        dev = DeviceClient(q.port)
        dev.hello()

QEMU is always stopped when the block ends, whatever ends it, and dies with the Python process
that started it (PR_SET_PDEATHSIG on Linux).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from . import arch
from .build import content_digest, firmware_headers, runtime_sources
from .errors import BudgetError, BuildError, DeviceError, SqzError, UsageError
from .hostsim import app_dir, firmware_sources
from .paths import FIRMWARE, require
from .simproc import SimulatedDevice

TARGET = "mps2-an386"
QEMU = "qemu-system-arm"
CC = "arm-none-eabi-gcc"
SIZE = "arm-none-eabi-size"
APT_HINT = "apt-get install qemu-system-arm gcc-arm-none-eabi libnewlib-arm-none-eabi"

CPU_FLAGS = ("-mcpu=cortex-m4", "-mthumb")
C_FLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-ffunction-sections",
           "-fdata-sections")
# Our own reset handler replaces crt0; newlib-nano supplies memcpy and friends, nosys the
# (unused) system call stubs.
LINK_FLAGS = ("-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs",
              "-Wl,--gc-sections")
# Executed instructions as the clock: 1 ns of virtual time each, whatever the host's speed.
ICOUNT = "shift=0,align=off,sleep=off"
# QEMU's memory map for the board (hw/arm/mps2.c), as in mps2_an386.ld.
FLASH_BYTES = 4 * 1024 * 1024
RAM_BYTES = 4 * 1024 * 1024

START_TIMEOUT = 10.0  # s for QEMU to listen on its TCP port
STOP_TIMEOUT = 3.0    # s to exit after SIGTERM before it is killed
PR_SET_PDEATHSIG = 1


def port_dir() -> Path:
    return FIRMWARE / "ports" / "mps2_an386"


def linker_script() -> Path:
    return port_dir() / "mps2_an386.ld"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BuildError(f"{name} not found: the {TARGET} simulation needs QEMU and the Arm "
                         f"bare-metal toolchain; install them with `sudo {APT_HINT}`")
    return path


def _check_target(model_dir: Path) -> None:
    header = model_dir / "sqz_target.h"
    m = re.search(r'#define\s+SQZ_TARGET_NAME\s+"([^"]*)"', header.read_text(errors="replace"))
    if not m or m.group(1) != TARGET:
        got = m.group(1) if m else "no SQZ_TARGET_NAME"
        raise UsageError(
            f"{model_dir} was generated for target '{got}', but QEMU runs the {TARGET} "
            f"firmware (its counter, frame size and memory map come from that profile); "
            f"convert again with `sqz-convert ... --target {TARGET} --out {model_dir}`")


def qemu_firmware_sources(model_dir: Path) -> list[Path]:
    """Every C file of the mps2-an386 firmware for the model in `model_dir`."""
    model_dir = Path(model_dir)
    firmware_sources(model_dir)  # the same checks for a complete model directory
    return [*runtime_sources(), *arch.sources(arch.of_model_dir(model_dir)),
            *sorted(require(app_dir()).glob("*.c")),
            *sorted(require(port_dir()).glob("*.c")), model_dir / "model.c",
            model_dir / "model_data.c"]


def _arena_bytes(model_dir: Path) -> int | None:
    m = re.search(r"#define\s+SQZ_MODEL_ARENA_BYTES\s+(\d+)",
                  (model_dir / "model.h").read_text(errors="replace"))
    return int(m.group(1)) if m else None


def _link_error(log: str, model_dir: Path) -> SqzError:
    """The linker's complaint in the user's terms: what overflowed, by how much, what to do."""
    over = dict(re.findall(r"region `(\w+)' overflowed by (\d+) bytes", log))
    if not over:
        if "nano.specs" in log or "cannot find -lc" in log:
            return BuildError(f"newlib for {CC} is missing (no nano.specs / libc); install it "
                              f"with `sudo {APT_HINT}`:\n{log[-2000:]}")
        return BuildError(f"linking the {TARGET} firmware failed:\n{log[-4000:]}")
    limits = {"FLASH": FLASH_BYTES, "RAM": RAM_BYTES}
    what = {"FLASH": "weights, code and constants (SSRAM1 at 0x00000000)",
            "RAM": "arena, buffers and the 16 KiB stack (SSRAM2/3 at 0x20000000)"}
    parts = []
    for region, by in over.items():
        by = int(by)
        limit = limits.get(region, 0)
        parts.append(f"{region}: {what.get(region, region)} need {limit + by:,} B, the board "
                     f"has {limit:,} B ({limit // 1024 // 1024} MiB): over by {by:,} B")
    arena = _arena_bytes(model_dir)
    note = f" The model's arena is {arena:,} B." if arena is not None else ""
    return BudgetError(
        f"the model in {model_dir} does not fit {TARGET}:\n  - " + "\n  - ".join(parts) +
        f"\n{note} A smaller --input-size shrinks the arena, fewer --classes the weights; "
        "the board's 16 MiB PSRAM at 0x21000000 is not used by this port")


def build_qemu_firmware(model_dir: Path, build_dir: Path | None = None, *,
                        opt: str = "-O2") -> Path:
    """The firmware ELF for `model_dir`, built into `build_dir` (default: a shared directory
    under the system temp dir). The file name carries a hash of every source, header and flag,
    so an unchanged firmware is not rebuilt. A map file is written next to it."""
    model_dir = Path(model_dir)
    sources = qemu_firmware_sources(model_dir)
    _check_target(model_dir)
    cc = _tool(CC)
    build_dir = Path(build_dir) if build_dir else Path(tempfile.gettempdir()) / "sqz-qemu"
    digest = content_digest((CC, CPU_FLAGS, C_FLAGS, LINK_FLAGS, opt),
                            [*sources, *firmware_headers(model_dir), linker_script()])
    elf = build_dir / f"sqz-{TARGET}-{digest}.elf"
    if elf.is_file():
        return elf
    build_dir.mkdir(parents=True, exist_ok=True)
    tmp = elf.with_name(f"{elf.name}.tmp{os.getpid()}")
    tmp_map = elf.with_name(f"{elf.stem}.map.tmp{os.getpid()}")
    cmd = [cc, *CPU_FLAGS, opt, *C_FLAGS]
    for inc in (FIRMWARE / "include", model_dir, app_dir()):
        cmd += ["-I", str(inc)]
    cmd += [*(str(s) for s in sources), "-T", str(require(linker_script())), *LINK_FLAGS,
            f"-Wl,-Map={tmp_map}", "-o", str(tmp)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            log = (proc.stderr or proc.stdout).strip()
            if "overflowed by" in log or "/ld: " in log or "collect2" in log:
                raise _link_error(log, model_dir)
            raise BuildError(f"compiling the {TARGET} firmware failed:\n{log[-4000:]}")
        os.replace(tmp_map, elf.with_suffix(".map"))
    except BaseException:
        tmp.unlink(missing_ok=True)
        tmp_map.unlink(missing_ok=True)
        raise
    os.replace(tmp, elf)  # atomic: concurrent builds of the same firmware are harmless
    return elf


def image_size(elf: Path) -> dict[str, int]:
    """Section totals of a firmware ELF from arm-none-eabi-size: flash holds code, constants
    and the initial values of .data; RAM holds .data, .bss (the arena among it) and the
    stack."""
    proc = subprocess.run([_tool(SIZE), "-B", str(elf)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{SIZE} failed on {elf}: {proc.stderr.strip()}")
    lines = proc.stdout.strip().splitlines()
    if len(lines) < 2:
        raise BuildError(f"{SIZE} printed nothing usable for {elf}: {proc.stdout!r}")
    text, data, bss = (int(v) for v in lines[1].split()[:3])
    return {"text": text, "data": data, "bss": bss, "flash": text + data, "ram": data + bss,
            "flash_limit": FLASH_BYTES, "ram_limit": RAM_BYTES}


def _die_with_parent(parent: int):
    """A preexec_fn: the child gets SIGKILL when the thread that started it exits."""
    if not sys.platform.startswith("linux"):
        return None

    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)

    def arm() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)
    return arm


class QemuFirmware(SimulatedDevice):
    """A running QEMU: `port` is an open pyserial port on the board's UART0."""

    def __init__(self, elf: Path, *, baud: int = 115200,
                 start_timeout: float = START_TIMEOUT) -> None:
        super().__init__(baud=baud, start_timeout=start_timeout)
        self.elf = Path(elf)
        self.tcp_port: int | None = None

    @property
    def description(self) -> str:
        return (f"QEMU {TARGET} (Cortex-M4, -icount {ICOUNT}), UART0 on "
                f"tcp://127.0.0.1:{self.tcp_port}")

    def command(self) -> list[str]:
        # Port 0: QEMU picks a free port and names it on stderr, so there is no race with
        # another process for it. wait=on: the guest starts only once we are connected, so
        # its BOOT frame is not lost.
        return [_tool(QEMU), "-M", TARGET, "-nodefaults", "-display", "none", "-monitor",
                "none", "-no-reboot", "-icount", ICOUNT, "-kernel", str(self.elf),
                "-serial", "tcp:127.0.0.1:0,server=on,wait=on"]

    def start(self) -> QemuFirmware:
        from .device import POLL_INTERVAL, open_port

        cmd = self.command()
        self._stderr = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=self._stderr,
                                         process_group=0,
                                         preexec_fn=_die_with_parent(os.getpid()))
        except OSError as e:
            raise BuildError(f"cannot start {QEMU}: {e}") from e
        self.tcp_port = self._wait_for_listen()
        self.port = open_port(f"socket://127.0.0.1:{self.tcp_port}", self.baud, POLL_INTERVAL)
        return self

    def _wait_for_listen(self) -> int:
        deadline = time.monotonic() + self.start_timeout
        pattern = re.compile(r"disconnected:tcp:127\.0\.0\.1:(\d+)")
        while True:
            m = pattern.search(self.stderr_text())
            if m:
                return int(m.group(1))
            if self.proc is not None and self.proc.poll() is not None:
                raise DeviceError(f"{QEMU} exited with status {self.proc.returncode} before "
                                  f"opening its serial port{self._stderr_hint()}")
            if time.monotonic() > deadline:
                raise DeviceError(f"{QEMU} did not open its serial port within "
                                  f"{self.start_timeout:.0f} s{self._stderr_hint()}")
            time.sleep(0.01)

    def _stderr_hint(self) -> str:
        # Not news: the listening line we parsed, and the board's NIC left without a backend.
        noise = ("waiting for connection on", "has no peer")
        lines = [ln for ln in self.stderr_text().splitlines()
                 if ln.strip() and not any(n in ln for n in noise)]
        text = "\n".join(lines)
        return f"; its stderr:\n{text[-3000:]}" if text else ""

    def exit_note(self, grace: float = 0.5) -> str:
        """Why QEMU is gone, for an error raised while talking to it ('' if it still runs
        after `grace` seconds: a closed link can be noticed before the process is gone)."""
        if self.proc is None:
            return ""
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            return ""
        code = self.proc.returncode
        if code == 0:
            return (f"; QEMU exited: the firmware faulted (its fault handler resets the board "
                    f"and QEMU runs with -no-reboot){self._stderr_hint()}")
        return f"; QEMU exited with status {code}{self._stderr_hint()}"

    def close(self) -> int | None:
        """Stops QEMU's process group (SIGTERM, then SIGKILL); returns QEMU's status."""
        self._close_port()
        proc = self.proc
        try:
            if proc is not None and proc.poll() is None:
                self._signal_group(proc, signal.SIGTERM)
                try:
                    proc.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self._signal_group(proc, signal.SIGKILL)
                    proc.wait()
        except BaseException:
            if proc.poll() is None:  # interrupted while stopping: do not leave it behind
                self._signal_group(proc, signal.SIGKILL)
                proc.wait()
            raise
        finally:
            if self._stderr is not None and (proc is None or proc.poll() is not None):
                self._stderr.close()
                self._stderr = None
        return None if proc is None else proc.returncode

    @staticmethod
    def _signal_group(proc: subprocess.Popen, sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)  # its own group (process_group=0): pgid == pid
        except ProcessLookupError:
            pass


@contextmanager
def start_qemu_firmware(model_dir: Path, *, build_dir: Path | None = None, opt: str = "-O2",
                        baud: int = 115200, start_timeout: float = START_TIMEOUT
                        ) -> Iterator[QemuFirmware]:
    """Builds (if needed) and boots the mps2-an386 firmware for `model_dir` in QEMU; yields
    the QemuFirmware (`port` open, `description` set). QEMU is stopped on exit from the block,
    exceptions and Ctrl-C included."""
    _tool(QEMU)  # before a long build: say at once if the emulator is missing
    elf = build_qemu_firmware(model_dir, build_dir, opt=opt)
    q = QemuFirmware(elf, baud=baud, start_timeout=start_timeout)
    try:
        q.start()
        yield q
    except DeviceError as e:
        note = q.exit_note()
        if note:
            raise type(e)(f"{e}{note}") from e
        raise
    finally:
        q.close()
