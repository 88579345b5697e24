"""The firmware on an emulated board: QEMU runs it, UART0 on a TCP socket.

Four boards, each the emulated twin of a target profile (targets/<target>.toml):

- mps2-an386: Arm's MPS2 with the AN386 image (Cortex-M4) in qemu-system-arm, counting
  instructions under -icount (firmware/ports/mps2_an386/);
- mps2-an386-128k: the same machine and port, linked to use only 2 MiB of flash and 128 KiB of
  RAM (a small Cortex-M4 such as the STM32F411RE);
- mps3-an547: Arm's MPS3 with the AN547 image (Corstone SSE-300, a Cortex-M55 with Helium) in
  qemu-system-arm, counting instructions under -icount (firmware/ports/mps3_an547/);
- esp32s3-qemu: the ESP32-S3 (Xtensa LX7 with the PIE SIMD unit) in Espressif's
  qemu-system-xtensa, counting retired instructions with the core's ICOUNT register
  (firmware/ports/esp32s3_qemu/; toolchain and emulator from the ESP32-S3 bundle, see
  `esp32s3_tool_dirs`).

`build_qemu_firmware()` cross-compiles the runtime, the kernel variants of the model's
architecture (converter.arch), the application (firmware/src/app) and the board's bare-metal port
for a model directory generated for one of these targets; `start_qemu_firmware()` boots it on
the board the model was converted for and connects to its UART through a local TCP socket, so
converter.device talks to it exactly as to a real board:

    with start_qemu_firmware(model_dir) as q:
        dev = DeviceClient(q.port)
        dev.hello()

`board_for_target(name)` / `board_for_model(model_dir)` map a target or a model directory to its
board. QEMU is always stopped when the block ends, whatever ends it, and dies with the Python
process that started it (PR_SET_PDEATHSIG on Linux).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .. import arch
from ..errors import BudgetError, BuildError, DeviceError, InputFileError, SqzError, UsageError
from ..paths import FIRMWARE, require
from .build import content_digest, firmware_headers, runtime_sources
from .hostsim import app_dir, firmware_sources
from .simproc import SimulatedDevice

MiB = 1024 * 1024
C_FLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-ffunction-sections",
           "-fdata-sections")
START_TIMEOUT = 10.0  # s for QEMU to listen on its TCP port
STOP_TIMEOUT = 3.0    # s to exit after SIGTERM before it is killed
PR_SET_PDEATHSIG = 1
ELF_MACHINE_ARM = 40
ELF_MACHINE_XTENSA = 94


@dataclass(frozen=True)
class Region:
    """A MEMORY region of a board's linker script, for "does not fit" messages."""

    name: str
    limit: int
    holds: str


@dataclass(frozen=True)
class FlashImage:
    """A flash chip QEMU attaches (-drive if=mtd): `section` of the ELF is cut out of the image
    QEMU loads with -kernel and written at `offset` of a `size`-byte flash image instead."""

    section: str
    offset: int
    size: int


@dataclass(frozen=True)
class Board:
    """An emulated board: the profile whose models it runs, its toolchain and its QEMU."""

    target: str               # targets/<target>.toml, SQZ_TARGET_NAME of its models
    cpu: str                  # for messages
    counter: str              # what its counter counts, for the device description
    qemu: str
    machine: str
    cc: str
    size: str
    objcopy: str
    cpu_flags: tuple[str, ...]
    link_flags: tuple[str, ...]
    libs: tuple[str, ...]     # after the objects
    port: str                 # firmware/ports/<port>/
    linker_script: str        # in the port directory
    qemu_args: tuple[str, ...]
    install_hint: str
    regions: tuple[Region, ...]
    flash_limit: int          # image_size(): what the board's flash and RAM hold
    ram_limit: int
    fit_advice: str           # the end of a "does not fit" message
    elf_machine: int
    flash_image: FlashImage | None = None
    # Lines on QEMU's stderr that are not news (a banner, an option it always warns about).
    stderr_noise: tuple[str, ...] = ()
    uses_psram: bool = False  # QEMU gets -m <the profile's PSRAM>
    # Tag_CPU_name of the ELF's build attributes (gcc's -mcpu), which tells apart boards of
    # the same ELF machine; None: the board of that machine whose CPU no other board names.
    elf_cpu: str | None = None

    def port_dir(self) -> Path:
        return FIRMWARE / "ports" / self.port

    def linker_script_path(self) -> Path:
        return self.port_dir() / self.linker_script

    def tool(self, name: str) -> str:
        """The full path of one of the board's tools (compiler, size, QEMU); BuildError with
        how to install it when it is missing."""
        path = _find_tool(name, self)
        if path is None:
            raise BuildError(f"{name} not found: the {self.target} simulation needs QEMU and the "
                             f"{self.cpu} toolchain; {self.install_hint}")
        return path

    def missing_tools(self) -> list[str]:
        """The board's tools that cannot be found (empty when it can build and boot)."""
        return [t for t in (self.qemu, self.cc, self.size, self.objcopy)
                if _find_tool(t, self) is None]


# ---- mps2-an386 -------------------------------------------------------------------------------

TARGET = "mps2-an386"
QEMU = "qemu-system-arm"
CC = "arm-none-eabi-gcc"
SIZE = "arm-none-eabi-size"
APT_HINT = "apt-get install qemu-system-arm gcc-arm-none-eabi libnewlib-arm-none-eabi"
CPU_FLAGS = ("-mcpu=cortex-m4", "-mthumb")
# Our own reset handler replaces crt0; newlib-nano supplies memcpy and friends, nosys the
# (unused) system call stubs.
LINK_FLAGS = ("-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs",
              "-Wl,--gc-sections")
# Executed instructions as the clock: 1 ns of virtual time each, whatever the host's speed.
ICOUNT = "shift=0,align=off,sleep=off"
# QEMU's memory map for the board (hw/arm/mps2.c), as in mps2_an386.ld.
FLASH_BYTES = 4 * MiB
RAM_BYTES = 4 * MiB

MPS2_AN386 = Board(
    target=TARGET, cpu="Cortex-M4", counter=f"-icount {ICOUNT}", qemu=QEMU, machine=TARGET,
    cc=CC, size=SIZE, objcopy="arm-none-eabi-objcopy", cpu_flags=CPU_FLAGS,
    link_flags=LINK_FLAGS, libs=(), port="mps2_an386", linker_script="mps2_an386.ld",
    qemu_args=("-icount", ICOUNT),
    install_hint=f"install them with `sudo {APT_HINT}`",
    regions=(Region("FLASH", FLASH_BYTES, "weights, code and constants (SSRAM1 at 0x00000000)"),
             Region("RAM", RAM_BYTES,
                    "arena, buffers and the 16 KiB stack (SSRAM2/3 at 0x20000000)")),
    flash_limit=FLASH_BYTES, ram_limit=RAM_BYTES,
    fit_advice="the board's 16 MiB PSRAM at 0x21000000 is not used by this port",
    elf_machine=ELF_MACHINE_ARM, stderr_noise=("has no peer",),
)

# ---- mps2-an386-128k -------------------------------------------------------------------------

# The same machine, port and kernels; the linker script's parameters (mps2_an386.ld) give the
# firmware only what a small Cortex-M4 has, so that a model that needs more fails here as it
# would on that board. The profile (targets/mps2-an386-128k.toml) says the same to the converter.
SMALL_TARGET = "mps2-an386-128k"
SMALL_FLASH_BYTES = 2 * MiB
SMALL_RAM_BYTES = 128 * 1024
SMALL_STACK_BYTES = 8 * 1024
SMALL_DEFSYMS = (f"-Wl,--defsym=SQZ_FLASH_BYTES={SMALL_FLASH_BYTES}",
                 f"-Wl,--defsym=SQZ_RAM_BYTES={SMALL_RAM_BYTES}",
                 f"-Wl,--defsym=SQZ_STACK_BYTES={SMALL_STACK_BYTES}")

MPS2_AN386_128K = dataclasses.replace(
    MPS2_AN386, target=SMALL_TARGET, link_flags=(*LINK_FLAGS, *SMALL_DEFSYMS),
    regions=(Region("FLASH", SMALL_FLASH_BYTES,
                    "weights, code and constants (the first 2 MiB of SSRAM1)"),
             Region("RAM", SMALL_RAM_BYTES,
                    "arena, buffers and the 8 KiB stack (the first 128 KiB of SSRAM2/3)")),
    flash_limit=SMALL_FLASH_BYTES, ram_limit=SMALL_RAM_BYTES,
    fit_advice=(f"this profile stands in for a board with {SMALL_RAM_BYTES // 1024} KiB of RAM "
                f"(--target {TARGET} has 4 MiB)"),
)

# ---- mps3-an547 -------------------------------------------------------------------------------

MPS3_TARGET = "mps3-an547"
# Hard-float ABI: MVE needs the FPU's register file (gcc refuses arm_mve.h under soft-float).
M55_CPU_FLAGS = ("-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard")
# QEMU's memory map for the board (hw/arm/mps2-tz.c, armsse.c), as in mps3_an547.ld.
M55_ITCM_BYTES = 512 * 1024
M55_FLASH_BYTES = 8 * MiB
M55_RAM_BYTES = 4 * MiB

MPS3_AN547 = Board(
    target=MPS3_TARGET, cpu="Cortex-M55 + MVE", counter=f"-icount {ICOUNT}", qemu=QEMU,
    machine=MPS3_TARGET, cc=CC, size=SIZE, objcopy="arm-none-eabi-objcopy",
    cpu_flags=M55_CPU_FLAGS, link_flags=LINK_FLAGS, libs=(), port="mps3_an547",
    linker_script="mps3_an547.ld", qemu_args=("-icount", ICOUNT),
    install_hint=f"install them with `sudo {APT_HINT}`",
    regions=(Region("ITCM", M55_ITCM_BYTES, "code (ITCM at 0x00000000)"),
             Region("FLASH", M55_FLASH_BYTES,
                    "weights, constants and the initial values of .data (QSPI flash at "
                    "0x28000000)"),
             Region("RAM", M55_RAM_BYTES,
                    "arena, buffers and the 16 KiB stack (internal SRAM at 0x21000000)")),
    flash_limit=M55_ITCM_BYTES + M55_FLASH_BYTES, ram_limit=M55_RAM_BYTES,
    fit_advice="the board's 2 GiB DDR at 0x60000000 is not used by this port",
    elf_machine=ELF_MACHINE_ARM, stderr_noise=("has no peer",), elf_cpu="cortex-m55",
)

# ---- esp32s3-qemu -----------------------------------------------------------------------------

ESP32S3_TARGET = "esp32s3-qemu"
ESP32S3_BUNDLE_HINT = (
    "install the ESP32-S3 toolchain + QEMU bundle with `../shared/esp32s3/install.sh DIR` (after "
    "the apt-get line in its README) and put DIR/xtensa-esp32s3-elf/bin and DIR/qemu/bin on PATH, "
    "or set SQZ_ESP32S3_TOOLCHAIN=DIR")
# The flash chip of the ESP32-S3-DevKitC-1 N8R8 (8 MB); .drom goes where the default partition
# table puts the application (0x10000), as start_esp32s3_qemu.S maps it.
ESP32S3_FLASH = FlashImage(section=".drom", offset=0x10000, size=8 * MiB)
# On silicon the ROM bootloader holds the second core until the application starts it; with
# -kernel QEMU leaves it taking exceptions on the empty ROM, a busy loop that costs as much host
# time as the firmware. QEMU's generic loader writes `waiti 15; j .` (00 7f 00 46 fe ff) at its
# reset vector in its own ROM, and it sleeps instead.
ESP32S3_PARK_CPU1 = ("-device", "loader,addr=0x40000400,data=0x46007f00,data-len=4,cpu-num=1",
                     "-device", "loader,addr=0x40000404,data=0xfffe,data-len=2,cpu-num=1")

ESP32S3_QEMU = Board(
    target=ESP32S3_TARGET, cpu="Xtensa LX7 + PIE", counter="ICOUNT",
    qemu="qemu-system-xtensa", machine="esp32s3", cc="xtensa-esp32s3-elf-gcc",
    size="xtensa-esp32s3-elf-size", objcopy="xtensa-esp32s3-elf-objcopy",
    cpu_flags=("-mlongcalls",),
    # The bundle's gcc defaults to Tensilica's simulator start files and libraries: -nostdlib,
    # and newlib's libc (memcpy and friends) and libgcc named explicitly.
    link_flags=("-nostdlib", "-Wl,--gc-sections"),
    libs=("-Wl,--start-group", "-lc", "-lgcc", "-Wl,--end-group"),
    port="esp32s3_qemu", linker_script="esp32s3_qemu.ld",
    # No -icount: ICOUNT counts exactly without it, and under it QEMU's main loop (the socket,
    # the flash) runs only between long stretches of guest code, which stalls the UART.
    qemu_args=("-semihosting", *ESP32S3_PARK_CPU1),
    install_hint=ESP32S3_BUNDLE_HINT,
    regions=(Region("iram", 64 * 1024, "code and the initial values of .data (IRAM, SRAM1)"),
             Region("dram", 352 * 1024,
                    "the arena (when in internal SRAM), buffers and the 16 KiB stack (DRAM, "
                    "SRAM1)"),
             Region("drom", 3264 * 1024,
                    "weights and constants (flash, read through the cache at 0x3C000000)")),
    flash_limit=3264 * 1024 + 64 * 1024, ram_limit=352 * 1024,
    fit_advice=("an arena larger than the profile's sram_bytes goes to the 8 MB PSRAM instead "
                "(the converter decides); a smaller --input-size or fewer --classes help too"),
    elf_machine=ELF_MACHINE_XTENSA, flash_image=ESP32S3_FLASH,
    stderr_noise=("Not initializing SPI Flash", "Adding SPI flash device",
                  "both -bios and -kernel"),
    uses_psram=True,
)

BOARDS: dict[str, Board] = {b.target: b for b in (MPS2_AN386, MPS2_AN386_128K, MPS3_AN547,
                                                   ESP32S3_QEMU)}


def esp32s3_tool_dirs() -> list[Path]:
    """Where the ESP32-S3 bundle's tools are looked for after PATH: $SQZ_ESP32S3_TOOLCHAIN (the
    directory given to its install.sh) and install.sh's default directory."""
    roots = []
    if os.environ.get("SQZ_ESP32S3_TOOLCHAIN"):
        roots.append(Path(os.environ["SQZ_ESP32S3_TOOLCHAIN"]))
    roots.append(Path(os.environ.get("TMPDIR") or tempfile.gettempdir()) / "esp32s3-toolchain")
    return [d for r in roots for d in (r / "xtensa-esp32s3-elf" / "bin", r / "qemu" / "bin")]


def _find_tool(name: str, board: Board) -> str | None:
    path = shutil.which(name)
    if path is None and board is ESP32S3_QEMU:
        for d in esp32s3_tool_dirs():
            if os.access(d / name, os.X_OK):
                return str(d / name)
    return path


def board_for_target(name: str) -> Board | None:
    """The emulated board of a target profile, or None when the target has none."""
    return BOARDS.get(name)


def model_target(model_dir: Path) -> str | None:
    """SQZ_TARGET_NAME of a generated model directory (its sqz_target.h)."""
    header = Path(model_dir) / "sqz_target.h"
    if not header.is_file():
        raise InputFileError(f"{header} is missing: a generated model directory holds it (run "
                             "sqz-convert to produce one)")
    m = re.search(r'#define\s+SQZ_TARGET_NAME\s+"([^"]*)"', header.read_text(errors="replace"))
    return m.group(1) if m else None


def board_for_model(model_dir: Path) -> Board:
    """The emulated board a model directory was converted for; UsageError when its target has
    none, naming the targets that do."""
    got = model_target(model_dir)
    board = BOARDS.get(got or "")
    if board is None:
        what = f"target '{got}'" if got else "no SQZ_TARGET_NAME"
        raise UsageError(
            f"{model_dir} was generated for {what}, which QEMU does not emulate (its counter, "
            f"frame size and memory map come from the profile); convert again with `sqz-convert "
            f"... --target {TARGET} --out {model_dir}` (Cortex-M4), --target {MPS3_TARGET} "
            f"(Cortex-M55) or --target {ESP32S3_TARGET} (ESP32-S3)")
    return board


def _elf_attributes(data: bytes) -> bytes:
    """The .ARM.attributes section of a 32-bit little-endian ELF (b"" when it has none)."""
    if len(data) < 52:
        return b""
    shoff, = struct.unpack_from("<I", data, 32)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 46)

    def section(i: int) -> tuple[int, int, int]:
        name, _, _, _, off, size = struct.unpack_from("<IIIIII", data, shoff + i * shentsize)
        return name, off, size

    try:
        _, str_off, str_size = section(shstrndx)
        for i in range(shnum):
            name, off, size = section(i)
            end = data.index(b"\0", str_off + name)
            if data[str_off + name:end] == b".ARM.attributes":
                return data[off:off + size]
    except (struct.error, ValueError):
        pass
    return b""


def board_for_elf(elf: Path) -> Board:
    """The board a firmware ELF was built for, from its machine field and, where boards share
    one, the CPU its build attributes name."""
    try:
        data = Path(elf).read_bytes()
    except OSError as e:
        raise BuildError(f"cannot read the firmware {elf}: {e}") from None
    if len(data) < 20 or data[:4] != b"\x7fELF":
        raise BuildError(f"{elf} is not an ELF file")
    machine = struct.unpack_from("<H", data, 18)[0]
    candidates = [b for b in BOARDS.values() if b.elf_machine == machine]
    if len(candidates) > 1:
        attributes = _elf_attributes(data).lower()
        named = [b for b in candidates
                 if b.elf_cpu is not None and b.elf_cpu.encode() + b"\0" in attributes]
        candidates = named or [b for b in candidates if b.elf_cpu is None]
    if len(candidates) > 1:
        # Boards of one machine and CPU (mps2-an386 and its 128 KiB profile): the target name
        # the firmware reports in HELLO (SQZ_TARGET_NAME, a C string in its image).
        by_name = [b for b in candidates if b.target.encode() + b"\0" in data]
        candidates = by_name or candidates
    if candidates:
        return candidates[0]
    raise BuildError(f"{elf} is for ELF machine {machine}, which no emulated board runs")


# The mps2-an386 board's paths and tool lookup, kept for existing callers.
def port_dir() -> Path:
    return MPS2_AN386.port_dir()


def linker_script() -> Path:
    return MPS2_AN386.linker_script_path()


def _tool(name: str, board: Board = MPS2_AN386) -> str:
    return board.tool(name)


def qemu_firmware_sources(model_dir: Path) -> list[Path]:
    """Every C and assembly file of the emulated board's firmware for the model in
    `model_dir`."""
    model_dir = Path(model_dir)
    firmware_sources(model_dir)  # the same checks for a complete model directory
    board = board_for_model(model_dir)
    port = require(board.port_dir())
    return [*runtime_sources(), *arch.sources(arch.of_model_dir(model_dir)),
            *sorted(require(app_dir()).glob("*.c")),
            *sorted(p for p in port.iterdir() if p.suffix in (".c", ".S")),
            model_dir / "model.c", model_dir / "model_data.c"]


def _arena_bytes(model_dir: Path) -> int | None:
    m = re.search(r"#define\s+SQZ_MODEL_ARENA_BYTES\s+(\d+)",
                  (model_dir / "model.h").read_text(errors="replace"))
    return int(m.group(1)) if m else None


def _link_error(log: str, model_dir: Path, board: Board = MPS2_AN386) -> SqzError:
    """The linker's complaint in the user's terms: what overflowed, by how much, what to do."""
    over = dict(re.findall(r"region `(\w+)' overflowed by (\d+) bytes", log))
    if not over:
        if "nano.specs" in log or "cannot find -lc" in log:
            return BuildError(f"the C library for {board.cc} is missing (no nano.specs / libc); "
                              f"{board.install_hint}:\n{log[-2000:]}")
        return BuildError(f"linking the {board.target} firmware failed:\n{log[-4000:]}")
    regions = {r.name: r for r in board.regions}
    parts = []
    for name, by in over.items():
        by = int(by)
        r = regions.get(name, Region(name, 0, name))
        parts.append(f"{name}: {r.holds} need {r.limit + by:,} B, the board has {r.limit:,} B "
                     f"({r.limit / 1024:,.0f} KiB): over by {by:,} B")
    # The linker script's ASSERTs say what overflowed in sqz's terms (mps2_an386.ld).
    parts += sorted({m.strip() for m in re.findall(r"sqz: ([^\n]+)", log)})
    arena = _arena_bytes(model_dir)
    note = f" The model's arena is {arena:,} B." if arena is not None else ""
    return BudgetError(
        f"the model in {model_dir} does not fit {board.target}:\n  - " + "\n  - ".join(parts) +
        f"\n{note} A smaller --input-size shrinks the arena, fewer --classes the weights; "
        f"{board.fit_advice}")


def flash_image_path(elf: Path) -> Path:
    """The flash image built beside a firmware ELF (boards with a FlashImage)."""
    return elf.with_name(f"{elf.stem}.flash.bin")


def _kernel_elf(elf: Path) -> Path:
    return elf.with_name(f"{elf.stem}.kernel.elf")


def kernel_path(elf: Path) -> Path:
    """What QEMU loads with -kernel: the ELF itself, or, for a board with a flash image, a copy
    without the section the flash holds."""
    return elf if board_for_elf(elf).flash_image is None else _kernel_elf(elf)


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{what} failed:\n{(proc.stderr or proc.stdout).strip()[-4000:]}")


def _write_flash_image(board: Board, elf: Path, kernel_out: Path, flash_out: Path) -> None:
    """Splits `elf` into the -kernel ELF (without the flash section) and the flash image."""
    img = board.flash_image
    objcopy = board.tool(board.objcopy)
    section_bin = flash_out.with_name(flash_out.name + ".section")
    try:
        _run([objcopy, "-O", "binary", "--only-section", img.section, str(elf), str(section_bin)],
             f"extracting {img.section} from {elf.name}")
        data = section_bin.read_bytes()
    finally:
        section_bin.unlink(missing_ok=True)
    if img.offset + len(data) > img.size:
        raise BudgetError(f"{img.section} ({len(data):,} B) does not fit the {img.size // MiB} "
                          f"MiB flash at offset {img.offset:#x}")
    with open(flash_out, "wb") as f:  # sparse: only the section's bytes take disk space
        f.seek(img.offset)
        f.write(data)
        f.truncate(img.size)
    _run([objcopy, "--remove-section", img.section, str(elf), str(kernel_out)],
         f"removing {img.section} from {elf.name}")


def build_qemu_firmware(model_dir: Path, build_dir: Path | None = None, *,
                        opt: str = "-O2") -> Path:
    """The firmware ELF for `model_dir`, for the emulated board of the target it was converted
    for, built into `build_dir` (default: a shared directory under the system temp dir). The
    file name carries a hash of every source, header and flag, so an unchanged firmware is not
    rebuilt. A map file is written next to it, and for the ESP32-S3 the flash image and the
    -kernel ELF (flash_image_path(), kernel_path())."""
    model_dir = Path(model_dir)
    sources = qemu_firmware_sources(model_dir)
    board = board_for_model(model_dir)
    cc = board.tool(board.cc)
    build_dir = Path(build_dir) if build_dir else Path(tempfile.gettempdir()) / "sqz-qemu"
    script = require(board.linker_script_path())
    digest = content_digest((board.cc, board.cpu_flags, C_FLAGS, board.link_flags, board.libs,
                             board.flash_image, opt),
                            [*sources, *firmware_headers(model_dir), script])
    elf = build_dir / f"sqz-{board.target}-{digest}.elf"
    if elf.is_file():  # written last: the files beside it are complete
        return elf
    build_dir.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    tmp = elf.with_name(f"{elf.name}.tmp{pid}")
    tmp_map = elf.with_name(f"{elf.stem}.map.tmp{pid}")
    extra = []
    if board.flash_image is not None:
        extra = [(elf.with_name(f"{elf.stem}.kernel.elf.tmp{pid}"), _kernel_elf(elf)),
                 (elf.with_name(f"{elf.stem}.flash.bin.tmp{pid}"), flash_image_path(elf))]
    cmd = [cc, *board.cpu_flags, opt, *C_FLAGS]
    for inc in (FIRMWARE / "include", model_dir, app_dir()):
        cmd += ["-I", str(inc)]
    cmd += [*(str(s) for s in sources), "-T", str(script), *board.link_flags, *board.libs,
            f"-Wl,-Map={tmp_map}", "-o", str(tmp)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            log = (proc.stderr or proc.stdout).strip()
            if "overflowed by" in log or "/ld: " in log or "collect2" in log:
                raise _link_error(log, model_dir, board)
            raise BuildError(f"compiling the {board.target} firmware failed:\n{log[-4000:]}")
        if extra:
            _write_flash_image(board, tmp, extra[0][0], extra[1][0])
            for t, final in extra:
                os.replace(t, final)
        os.replace(tmp_map, elf.with_suffix(".map"))
    except BaseException:
        for t in (tmp, tmp_map, *(t for t, _ in extra)):
            t.unlink(missing_ok=True)
        raise
    os.replace(tmp, elf)  # atomic: concurrent builds of the same firmware are harmless
    return elf


def image_size(elf: Path) -> dict[str, int]:
    """Section totals of a firmware ELF from the board's `size`: flash holds code, constants
    and the initial values of .data; RAM holds .data, .bss (the arena among it, unless it is in
    PSRAM) and the stack."""
    board = board_for_elf(elf)
    size = board.tool(board.size)
    proc = subprocess.run([size, "-B", str(elf)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{board.size} failed on {elf}: {proc.stderr.strip()}")
    lines = proc.stdout.strip().splitlines()
    if len(lines) < 2:
        raise BuildError(f"{board.size} printed nothing usable for {elf}: {proc.stdout!r}")
    text, data, bss = (int(v) for v in lines[1].split()[:3])
    return {"text": text, "data": data, "bss": bss, "flash": text + data, "ram": data + bss,
            "flash_limit": board.flash_limit, "ram_limit": board.ram_limit}


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
                 start_timeout: float = START_TIMEOUT, board: Board | None = None) -> None:
        super().__init__(baud=baud, start_timeout=start_timeout)
        self.elf = Path(elf)
        self.board = board or board_for_elf(self.elf)
        self.tcp_port: int | None = None

    @property
    def description(self) -> str:
        b = self.board
        return (f"QEMU {b.machine} ({b.cpu}, {b.counter}), UART0 on "
                f"tcp://127.0.0.1:{self.tcp_port}")

    def command(self) -> list[str]:
        b = self.board
        cmd = [b.tool(b.qemu), "-M", b.machine, "-nodefaults", "-display", "none", "-monitor",
               "none", "-no-reboot", *b.qemu_args]
        if b.uses_psram:
            from ..targets import load

            psram = load(b.target).psram_bytes
            if psram:
                cmd += ["-m", f"{psram // MiB}M"]
        kernel = self.elf
        if b.flash_image is not None:
            cmd += ["-drive", f"file={flash_image_path(self.elf)},if=mtd,format=raw,readonly=on"]
            kernel = _kernel_elf(self.elf)
        # Port 0: QEMU picks a free port and names it on stderr, so there is no race with
        # another process for it. wait=on: the guest starts only once we are connected, so
        # its BOOT frame is not lost. nodelay=on: the UART hands the socket one byte at a time,
        # and with Nagle's algorithm every response after its first byte waited for the
        # host's delayed ACK (40 ms on Linux).
        return [*cmd, "-kernel", str(kernel), "-serial",
                "tcp:127.0.0.1:0,server=on,wait=on,nodelay=on"]

    def start(self) -> QemuFirmware:
        from .client import POLL_INTERVAL, open_port

        cmd = self.command()
        self._stderr = tempfile.TemporaryFile()
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=self._stderr,
                                         process_group=0,
                                         preexec_fn=_die_with_parent(os.getpid()))
        except OSError as e:
            raise BuildError(f"cannot start {self.board.qemu}: {e}") from e
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
                raise DeviceError(f"{self.board.qemu} exited with status "
                                  f"{self.proc.returncode} before opening its serial port"
                                  f"{self._stderr_hint()}")
            if time.monotonic() > deadline:
                raise DeviceError(f"{self.board.qemu} did not open its serial port within "
                                  f"{self.start_timeout:.0f} s{self._stderr_hint()}")
            time.sleep(0.01)

    def _stderr_hint(self) -> str:
        # Not news: the listening line we parsed, and what the board always says.
        noise = ("waiting for connection on", *self.board.stderr_noise)
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
    """Builds (if needed) and boots the firmware for `model_dir` on the emulated board of the
    target it was converted for (board_for_model); yields the QemuFirmware (`port` open,
    `description` set). QEMU is stopped on exit from the block, exceptions and Ctrl-C
    included."""
    firmware_sources(Path(model_dir))  # a clear error for an incomplete directory first
    board = board_for_model(model_dir)
    board.tool(board.qemu)  # before a long build: say at once if the emulator is missing
    elf = build_qemu_firmware(model_dir, build_dir, opt=opt)
    q = QemuFirmware(elf, baud=baud, start_timeout=start_timeout, board=board)
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
