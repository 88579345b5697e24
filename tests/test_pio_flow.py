"""The board flow on the emulated boards, with PlatformIO, typed as a user types it:

    sqz-convert --target esp32s3-qemu        (or mps2-an386)
    pio run -t upload                        builds, starts QEMU, prints the UART's URL
    sqz-validate --port socket://127.0.0.1:PORT --model build/esp32s3-qemu
    pio run -t stop

in a copy of the checkout, with no PlatformIO registry: a PlatformIO core directory of its own
(nothing written to ~/.platformio), set up by the documented script
(firmware/tools/pio_offline_setup.py), and sqz's local platform (firmware/tools/pio_qemu).
Then the same for an export's PlatformIO example, which builds sqz's validation firmware from
the exported library with the same platform. Every validation must be bit-exact.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from converter import export
from converter.device import qemu

BIN = Path(sys.executable).parent
TARGETS = ["mps2-an386", "esp32s3-qemu"]
URL_RE = re.compile(r"UART0 at (socket://127\.0\.0\.1:\d+)")
PLATFORM = REPO / "firmware" / "tools" / "pio_qemu"


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        path = Path(shutil.which(name) or "")
    if not path.is_file():
        pytest.skip(f"{name} not found beside {sys.executable} (pip install -e '.[test]')")
    return str(path)


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 900
         ) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, (f"{shlex.join(cmd)}: exit {proc.returncode}\n"
                                  f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture(scope="module")
def pio_env(tmp_path_factory) -> dict[str, str]:
    """The environment of a user whose PlatformIO cannot reach its registry, after running the
    documented set-up once (in a core directory of the test's own)."""
    if importlib.util.find_spec("platformio") is None:
        pytest.skip("PlatformIO is not installed (pip install -e .)")
    if importlib.util.find_spec("SCons") is None:
        pytest.skip("SCons is not installed (pip install -e '.[test]': scons==4.11.1)")
    core = tmp_path_factory.mktemp("pio-core")
    env = {k: v for k, v in os.environ.items() if k != "SQZ_PIO_GLUE"}
    env.update(PLATFORMIO_CORE_DIR=str(core), PLATFORMIO_SETTING_ENABLE_TELEMETRY="No")
    script = REPO / "firmware" / "tools" / "pio_offline_setup.py"
    first = _run([sys.executable, str(script)], REPO, env, timeout=300)
    assert "Installed tool-scons 4.41101.0 (SCons 4.11.1 from PyPI)" in first.stdout
    again = _run([sys.executable, str(script)], REPO, env, timeout=300)
    assert "already installed" in again.stdout  # run twice, changes nothing
    record = json.loads((core / "packages" / "tool-scons" / ".piopm").read_text())
    assert record["spec"]["owner"] == "platformio" and record["version"] == "4.41101.0"
    return env


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the checkout's PlatformIO project (platformio.ini and firmware/)."""
    root = tmp_path_factory.mktemp("checkout")
    shutil.copy(REPO / "platformio.ini", root / "platformio.ini")
    shutil.copytree(REPO / "firmware", root / "firmware",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _need_board(target: str) -> None:
    missing = qemu.BOARDS[target].missing_tools()
    if missing:
        pytest.skip(f"{', '.join(missing)} not found: {qemu.BOARDS[target].install_hint}")


class _Emulator:
    """Stops the emulator `pio run -t upload` left running, whatever ends the test."""

    def __init__(self, cwd: Path, env: dict[str, str], state: Path) -> None:
        self.cwd, self.env, self.state = cwd, env, state

    def stop(self) -> str:
        return _run([_tool("pio"), "run", "-t", "stop"], self.cwd, self.env).stdout

    def kill_leftover(self) -> None:
        try:
            pid = json.loads(self.state.read_text())["pid"]
        except (OSError, ValueError, KeyError):
            return
        try:
            os.killpg(pid, 9)
        except (ProcessLookupError, PermissionError):
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("target", TARGETS)
def test_convert_upload_validate_stop(target, project, pio_env):
    _need_board(target)
    env = {**pio_env, "SQZ_PIO_GLUE": str(project / "build" / "sqz_pio.ini")}
    proc = _run([_tool("sqz-convert"), "--target", target], project, env)
    assert f"or with PlatformIO: pio run -t upload (env {target}: starts QEMU and prints " \
        "its port)" in " ".join(proc.stdout.split())
    assert f"default_envs = {target}" in (project / "build" / "sqz_pio.ini").read_text()

    upload = _run([_tool("pio"), "run", "-t", "upload"], project, env)
    emulator = _Emulator(project, env, project / ".pio" / "build" / target / "qemu.json")
    try:
        url = URL_RE.search(upload.stdout).group(1)
        line = re.search(r"^Validate: (sqz-validate --port \S+ --model \S+)$", upload.stdout,
                         re.M).group(1)
        assert line == f"sqz-validate --port {url} --model build/{target}"
        pid = json.loads(emulator.state.read_text())["pid"]
        # What the user types: the printed command, as it is.
        argv = shlex.split(line)
        validate = _run([_tool(argv[0]), *argv[1:]], project, env)
        assert "PASS: all 10 outputs bit-exact" in validate.stdout, validate.stdout
        assert f"Device: {target} ({url})" in " ".join(validate.stdout.split())
        stopped = emulator.stop()
        assert f"Stopped QEMU {qemu.BOARDS[target].machine} (pid {pid}, {url})" in stopped
        assert not emulator.state.exists() and not _alive(pid)
    finally:
        emulator.kill_leftover()
    assert "No emulator of this env is running" in emulator.stop()


@pytest.mark.parametrize("target,camera", [*((t, None) for t in TARGETS),
                                           ("mps2-an386", "rgb565le:40x30")])
def test_export_platformio_example_runs_on_the_emulated_board(target, camera, project, pio_env,
                                                              tmp_path):
    """The exported library's PlatformIO example for an emulated board: sqz's validation
    firmware built from the library and its runtime with the platform shipped in the example,
    started by `pio run -t upload`, checked bit for bit against the library's extras/sqz (for a
    camera model: frames sent as rows, against LiteRT on the host mirror's input)."""
    _need_board(target)
    model_dir = project / "build" / target
    if camera is not None:
        model_dir = tmp_path / "camera-model"
        _run([_tool("sqz-convert"), "--target", target, "--camera", camera, "--out",
              str(model_dir), "-q"], project, pio_env)
    elif not (model_dir / "sqz.json").is_file():
        env = {**pio_env, "SQZ_PIO_GLUE": str(project / "build" / "sqz_pio.ini")}
        _run([_tool("sqz-convert"), "--target", target], project, env)
    lib = tmp_path / "lib" / "sqz_shapes"
    export.export_library(model_dir, lib)
    example = lib / "examples" / "platformio"
    shipped = {p.relative_to(example / "platform").as_posix()
               for p in (example / "platform").rglob("*") if p.is_file()}
    assert shipped == {p.relative_to(PLATFORM).as_posix() for p in PLATFORM.rglob("*")
                       if p.is_file() and "__pycache__" not in p.parts}
    upload = _run([_tool("pio"), "run", "-t", "upload"], example, pio_env)
    emulator = _Emulator(example, pio_env, example / ".pio" / "build" / target / "qemu.json")
    try:
        url = URL_RE.search(upload.stdout).group(1)
        validate = _run([_tool("sqz-validate"), "--port", url, "--model",
                         str(lib / "extras" / "sqz"), "-n", "3"], example, pio_env)
        assert "PASS: all 3 outputs bit-exact" in validate.stdout, validate.stdout
        assert "Stopped QEMU" in emulator.stop()
    finally:
        emulator.kill_leftover()


# --- the platform agrees with sqz's own QEMU runs (no emulator needed) --------------------------

def _board_json(target: str) -> dict:
    return json.loads((PLATFORM / "boards" / f"{target}.json").read_text())


def _qemu_board_module():
    spec = importlib.util.spec_from_file_location("qemu_board",
                                                  PLATFORM / "builder" / "qemu_board.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("target", TARGETS)
def test_platform_board_is_sqzs_emulated_board(target, monkeypatch, tmp_path):
    """The board manifest and the upload's QEMU command are converter/device/qemu.py's: the same
    compiler, flags, libraries, emulator, machine and options, so `pio run -t upload` runs the
    firmware sqz-validate --sim qemu runs."""
    board = qemu.BOARDS[target]
    manifest = _board_json(target)
    sqz, q = manifest["build"]["sqz"], manifest["upload"]["qemu"]
    assert (sqz["cc"], tuple(sqz["cpu_flags"]), tuple(sqz["libs"])) == (
        board.cc, board.cpu_flags, board.libs)
    assert (*sqz["link_flags"], "-Wl,--gc-sections") == board.link_flags
    assert sqz["install_hint"] in board.install_hint
    assert (manifest["upload"]["maximum_size"], manifest["upload"]["maximum_ram_size"]) == (
        board.flash_limit, board.ram_limit)
    mod = _qemu_board_module()
    elf = tmp_path / "program.elf"
    monkeypatch.setattr(qemu, "_find_tool", lambda name, b: name)
    expected = qemu.QemuFirmware(elf, board=board).command()
    got = mod.qemu_command(board.qemu, q, str(elf), 0)
    # converter/device/qemu.py names its own build's files; the platform PlatformIO's program.elf.
    assert [a.replace("program.kernel.elf", "K").replace("program.flash.bin", "F") for a in got] \
        == [a.replace(f"{elf.stem}.kernel.elf", "K").replace(f"{elf.stem}.flash.bin", "F")
            for a in expected]
    if board.flash_image is not None:
        img = q["flash_image"]
        assert (img["section"], img["offset"], img["size"]) == (
            board.flash_image.section, board.flash_image.offset, board.flash_image.size)
    # The tool search is converter/device/qemu.py's: PATH, $SQZ_ESP32S3_TOOLCHAIN, TMPDIR.
    monkeypatch.setenv("SQZ_ESP32S3_TOOLCHAIN", str(tmp_path / "bundle"))
    assert mod.tool_dirs(sqz) == ([str(d) for d in qemu.esp32s3_tool_dirs()]
                                  if board is qemu.ESP32S3_QEMU else [])


def test_platformio_envs_build_the_emulated_boards_ports():
    import configparser

    ini = configparser.ConfigParser(interpolation=None)
    ini.read(REPO / "platformio.ini")
    for target in TARGETS:
        board = qemu.BOARDS[target]
        section = ini[f"env:{target}"]
        assert section["board"] == target
        assert REPO / section["board_build.ldscript"] == board.linker_script_path()
        assert section["build_src_filter"] == (f"-<*> +<src/runtime/> +<src/app/> "
                                               f"+<ports/{board.port}/>")
        assert "framework" not in section  # bare metal; the real boards' envs use arduino
    assert ini["qemu"]["platform"] == "symlink://firmware/tools/pio_qemu"


def test_upload_port_and_stop_without_an_emulator(tmp_path):
    mod = _qemu_board_module()
    assert [mod.parse_port(v) for v in (None, "", "4444", "socket://127.0.0.1:4444",
                                        "tcp://localhost:4444")] == [0, 0, 4444, 4444, 4444]
    for bad in ("/dev/ttyUSB0", "socket://10.0.0.1:4444", "70000"):
        with pytest.raises(mod.BoardError, match="give socket://127.0.0.1:PORT"):
            mod.parse_port(bad)
    assert mod.stop(str(tmp_path)) is None  # nothing recorded: nothing to stop
    # A recorded emulator that is gone: the record is dropped, nothing is signalled.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (tmp_path / "qemu.json").write_text(json.dumps({"pid": int(dead), "program": "qemu-x"}))
    assert mod.stop(str(tmp_path)) is None and not (tmp_path / "qemu.json").exists()
