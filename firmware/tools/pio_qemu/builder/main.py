"""SCons builder of sqz's emulated boards (PlatformIO runs it for `platform = sqz-qemu`).

Builds the project bare metal with the board's cross toolchain (boards/<board>.json: build.sqz),
linked with the project's `board_build.ldscript`, and adds two targets:

* upload: starts QEMU with the image, its UART0 served on a local TCP port, and leaves it
  running; prints the port's URL (socket://127.0.0.1:PORT) for sqz-validate --port or any
  pyserial client. upload_port = socket://127.0.0.1:N fixes the port.
* stop: stops that emulator (a new upload also replaces it).

No package is installed: the toolchain and QEMU are found on PATH or where the board manifest
says (builder/qemu_board.py).
"""

import os
import sys

from SCons.Script import COMMAND_LINE_TARGETS, Default, DefaultEnvironment

env = DefaultEnvironment()
platform = env.PioPlatform()
board = env.BoardConfig()

sys.path.insert(0, os.path.join(platform.get_dir(), "builder"))
import qemu_board  # noqa: E402

SQZ = board.get("build.sqz")
QEMU = board.get("upload.qemu")
BOARD_ID = env.subst("$BOARD")
STATE_DIR = env.subst("$BUILD_DIR")


def _fail(message):
    sys.stderr.write(f"Error: {message}\n")
    env.Exit(1)


def _setup_toolchain():
    """The board's cross compiler and the flags of sqz's own QEMU builds (converter/device/qemu.py):
    the same CPU flags, -O2, sections for --gc-sections."""
    try:
        cc = qemu_board.require_tool(SQZ["cc"], SQZ, BOARD_ID)
    except qemu_board.BoardError as e:
        _fail(str(e))
    prefix, bindir = SQZ["tool_prefix"], os.path.dirname(cc)

    def beside_cc(tool):
        path = os.path.join(bindir, prefix + tool)
        return path if os.access(path, os.X_OK) else prefix + tool

    env.Replace(
        CC=cc,
        AS=cc,
        LINK=cc,
        AR=beside_cc("gcc-ar"),
        RANLIB=beside_cc("gcc-ranlib"),
        OBJCOPY=beside_cc("objcopy"),
        SIZETOOL=beside_cc("size"),
        PROGSUFFIX=".elf",
        # Libraries after the objects (the ESP32-S3 links newlib's libc and libgcc, grouped).
        LINKCOM="$LINK -o $TARGET $LINKFLAGS $__RPATH $SOURCES $_LIBDIRFLAGS $_LIBFLAGS "
                + " ".join(SQZ["libs"]),
    )
    env.Append(
        CCFLAGS=[*SQZ["cpu_flags"], "-O2", "-ffunction-sections", "-fdata-sections"],
        ASFLAGS=list(SQZ["cpu_flags"]),
        ASPPFLAGS=["-x", "assembler-with-cpp"],
        LINKFLAGS=[*SQZ["cpu_flags"], *SQZ["link_flags"], "-Wl,--gc-sections",
                   "-Wl,-Map=${BUILD_DIR}/${PROGNAME}.map"],
    )
    # The linker script is the project's board_build.ldscript, which PlatformIO passes as -T.
    if not board.get("build.ldscript", ""):
        _fail(f"the {BOARD_ID} board needs the project's linker script: set "
              "board_build.ldscript in platformio.ini")


def _build():
    """The ELF, and for a board with a flash image (the ESP32-S3's weights live in flash) the
    image and the -kernel ELF beside it."""
    target_elf = env.BuildProgram()
    built = [target_elf]
    if "flash_image" in QEMU:
        objcopy = env.subst("$OBJCOPY")

        def split(target, source, env):
            try:
                qemu_board.write_flash_image(str(source[0]), QEMU, objcopy)
            except qemu_board.BoardError as e:
                sys.stderr.write(f"Error: {e}\n")
                return 1
            return None

        elf = env.subst("$PROGPATH")
        built.append(env.Command([qemu_board.flash_image_path(elf),
                                  qemu_board.kernel_path(elf, QEMU)], target_elf,
                                 env.VerboseAction(split, "Writing the flash image $TARGET")))
    Default(built)
    env.AddPlatformTarget("size", target_elf, env.VerboseAction("$SIZEPRINTCMD",
                                                                "Calculating size"),
                          "Program Size")
    return built


def _upload(target, source, env):
    try:
        qemu_exe = qemu_board.require_tool(QEMU["program"], SQZ, BOARD_ID)
        port = qemu_board.parse_port(env.subst("$UPLOAD_PORT"))
        state = qemu_board.start(qemu_exe, QEMU, env.subst("$PROGPATH"), STATE_DIR, port)
    except qemu_board.BoardError as e:
        sys.stderr.write(f"Error: {e}\n")
        return 1
    print(f"Emulator running: QEMU {QEMU['machine']} (pid {state['pid']}), "
          f"UART0 at {state['url']}")
    model = env.get("SQZ_MODEL_DIR")  # set by sqz's pre-script (firmware/tools/pio_sqz.py)
    if model:
        print(f"Validate: sqz-validate --port {state['url']} --model {model}")
    print(f"Stop it:  pio run -e {env.subst('$PIOENV')} -t stop   (its output: {state['log']})")
    return None


def _stop(target, source, env):
    state = qemu_board.stop(STATE_DIR)
    if state is None:
        print("No emulator of this env is running")
    else:
        print(f"Stopped QEMU {QEMU['machine']} (pid {state['pid']}, {state['url']})")
    return None


env.AddPlatformTarget("stop", None, env.VerboseAction(_stop, "Stopping the emulator"),
                      "Stop the emulator", always_build=True)
# Stopping needs no toolchain (it may be missing from this shell's PATH).
if not COMMAND_LINE_TARGETS or set(COMMAND_LINE_TARGETS) - {"stop"}:
    _setup_toolchain()
    env.AddPlatformTarget("upload", _build(),
                          env.VerboseAction(_upload, "Starting the emulator"),
                          "Upload (start QEMU with the image)")
