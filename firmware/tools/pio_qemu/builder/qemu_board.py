"""The emulated board behind `pio run -t upload`: tools, flash image, and the emulator itself.

Plain Python (no SCons), so that builder/main.py stays a thin SCons script and tests can hold this
module to what sqz itself does (converter/device/qemu.py): the same tools found the same way, the
same QEMU command line, the same flash image. Everything board-specific comes from the board
manifest (boards/<board>.json: build.sqz and upload.qemu).

The emulator outlives `pio run`: it runs in its own session with its output in a log file, and
a small state file in the env's build directory (qemu.json: pid, port, image) lets the next
upload replace it and `pio run -t stop` stop it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

START_TIMEOUT = 10.0  # s for QEMU to open its TCP port
STOP_TIMEOUT = 3.0  # s to exit after SIGTERM before it is killed
STATE = "qemu.json"
LOG = "qemu.log"
_LISTENING = re.compile(r"disconnected:tcp:127\.0\.0\.1:(\d+)")


class BoardError(Exception):
    """Something the user has to fix (a missing tool, a port in use); the message says what."""


def tool_dirs(sqz: dict) -> list[str]:
    """Where a board's tools are looked for after PATH (esp32s3_tool_dirs in
    converter/device/qemu.py): $<env> (the directory the ESP32-S3 bundle's install.sh was given),
    then its default under the temporary directory."""
    spec = sqz.get("tool_dirs")
    if not spec:
        return []
    roots = []
    if os.environ.get(spec["env"]):
        roots.append(os.environ[spec["env"]])
    roots.append(os.path.join(os.environ.get("TMPDIR") or tempfile.gettempdir(),
                              spec["default"]))
    return [os.path.join(r, sub) for r in roots for sub in spec["subdirs"]]


def find_tool(name: str, sqz: dict) -> str | None:
    path = shutil.which(name)
    if path is None:
        for d in tool_dirs(sqz):
            candidate = os.path.join(d, name)
            if os.access(candidate, os.X_OK):
                return candidate
    return path


def require_tool(name: str, sqz: dict, board_name: str) -> str:
    path = find_tool(name, sqz)
    if path is None:
        raise BoardError(f"{name} not found: the {board_name} board needs QEMU and its "
                         f"toolchain; {sqz['install_hint']}")
    return path


def kernel_path(elf: str, qemu: dict) -> str:
    """What QEMU loads with -kernel: the ELF, or for a board with a flash image a copy of it
    without the section the flash holds."""
    if "flash_image" not in qemu:
        return elf
    return os.path.splitext(elf)[0] + ".kernel.elf"


def flash_image_path(elf: str) -> str:
    return os.path.splitext(elf)[0] + ".flash.bin"


def write_flash_image(elf: str, qemu: dict, objcopy: str) -> None:
    """Splits the ELF into the -kernel ELF and the flash image (as converter/device/qemu.py
    does): the flash section is cut out and written at its offset of a flash-sized image."""
    img = qemu["flash_image"]
    section_bin = flash_image_path(elf) + ".section"
    try:
        _run([objcopy, "-O", "binary", "--only-section", img["section"], elf, section_bin])
        with open(section_bin, "rb") as f:
            data = f.read()
    finally:
        if os.path.exists(section_bin):
            os.unlink(section_bin)
    if img["offset"] + len(data) > img["size"]:
        raise BoardError(f"{img['section']} ({len(data):,} B) does not fit the "
                         f"{img['size'] // (1024 * 1024)} MiB flash at offset {img['offset']:#x}")
    with open(flash_image_path(elf), "wb") as f:  # sparse: only the section's bytes are stored
        f.seek(img["offset"])
        f.write(data)
        f.truncate(img["size"])
    _run([objcopy, "--remove-section", img["section"], elf, kernel_path(elf, qemu)])


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BoardError(f"{' '.join(cmd)} failed:\n{(proc.stderr or proc.stdout).strip()}")


def qemu_command(qemu_exe: str, qemu: dict, elf: str, port: int) -> list[str]:
    """QEMU's command line (QemuFirmware.command in converter/device/qemu.py, with the port given):
    the board's UART0 served on 127.0.0.1:`port` (0: QEMU picks a free one). wait=on: the guest
    starts when the first client connects, so its BOOT frame is not lost; later clients find it
    running."""
    cmd = [qemu_exe, "-M", qemu["machine"], "-nodefaults", "-display", "none", "-monitor",
           "none", "-no-reboot", *qemu["args"]]
    if qemu.get("memory"):
        cmd += ["-m", qemu["memory"]]
    if "flash_image" in qemu:
        cmd += ["-drive", f"file={flash_image_path(elf)},if=mtd,format=raw,readonly=on"]
    return [*cmd, "-kernel", kernel_path(elf, qemu), "-serial",
            f"tcp:127.0.0.1:{port},server=on,wait=on,nodelay=on"]


def parse_port(text: str | None) -> int:
    """upload_port as the user may write it: socket://127.0.0.1:N, tcp://...:N or N; unset: 0."""
    if not text:
        return 0
    m = re.fullmatch(r"(?:(?:socket|tcp)://(?:127\.0\.0\.1|localhost):)?(\d{1,5})", text.strip())
    if m is None or not 0 < int(m.group(1)) < 65536:
        raise BoardError(f"upload_port {text!r}: give socket://127.0.0.1:PORT (or leave it unset "
                         "to let QEMU pick a free port)")
    return int(m.group(1))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_our_qemu(pid: int, state: dict) -> bool:
    """The pid still belongs to the QEMU this state file recorded (not a recycled pid)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except OSError:
        return _alive(pid)  # no /proc (macOS): trust the state file
    return bool(args) and os.path.basename(args[0].decode(errors="replace")) == state["program"]


def read_state(state_dir: str) -> dict | None:
    try:
        with open(os.path.join(state_dir, STATE), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def stop(state_dir: str) -> dict | None:
    """Stops the emulator recorded in `state_dir` (SIGTERM to its process group, then SIGKILL);
    returns its state, or None when none was running."""
    state = read_state(state_dir)
    path = os.path.join(state_dir, STATE)
    if state is None:
        return None
    pid = int(state["pid"])
    running = _alive(pid) and _is_our_qemu(pid, state)
    if running:
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while _alive(pid) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.05)
        if _alive(pid):
            _signal_group(pid, signal.SIGKILL)
            _reap(pid)
    os.unlink(path)
    return state if running else None


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # its own session: pgid == pid
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def start(qemu_exe: str, qemu: dict, elf: str, state_dir: str, port: int = 0) -> dict:
    """Starts the emulator detached from `pio run` (own session, output to qemu.log, no pipes
    held open) and returns its state once its UART listens: {"pid", "port", "url", ...}."""
    stop(state_dir)  # a new upload replaces the running image, as flashing a board does
    os.makedirs(state_dir, exist_ok=True)
    log_path = os.path.join(state_dir, LOG)
    cmd = qemu_command(qemu_exe, qemu, elf, port)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, close_fds=True)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        with open(log_path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        m = _LISTENING.search(text)
        if m:
            break
        if proc.poll() is not None:
            raise BoardError(f"{os.path.basename(qemu_exe)} exited with status {proc.returncode} "
                             f"before opening its serial port:\n{text.strip()[-3000:]}")
        if time.monotonic() > deadline:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
            raise BoardError(f"{os.path.basename(qemu_exe)} did not open its serial port within "
                             f"{START_TIMEOUT:.0f} s:\n{text.strip()[-3000:]}")
        time.sleep(0.02)
    bound = int(m.group(1))
    state = {"pid": proc.pid, "port": bound, "url": f"socket://127.0.0.1:{bound}",
             "program": os.path.basename(qemu_exe), "elf": os.path.abspath(elf),
             "log": os.path.abspath(log_path), "command": cmd}
    tmp = os.path.join(state_dir, STATE + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(state, f, indent=2)
    os.replace(tmp, os.path.join(state_dir, STATE))
    return state
