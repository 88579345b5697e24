"""The small-RAM profiles (mps2-an386-128k on QEMU, the NUCLEO-F411RE) and the fit check that
counts the whole firmware's RAM: the profiles load, the linker script honours its --defsym
parameters, a SqueezeNet converted for 128 KB runs bit-exact on QEMU, the Python estimate of the
RAM holds against the linked ELF, and a model too big is refused at conversion (and at link time
if it gets that far), saying what to do."""

from __future__ import annotations

import configparser
import dataclasses
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from clirun import cli, with_arena

from converter import __version__, codegen, convert, targets
from converter.device import qemu
from converter.errors import BudgetError
from converter.passes import budget

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "tiny_model"
SMALL = "mps2-an386-128k"
NM = "arm-none-eabi-nm"
MISSING = [t for t in (qemu.QEMU, qemu.CC, qemu.SIZE, NM) if shutil.which(t) is None]
needs_qemu = pytest.mark.skipif(
    bool(MISSING), reason=f"{', '.join(MISSING)} not installed: {qemu.APT_HINT}")
# How far above the linked ELF the estimate may be: static_bytes (256 B) stands for the
# application's state, the port's variables and alignment, measured at 120 B on this port.
ESTIMATE_MARGIN = 512


# ---- the profiles -----------------------------------------------------------------------------

def test_the_small_profiles_load() -> None:
    t = targets.load(SMALL)
    big = targets.load("mps2-an386")
    assert (t.port, t.arch, t.counter_unit, t.counter_hz) == (big.port, big.arch,
                                                              big.counter_unit, big.counter_hz)
    assert (t.sram_bytes, t.flash_bytes, t.psram_bytes) == (128 * 1024, 2 * 1024 * 1024, 0)
    assert t.stack_bytes == qemu.SMALL_STACK_BYTES and t.pio_env == SMALL
    f411 = targets.load("nucleo_f411re")
    assert (f411.port, f411.arch, f411.pio_env) == ("stm32_arduino", "armv7em", "nucleo_f411re")
    assert f411.sram_bytes == 128 * 1024 and f411.flash_bytes <= 512 * 1024
    assert f411.stack_bytes > 0 and f411.static_bytes > 0
    assert {SMALL, "nucleo_f411re"} <= set(targets.available())


def test_a_profile_with_a_bad_stack_size_is_refused(tmp_path, monkeypatch) -> None:
    text = (ROOT / "targets" / f"{SMALL}.toml").read_text()
    monkeypatch.setattr(targets, "TARGETS", tmp_path)
    (tmp_path / "bad.toml").write_text(text.replace("stack_bytes = 8_192", "stack_bytes = -1"))
    with pytest.raises(Exception, match="stack_bytes must be a whole number of bytes"):
        targets.load("bad")


def test_the_emulated_board_is_registered_with_the_profiles_sizes() -> None:
    t = targets.load(SMALL)
    board = qemu.board_for_target(SMALL)
    assert board is qemu.MPS2_AN386_128K and board.machine == "mps2-an386"
    assert (board.flash_limit, board.ram_limit) == (t.flash_bytes, t.sram_bytes)
    assert board.linker_script_path() == qemu.MPS2_AN386.linker_script_path()
    assert f"-Wl,--defsym=SQZ_RAM_BYTES={t.sram_bytes}" in board.link_flags
    assert f"-Wl,--defsym=SQZ_FLASH_BYTES={t.flash_bytes}" in board.link_flags
    assert f"-Wl,--defsym=SQZ_STACK_BYTES={t.stack_bytes}" in board.link_flags


# ---- the estimate -----------------------------------------------------------------------------

def test_app_ram_bytes_adds_up_every_part() -> None:
    from tflbuild import maxpool_model

    t = targets.load(SMALL)
    conv = convert.convert_tflite(maxpool_model(), t, model_name="m", source_name="m",
                                  input_mode="whole")
    ram = budget.app_ram_bytes(t, conv.lowered, conv.layout)
    assert ram.arena == conv.layout.arena_bytes == 10240
    assert ram.stack == t.stack_bytes and ram.static == t.static_bytes
    # rx_buf (payload + 32), the encoder, the decoder, one u64 per step (one step here), the
    # executor's place.
    assert ram.buffers == t.max_frame_payload + 32 + 272 + 20 + 8 + 296
    assert ram.internal == ram.total == ram.arena + ram.stack + ram.buffers + ram.static
    assert conv.budget.ram == ram
    wider = dataclasses.replace(t, max_frame_payload=4096)
    assert budget.app_ram_bytes(wider, conv.lowered, conv.layout).buffers == ram.buffers + 3072
    in_psram = budget.app_ram_bytes(t, conv.lowered, conv.layout, arena_in_psram=True)
    assert in_psram.internal == ram.internal - ram.arena


def test_the_fit_check_counts_more_than_the_arena() -> None:
    """A RAM budget the arena alone fits but the whole firmware does not is refused, with the
    breakdown; one byte more than the whole firmware's need passes."""
    from tflbuild import maxpool_model

    t = targets.load(SMALL)
    conv = convert.convert_tflite(maxpool_model(), t, model_name="m", source_name="m",
                                  input_mode="whole")
    need = conv.budget.ram.internal
    with pytest.raises(BudgetError) as e:
        budget.check_budget(conv.lowered, conv.layout, t, ram_budget=need - 1)
    text = str(e.value)
    assert "RAM: the arena needs 10.0 KiB (10,240 B), the whole firmware needs" in text
    assert (f"(arena 10,240 B, stack 8,192 B, buffers {conv.budget.ram.buffers:,} B, static "
            f"256 B); {SMALL} has") in text
    assert "over by 0.0 KiB (1 B)" in text and "or pick a board with more RAM" in text
    assert budget.check_budget(conv.lowered, conv.layout, t, ram_budget=need).ram.internal \
        == need


# ---- SqueezeNet 1.1 at 96 on the 128 KB board --------------------------------------------------

@pytest.fixture(scope="module")
def small_squeezenet(tmp_path_factory) -> Path:
    """sqz-convert as a user runs it (which also builds and measures the firmware)."""
    out = tmp_path_factory.mktemp("small") / "sq96"
    proc = subprocess.run([*cli("sqz-convert"), "squeezenet1_1", "--target", SMALL,
                           "--input-size", "96", "--classes", "10", "--out", str(out)],
                          capture_output=True, text=True, cwd=out.parent,
                          env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "whole firmware's RAM ~" in proc.stdout
    return out


def test_report_shows_the_whole_firmwares_ram(small_squeezenet) -> None:
    import json

    rep = json.loads((small_squeezenet / "report.json").read_text())
    ram = rep["ram"]
    assert ram["limit"] == 131072 and ram["stack"] == 8192 and not ram["arena_in_psram"]
    assert ram["arena"] == rep["arena_bytes"]
    assert ram["internal"] == ram["arena"] + ram["stack"] + ram["buffers"] + ram["static"]
    md = (small_squeezenet / "report.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| whole firmware's RAM"))
    assert f"{ram['internal']:,} B of 131,072 B: arena {ram['arena']:,} B, stack 8,192 B" in row


@needs_qemu
def test_the_estimate_covers_the_linked_elf(small_squeezenet, tmp_path) -> None:
    """The Python estimate is at least the real .data + .bss + stack of the linked firmware and
    at most ESTIMATE_MARGIN above it; each buffer mirrored in budget.py is its symbol's size."""
    import json

    rep = json.loads((small_squeezenet / "report.json").read_text())
    elf = qemu.build_qemu_firmware(small_squeezenet, tmp_path)
    assert qemu.board_for_elf(elf) is qemu.MPS2_AN386_128K
    size = qemu.image_size(elf)
    assert (size["flash_limit"], size["ram_limit"]) == (2 * 1024 * 1024, 128 * 1024)
    real = size["ram"]  # data + bss, the NOLOAD .stack included
    est = rep["ram"]["internal"]
    assert real <= est <= real + ESTIMATE_MARGIN, (real, est)
    assert rep["image"]["ram"] == real  # what sqz-convert measured is this build
    nm = subprocess.run([NM, "-S", str(elf)], capture_output=True, text=True, check=True).stdout
    sizes = {m.group(2): int(m.group(1), 16)
             for m in re.finditer(r"^[0-9a-f]+ ([0-9a-f]+) [bBdD] (\w+)$", nm, re.M)}
    t = targets.load(SMALL)
    steps = len(rep["layers"])
    assert sizes["arena"] == rep["arena_bytes"]
    assert sizes["rx_buf"] == t.max_frame_payload + budget.PROTO_FRAME_OVERHEAD
    assert sizes["tx"] == budget.FRAME_TX_BYTES and sizes["rx"] == budget.FRAME_RX_BYTES
    assert sizes["layer_counts"] == budget.COUNT_BYTES_PER_STEP * steps
    assert sizes["ex"] == budget.EXEC_BYTES
    mirrored = {"arena", "rx_buf", "tx", "rx", "layer_counts", "ex"}
    rest = sum(v for k, v in sizes.items() if k not in mirrored)
    assert rest <= t.static_bytes, {k: v for k, v in sizes.items() if k not in mirrored}


@needs_qemu
def test_the_linker_script_honours_the_defsyms(small_squeezenet, tmp_path) -> None:
    elf = qemu.build_qemu_firmware(small_squeezenet, tmp_path)
    mapfile = elf.with_suffix(".map").read_text()
    regions = dict(re.findall(r"^(FLASH|RAM)\s+0x[0-9a-f]+\s+(0x[0-9a-f]+)", mapfile, re.M))
    assert {k: int(v, 16) for k, v in regions.items()} == {"FLASH": 2 * 1024 * 1024,
                                                          "RAM": 128 * 1024}
    head = subprocess.run(["arm-none-eabi-objdump", "-h", str(elf)], capture_output=True,
                          text=True, check=True).stdout
    stack = re.search(r"\.stack\s+([0-9a-f]+)", head)
    assert int(stack.group(1), 16) == 8 * 1024
    # Without the defsyms (mps2-an386): the whole board and the 16 KiB stack.
    big = tmp_path / "big"
    shutil.copytree(small_squeezenet, big)
    header = big / "sqz_target.h"
    header.write_text(header.read_text().replace(f'"{SMALL}"', '"mps2-an386"'))
    big_map = qemu.build_qemu_firmware(big, tmp_path).with_suffix(".map").read_text()
    regions = dict(re.findall(r"^(FLASH|RAM)\s+0x[0-9a-f]+\s+(0x[0-9a-f]+)", big_map, re.M))
    assert {k: int(v, 16) for k, v in regions.items()} == {"FLASH": 4 << 20, "RAM": 4 << 20}


@needs_qemu
def test_small_squeezenet_is_bit_exact_on_qemu(small_squeezenet, tmp_path) -> None:
    val = subprocess.run([*cli("sqz-validate"), "--sim", "qemu", "--model",
                          str(small_squeezenet), "-n", "2"], capture_output=True, text=True,
                         cwd=tmp_path, env={**os.environ, "COLUMNS": "200"})
    text = val.stdout + val.stderr
    assert val.returncode == 0, text
    assert "PASS: all 2 outputs bit-exact" in text and SMALL in text


# ---- too big ----------------------------------------------------------------------------------

@needs_qemu
def test_a_firmware_that_does_not_fit_fails_at_link_time(tmp_path) -> None:
    """Past the converter (a model directory edited by hand), the linker refuses it."""
    small = tmp_path / "tiny"
    shutil.copytree(FIXTURE, small)
    t = targets.load(SMALL)
    header = codegen.environment().get_template("sqz_target.h.j2").render(
        target=dataclasses.asdict(t), placement={"arena_in_psram": 0},
        banner={"tool_version": __version__, "sha256": "-", "source": "tiny_model fixture",
                "target": t.name}, symbols=codegen.symbols())
    (small / "sqz_target.h").write_text(header)
    qemu.build_qemu_firmware(small, tmp_path / "ok")  # the fixture itself fits
    big = with_arena(small, tmp_path / "big", 125_000)  # the arena alone fits 128 KiB
    with pytest.raises(BudgetError) as e:
        qemu.build_qemu_firmware(big, tmp_path / "build")
    text = str(e.value)
    assert f"does not fit {SMALL}" in text and "the board has 131,072 B" in text
    assert re.search(r"RAM: .* over by [\d,]+ B", text)
    assert "RAM overflow: the stack, .data and .bss (the arena, the protocol buffers) need more " \
           "than SQZ_RAM_BYTES" in text
    assert "arena is 125,000 B" in text


def test_a_model_too_big_for_128k_is_refused_at_conversion() -> None:
    """SqueezeNet 1.1 at 192 with its input stored whole and full scratch: its arena
    (125.8 KiB) alone would fit 128 KiB, the whole firmware does not. (The input ring and the
    least scratch make it fit: --input ring, --scratch auto, the defaults.)"""
    from converter.frontend import sources

    t = targets.load(SMALL)
    src = sources.resolve("squeezenet1_1", input_size=(192, 192), classes=10, calib_samples=1)
    with pytest.raises(BudgetError) as e:
        convert.convert_tflite(src.tflite, t, model_name="m", source_name="m",
                               input_mode="whole", scratch="full")
    text = str(e.value)
    arena = int(re.search(r"the arena needs [\d.]+ KiB \(([\d,]+) B\)", text)
                .group(1).replace(",", ""))
    assert arena < t.sram_bytes
    assert f"the model does not fit {SMALL}" in text
    assert re.search(r"the whole firmware needs [\d.]+ KiB \([\d,]+ B\) of RAM \(arena "
                     rf"{arena:,} B, stack 8,192 B, buffers [\d,]+ B, static 256 B\); {SMALL} "
                     r"has 128.0 KiB \(131,072 B\) of SRAM: over by", text)
    assert "The arena may take at most" in text and "A smaller --input-size" in text


# ---- PlatformIO and the docs ------------------------------------------------------------------

def _ini() -> configparser.ConfigParser:
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(ROOT / "platformio.ini")
    return ini


def test_the_pio_envs_name_the_right_boards() -> None:
    ini = _ini()
    f411 = ini["env:nucleo_f411re"]
    f767 = ini["env:nucleo_f767zi"]
    assert (f411["platform"], f411["framework"], f411["board"]) == ("ststm32", "arduino",
                                                                    "nucleo_f411re")
    assert f411["build_src_filter"] == f767["build_src_filter"]
    assert targets.load("nucleo_f411re").pio_env == "nucleo_f411re"
    small = ini[f"env:{SMALL}"]
    board = qemu.MPS2_AN386_128K
    assert small["platform"] == "${qemu.platform}" and small["board"] == "mps2-an386"
    assert ROOT / small["board_build.ldscript"] == board.linker_script_path()
    assert small["build_src_filter"] == ini["env:mps2-an386"]["build_src_filter"]
    assert "framework" not in small
    # The platform links with what sqz's own build passes.
    defsyms = [f for f in small["build_flags"].split() if f.startswith("-Wl,--defsym=")]
    assert tuple(defsyms) == qemu.SMALL_DEFSYMS
    assert (int(small["board_upload.maximum_size"]),
            int(small["board_upload.maximum_ram_size"])) == (board.flash_limit, board.ram_limit)


def test_platformio_ini_parses_the_small_envs_offline(tmp_path) -> None:
    from test_platformio import _config

    shutil.copy(ROOT / "platformio.ini", tmp_path / "platformio.ini")
    cfg = _config(tmp_path)
    assert cfg["env:nucleo_f411re"]["board"] == "nucleo_f411re"
    small = cfg[f"env:{SMALL}"]
    assert small["board"] == "mps2-an386"
    assert [f for f in small["build_flags"] if "defsym" in f] == list(qemu.SMALL_DEFSYMS)


def test_the_docs_describe_both_profiles() -> None:
    text = (ROOT / "docs" / "boards.md").read_text()
    for name in (SMALL, "nucleo_f411re"):
        assert f"| `{name}` |" in text
    assert "SQZ_RAM_BYTES" in text and "whole firmware's RAM" in text


@pytest.fixture(scope="module")
def pio_offline(tmp_path_factory) -> dict[str, str]:
    """PlatformIO without its registry, after the documented set-up (as in test_pio_flow)."""
    import importlib.util
    import sys

    if importlib.util.find_spec("platformio") is None or importlib.util.find_spec("SCons") is None:
        pytest.skip("PlatformIO or SCons is not installed (pip install -e '.[test]')")
    core = tmp_path_factory.mktemp("pio-core")
    env = {k: v for k, v in os.environ.items() if k != "SQZ_PIO_GLUE"}
    env.update(PLATFORMIO_CORE_DIR=str(core), PLATFORMIO_SETTING_ENABLE_TELEMETRY="No")
    subprocess.run([sys.executable, str(ROOT / "firmware" / "tools" / "pio_offline_setup.py")],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    return env


@needs_qemu
def test_pio_env_builds_uploads_and_validates(small_squeezenet, pio_offline,
                                              tmp_path_factory) -> None:
    """`pio run -e mps2-an386-128k -t upload` with sqz's local platform, offline: the image
    links within 128 KiB (its map shows the --defsym'd regions) and runs bit-exact."""
    import json

    from test_pio_flow import URL_RE, _Emulator, _run, _tool

    pio_env = pio_offline
    root = tmp_path_factory.mktemp("pio-small")
    shutil.copy(ROOT / "platformio.ini", root / "platformio.ini")
    shutil.copytree(ROOT / "firmware", root / "firmware",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (root / "build").mkdir()
    (root / "build" / "sqz_pio.ini").write_text(
        f"[platformio]\ndefault_envs = {SMALL}\n\n[sqz]\nmodel_dir = {small_squeezenet}\n")
    upload = _run([_tool("pio"), "run", "-e", SMALL, "-t", "upload"], root, pio_env)
    state = root / ".pio" / "build" / SMALL / "qemu.json"
    emulator = _Emulator(root, pio_env, state)
    try:
        mapfile = (root / ".pio" / "build" / SMALL / "program.map").read_text()
        regions = dict(re.findall(r"^(FLASH|RAM)\s+0x[0-9a-f]+\s+(0x[0-9a-f]+)", mapfile, re.M))
        assert {k: int(v, 16) for k, v in regions.items()} == {"FLASH": 2 << 20,
                                                              "RAM": 128 << 10}
        url = URL_RE.search(upload.stdout).group(1)
        validate = _run([_tool("sqz-validate"), "--port", url, "--model",
                         str(small_squeezenet), "-n", "2"], root, pio_env)
        assert "PASS: all 2 outputs bit-exact" in validate.stdout, validate.stdout
        assert json.loads(state.read_text())["url"] == url
        assert "Stopped QEMU mps2-an386" in emulator.stop()
    finally:
        emulator.kill_leftover()

