"""sqz-convert --export: the model as a library inside the user's own firmware.

The bundled example is converted once (host), and its int8 .tflite, with the preprocessing and
class names beside it, is converted again for the Cortex-M4 board and the ESP32-S3, so every
library holds the same model. Checked here: the CMake example builds and runs on the host and,
cross-compiled, on QEMU's mps2-an386, and prints the host reference's label; two models live in
one firmware with one runtime; the output survives writing the next input; the public header
brings no runtime internals and no generic file names; the manifests pass their formats' own
validators and name only the boards the library is built for; the Arduino, PlatformIO and
ESP-IDF examples compile against stub cores; sqz-validate --port passes against a "user
firmware" built from the library; and an export is deterministic and never replaces a
directory sqz did not write. (The emulated boards' PlatformIO example is built and run in
tests/test_pio_flow.py.)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from converter import export
from converter.commands.convert import convert_main
from converter.commands.validate import validate_main
from converter.errors import InputFileError, UsageError
from converter.frontend import reference
from converter.frontend.preprocess import Preprocessing, load_image, load_pixels, quantize_input

CALIB = REPO / "examples" / "shapes" / "calib"
STUBS = REPO / "tests" / "stubs"
WARN = "-Wall -Wextra -Werror -pedantic"
LABEL_RE = re.compile(r"^label: (.*) \(class (\d+), score (-?\d+); host reference: class "
                      r"(-?\d+)\)$", re.M)
TIME_RE = re.compile(r"^time: (\d+) us$", re.M)
FIRST_IMAGE = sorted((CALIB / "circle").iterdir())[0]
M4_SAMPLE = sorted((CALIB / "star").iterdir())[2]
QEMU_CMD = ["qemu-system-arm", "-M", "mps2-an386", "-nodefaults", "-display", "none",
            "-monitor", "none", "-no-reboot", "-icount", "shift=0,align=off,sleep=off",
            "-serial", "stdio", "-kernel"]


@dataclass(frozen=True)
class Exports:
    root: Path
    host_model: Path
    host: Path  # library exported for the host (the input a ring, the default)
    m4: Path  # for mps2-an386
    esp: Path  # for esp32s3 with the arena in PSRAM
    whole: Path  # for the host, --input whole: the input stored whole in the arena

    def runtime(self, lib: Path) -> Path:
        return lib.parent / export.RUNTIME


def _need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install cmake gcc g++ "
                    "gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)")


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> Exports:
    root = tmp_path_factory.mktemp("export")
    host_model = root / "host"
    # Each board's libraries in their own folder (a firmware runs on one CPU): the model
    # library and the runtime beside it.
    assert convert_main(["--target", "host", "--out", str(host_model), "--export",
                         str(root / "host-lib" / "sqz_shapes"), "-q"]) == 0
    # The same int8 model for the other boards: the .tflite with its sidecars.
    tfl = root / "shapes.tflite"
    shutil.copy(host_model / "model.tflite", tfl)
    shutil.copy(host_model / "preprocess.json", root / "shapes.tflite.preprocess.json")
    shutil.copy(host_model / "classes.json", root / "shapes.tflite.classes.json")
    # The Cortex-M4 library classifies another image than the default (the first one).
    sample = str(M4_SAMPLE)
    assert convert_main([str(tfl), "--target", "mps2-an386", "--out", str(root / "m4"),
                         "--export", str(root / "m4-lib" / "sqz_shapes"), "--export-image",
                         sample, "-q"]) == 0
    assert convert_main([str(tfl), "--target", "esp32s3", "--ram-budget", "8K", "--out",
                         str(root / "esp"), "--export", str(root / "esp-lib" / "shapes_psram"),
                         "--export-name", "shapes_psram", "--export-version", "2.1.0-rc1",
                         "--export-author", "Jane Doe <jane@example.com>",
                         "--export-maintainer", "Acme Firmware <fw@example.com>",
                         "--export-url", "https://example.com/shapes", "--export-license", "MIT",
                         "-q"]) == 0
    assert convert_main([str(tfl), "--target", "host", "--input", "whole", "--out",
                         str(root / "whole"), "--export", str(root / "whole-lib" / "shapes_whole"),
                         "--export-name", "shapes_whole", "--export-image", str(FIRST_IMAGE),
                         "-q"]) == 0
    return Exports(root, host_model, root / "host-lib" / "sqz_shapes",
                   root / "m4-lib" / "sqz_shapes", root / "esp-lib" / "shapes_psram",
                   root / "whole-lib" / "shapes_whole")


def _reference_top1(model_dir: Path, image: Path) -> tuple[int, int, str]:
    """The host's answer for an image file: sqz's preprocessing and input quantization, then
    LiteRT's reference kernels."""
    pre = Preprocessing.from_dict(json.loads((model_dir / "preprocess.json").read_text()))
    tflite = (model_dir / "model.tflite").read_bytes()
    from converter.frontend import tflite_edit, tflite_reader

    g = tflite_reader.read_model_bytes(tflite_edit.strip_float_edges(tflite))
    scale, zp = g.tensor(g.inputs[0]).quant.single()
    x = quantize_input(load_image(image, pre), scale, zp)
    out = reference.run_reference(tflite, x[None]).outputs.reshape(-1)
    names = json.loads((model_dir / "classes.json").read_text())
    top = int(np.argmax(out))
    return top, int(out[top]), names[top]


def _parse(output: str) -> tuple[str, int, int, int, int]:
    m = LABEL_RE.search(output)
    t = TIME_RE.search(output)
    assert m and t, output
    return m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4)), int(t.group(1))


def _cmake_build(src: Path, build: Path, *args: str, cflags: str = WARN) -> Path:
    env = {**os.environ, "CFLAGS": cflags}
    for cmd in (["cmake", "-S", str(src), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                 *args], ["cmake", "--build", str(build), "-j", "2"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return build


# --- the sample and the pixel helper ----------------------------------------------------------

def test_pixel_tables_reproduce_the_host_preprocessing_bit_for_bit(exports):
    pre = Preprocessing.from_dict(
        json.loads((exports.host_model / "preprocess.json").read_text()))
    from converter.frontend import tflite_reader

    g = tflite_reader.read_model_bytes((exports.host_model / "model.tflite").read_bytes())
    scale, zp = g.tensor(g.inputs[0]).quant.single()
    tables, source = export.pixel_tables(pre, scale, zp)
    for image in sorted((CALIB / "star").iterdir())[:3]:
        host = quantize_input(load_image(image, pre), scale, zp)
        lib = export.quantize_pixels(load_pixels(image, pre), tables, source)
        assert np.array_equal(host, lib), image
    # A BGR model reads the same camera bytes through swapped tables.
    bgr = Preprocessing.imagenet(64)
    bgr = Preprocessing(**{**bgr.to_dict(), "channel_order": "bgr"})
    tables, source = export.pixel_tables(bgr, 0.02, -3)
    assert source == [2, 1, 0]
    image = next((CALIB / "cross").iterdir())
    assert np.array_equal(quantize_input(load_image(image, bgr), 0.02, -3),
                          export.quantize_pixels(load_pixels(image, bgr), tables, source))


def test_the_api_table_is_the_host_table(exports):
    text = (exports.host / "src" / "sqz_shapes.c").read_text()
    body = text[text.index("pixel_table[3][256] = {"):text.index("};", text.index(
        "pixel_table[3][256]"))]
    values = [int(v) for v in re.findall(r"-?\d+", body.split("=", 1)[1])]
    assert len(values) == 3 * 256
    assert values[:3] == [-128, -127, -126]  # 1/255 scale and zero point -128: v - 128


# --- CMake: host and QEMU ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def host_example(exports, tmp_path_factory) -> Path:
    """The host library's CMake example, built (warnings as errors)."""
    _need("cmake", "cc")
    return _cmake_build(exports.host / "examples" / "cmake",
                        tmp_path_factory.mktemp("example")) / "classify"


def test_cmake_example_runs_on_the_host_with_the_reference_label(exports, host_example):
    proc = subprocess.run([str(host_example)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    label, cls, score, expected, micros = _parse(proc.stdout)
    # The first calibration image, through the host's preprocessing and LiteRT.
    ref_cls, ref_score, ref_label = _reference_top1(exports.host_model, FIRST_IMAGE)
    assert (label, cls, score) == (ref_label, ref_cls, ref_score)
    assert expected == ref_cls
    assert micros > 0


def test_cmake_example_on_qemu_prints_the_same_label(exports, tmp_path):
    _need("cmake", "arm-none-eabi-gcc", "qemu-system-arm")
    cmake_dir = exports.m4 / "examples" / "cmake"
    build = _cmake_build(cmake_dir, tmp_path / "m4", "-DCMAKE_TOOLCHAIN_FILE="
                         f"{cmake_dir / 'mps2_an386' / 'toolchain.cmake'}")
    elf = build / "classify"
    head = subprocess.run(["arm-none-eabi-readelf", "-h", str(elf)], capture_output=True,
                          text=True).stdout
    assert "ARM" in head and "Version5 EABI" in head
    proc = subprocess.run([*QEMU_CMD, str(elf)], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # main returned, board reset
    label, cls, score, expected, micros = _parse(proc.stdout)
    ref_cls, ref_score, ref_label = _reference_top1(exports.host_model, M4_SAMPLE)
    assert (label, cls, score, expected) == (ref_label, ref_cls, ref_score, ref_cls)
    # Under -icount, SysTick time is instructions / 1000: tens of milliseconds here.
    assert 1000 < micros < 1_000_000
    # Run as the example's CMakeLists.txt says, without -icount: SysTick then follows the host's
    # clock. Its first reading used to come before the counter's first reload and counted a
    # period that never passed: "time: 4294315090 us".
    text = (cmake_dir / "CMakeLists.txt").read_text()
    documented = re.search(r"^#\s+(qemu-system-arm .*build-m4/classify)$", text, re.M).group(1)
    cmd = [str(elf) if arg == "build-m4/classify" else arg for arg in documented.split()]
    assert "-icount" not in cmd
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    label, cls, score, expected, micros = _parse(proc.stdout)
    assert (label, cls, score) == (ref_label, ref_cls, ref_score)
    assert 0 < micros < 60_000_000


def test_docs_firmware_code_compiles_against_the_export(exports, tmp_path):
    """docs/export.md's "code you write" block, compiled and linked with the host library."""
    _need("cmake", "cc")
    text = (REPO / "docs" / "export.md").read_text()
    code = re.search(r"## The code you write\n.*?```c\n(.*?)```", text, re.S).group(1)
    assert 10 <= len([ln for ln in code.splitlines() if ln.strip()]) <= 16
    project = tmp_path / "readme"
    project.mkdir()
    (project / "frame.c").write_text(code + "\nint main(void)\n{\n"
                                     "    static uint8_t rgb[SQZ_SHAPES_INPUT_PIXELS * 3];\n"
                                     "    on_frame(rgb);\n    return 0;\n}\n")
    (project / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.13)\nproject(readme C)\n"
        f"add_subdirectory({exports.host.as_posix()} lib)\n"
        "add_executable(readme frame.c)\ntarget_link_libraries(readme PRIVATE sqz_shapes)\n")
    build = _cmake_build(project, tmp_path / "b")
    proc = subprocess.run([str(build / "readme")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and re.fullmatch(r"\w+ \d+/1000\n", proc.stdout), proc.stdout


# --- the C API ---------------------------------------------------------------------------------

def _api_check(lib: Path, tmp_path: Path) -> list[str]:
    """tests/c/export_api_check.c built with CMake against `lib` and run; its lines."""
    name = json.loads((lib / "sqz_export.json").read_text())["library"]
    project = tmp_path / "check"
    project.mkdir()
    shutil.copy(REPO / "tests" / "c" / "export_api_check.c", project / "check.c")
    (project / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.13)\nproject(check C)\n"
        f"add_subdirectory({lib.as_posix()} lib)\n"
        "add_executable(check check.c)\n"
        f"target_compile_definitions(check PRIVATE LIB={name} LIBU={name.upper()} "
        f"SQZ_API_HEADER=\"{name}.h\" SQZ_SAMPLE_HEADER=\"{name}_sample.h\" "
        f"SQZ_FLOAT_HEADER=\"{name}_float.h\")\n"
        f"target_link_libraries(check PRIVATE {name} m)\n")
    build = _cmake_build(project, tmp_path / "b")
    proc = subprocess.run([str(build / "check")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_output_survives_writing_the_next_input(exports, tmp_path):
    """The header's promise for a model that stores its input whole: the output stays valid
    until the next run, so an application can write its next frame first (to <name>_input()
    or with <name>_input_write()). The ESP32-S3 plan used to put the output inside the input
    (its PIE kernels run on the host as their C twins)."""
    _need("cmake", "cc")
    lines = _api_check(exports.whole, tmp_path)
    in_off, in_bytes, out_off, out_bytes = (
        int(v) for v in next(x for x in lines if x.startswith("layout ")).split()[1:])
    assert out_off + out_bytes <= in_off or in_off + in_bytes <= out_off
    assert "stable 1" in lines and "stable_stream 1" in lines
    # The same for the generated model of every export: its input and output never overlap.
    for lib in (exports.host, exports.m4, exports.esp, exports.whole):
        name = lib.name
        text = (lib / "src" / f"{name}_model.c").read_text()
        model_def = text[text.index(f"const sqz_model {name}_model_def"):]
        tensors = {k: (int(off), int(n)) for k, off, n in re.findall(
            r"\.(input|output) = \{ (\d+)u, (\d+)u,", model_def)}
        (a, na), (b, nb) = tensors["input"], tensors["output"]
        assert b + nb <= a or a + na <= b, (lib, tensors)


# What each misuse of the streaming API returns (tests/c/export_api_check.c, in this order):
# SQZ_ERR_ARG is 1, SQZ_OK 0. After "half", the stream stays open: the rest completes it.
STREAM_ERRORS = {"write_before_begin": 1, "end_before_begin": 1, "begin": 0, "write_null": 1,
                 "write_nothing": 0, "too_many_at_once": 1, "half": 0, "end_too_early": 1,
                 "too_many": 1, "rest": 0, "past_the_end": 1, "end": 0, "end_again": 1,
                 "write_after_end": 1, "run_input_null": 1}


@pytest.mark.parametrize("which", ["host", "whole"])
def test_c_api_against_the_host(exports, which, tmp_path):
    """tests/c/export_api_check.c, linked with the library, for a model whose input is a ring
    and one that stores it whole: init's checks; the output of the whole input
    (<name>_run_input) and of the streaming API in pieces of 1, 7, a row's and the whole
    input's bytes (and, stored whole, <name>_input() and <name>_run()) each the reference's;
    the streaming API's misuse statuses; top-k order; the Q16.16 helpers against exact
    arithmetic on the host."""
    _need("cmake", "cc")
    lib = getattr(exports, which)
    ring = which == "host"
    header = (lib / "src" / f"{lib.name}.h").read_text()
    assert f"#define {lib.name.upper()}_INPUT_RING {int(ring)}" in header
    assert (f"{lib.name}_run(void)" in header) == (not ring)
    assert (f"{lib.name}_input(void)" in header) == (not ring)
    lines = _api_check(lib, tmp_path)
    facts = dict(line.rsplit(" ", 1) for line in lines if line.startswith("init "))
    err_arg, ok = "1", "0"  # SQZ_ERR_ARG, SQZ_OK
    assert facts == {"init run_before": err_arg, "init begin_before": err_arg,
                     "init misaligned": err_arg, "init small": err_arg, "init ok": ok,
                     "init arena": "1", "init run": ok}
    assert lines.count("failed none") == 2
    errors = {x.split()[1]: int(x.split()[2]) for x in lines if x.startswith("error ")}
    assert errors == STREAM_ERRORS

    out = [int(v) for v in next(x for x in lines if x.startswith("output ")).split()[1:]]
    pre = Preprocessing.from_dict(json.loads((exports.host_model / "preprocess.json")
                                             .read_text()))
    tflite = (exports.host_model / "model.tflite").read_bytes()
    from converter.frontend import tflite_reader

    g = tflite_reader.read_model_bytes(tflite)
    s_in, zp_in = g.tensor(g.inputs[0]).quant.single()
    s_out, zp_out = g.tensor(g.outputs[0]).quant.single()
    x = quantize_input(load_image(FIRST_IMAGE, pre), s_in, zp_in)
    device_input = [int(v) for v in next(
        x for x in lines if x.startswith("input ")).split()[1:]]
    assert device_input == x.reshape(-1).tolist()
    want = reference.run_reference(tflite, x[None]).outputs.reshape(-1).tolist()
    assert out == want
    row = x.shape[1] * x.shape[2]
    streams = {x.split()[1]: [int(v) for v in x.split()[2:]] for x in lines
               if x.startswith("stream ")}
    assert set(streams) == {"1", "7", str(row), str(x.size), "resumed", "restarted"}
    for chunk, got in streams.items():
        assert got == [0, *want], chunk  # SQZ_OK, then the reference's output
    wholes = [[int(v) for v in x.split()[1:]] for x in lines if x.startswith("whole ")]
    assert wholes == ([] if ring else [[0, *want]])

    topk = [tuple(int(v) for v in p.split(":"))
            for p in next(x for x in lines if x.startswith("topk")).split()[1:]]
    order = sorted(range(len(out)), key=lambda i: (-out[i], i))
    assert topk == [(i, out[i]) for i in order]

    for line in (x for x in lines if x.startswith("dequant ")):
        code, q16 = (int(v) for v in line.split()[1:])
        assert abs(q16 - (code - zp_out) * float(s_out) * 65536.0) <= 1.0, line
    from converter.ir.quantmath import round_half_away

    quants = [tuple(int(v) for v in x.split()[1:]) for x in lines if x.startswith("quant ")]
    assert len(quants) > 2000
    for value, code in quants:
        exact = value / 65536.0 / float(s_in)
        want = max(-128, min(127, round_half_away(exact) + zp_in))
        near_tie = abs(abs(exact - int(exact)) - 0.5) < 1e-6
        assert code == want or (near_tie and abs(code - want) == 1), (value, code, want)
    assert next(x for x in lines if x.startswith("names ")) == "names triangle NULL"
    q16, from_float, half = (int(v) for v in next(
        x for x in lines if x.startswith("float ")).split()[1:])
    assert abs(q16 - from_float) <= 1
    assert half == max(-128, min(127, round_half_away(0.5 / float(s_in)) + zp_in))


# --- the protocol server inside the user's firmware ----------------------------------------------

def test_sqz_validate_port_against_a_firmware_built_from_the_library(exports, tmp_path,
                                                                     capsys):
    """The user's firmware: the library from add_subdirectory plus the user's own main and
    serial port; here sqz's host port (a pty) plays that part, unchanged, with the library's
    src/sqz_shapes_validation on its include path (its model.h binds the port to the model)."""
    _need("cmake", "cc")
    from converter.device.hostsim import HostFirmware

    project = tmp_path / "firmware"
    project.mkdir()
    shutil.copy(REPO / "firmware" / "ports" / "host" / "port_host.c", project / "main.c")
    (project / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.13)\nproject(user_firmware C)\n"
        f"add_subdirectory({exports.host.as_posix()} sqz_shapes)\n"
        "add_executable(user_firmware main.c)\n"
        "target_include_directories(user_firmware PRIVATE "
        f"{(exports.host / 'src' / 'sqz_shapes_validation').as_posix()})\n"
        "target_link_libraries(user_firmware PRIVATE sqz_shapes)\n")
    build = _cmake_build(project, tmp_path / "b")
    with HostFirmware(build / "user_firmware") as fw:
        fw.start()
        pty = fw.pty_path
        fw.port.close()  # sqz-validate opens the port itself
        fw.port = None
        rc = validate_main(["--port", pty, "--model", str(exports.host / "extras" / "sqz"),
                            "-n", "3"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "PASS: all 3 outputs bit-exact" in text


def test_validation_server_is_only_linked_when_called(host_example):
    syms = subprocess.run(["nm", str(host_example)], capture_output=True, text=True).stdout
    assert "sqz_exec_continue" in syms
    assert "sqz_shapes_validation_poll" not in syms and "sqz_frame_rx_byte" not in syms


# --- manifests ---------------------------------------------------------------------------------

ARDUINO_REQUIRED = ("name", "version", "author", "maintainer", "sentence", "paragraph",
                    "category", "url", "architectures")
ARDUINO_CATEGORIES = {"Display", "Communication", "Signal Input/Output", "Sensors",
                      "Device Control", "Timing", "Data Storage", "Data Processing", "Other"}


def _pio_manifest(path: Path, monkeypatch) -> dict:
    from platformio.package.manifest.parser import ManifestParserFactory
    from platformio.package.manifest.schema import ManifestSchema

    # The schema fetches SPDX's license list for a "license" field (offline here: this one).
    monkeypatch.setattr(ManifestSchema, "load_spdx_licenses",
                        staticmethod(lambda: {"licenses": [{"licenseId": "MIT"}]}))
    parsed = ManifestParserFactory.new_from_file(str(path)).as_dict()
    return ManifestSchema().load_manifest(parsed)


# The boards each export says it is for: those its library is built and tested on here.
BOARDS = {"host": (None, ["native"]), "m4": (None, ["sqz-qemu"]),
          "esp": ("esp32", ["espressif32"])}


@pytest.mark.parametrize("which", ["host", "m4", "esp"])
def test_library_json_is_a_valid_platformio_manifest(exports, which, monkeypatch):
    lib = getattr(exports, which)
    for folder in (lib, exports.runtime(lib)):
        data = _pio_manifest(folder / "library.json", monkeypatch)
        assert data["name"] == folder.name
        for header in data["headers"]:
            assert (folder / "src" / header).is_file()
        for ex in data.get("examples", []):
            for f in ex["files"]:
                assert (folder / ex["base"] / f).is_file()
        raw = json.loads((folder / "library.json").read_text())
        assert raw["build"]["srcDir"] == "src" and raw["build"]["libArchive"] is True
        # Honest board lists: not "*" (an int8 SqueezeNet does not fit an AVR).
        assert raw["platforms"] == BOARDS[which][1]
    raw = json.loads((lib / "library.json").read_text())
    if which == "esp":  # --export-author and friends
        assert raw["authors"] == [{"name": "Jane Doe <jane@example.com>"},
                                  {"name": "Acme Firmware <fw@example.com>", "maintainer": True}]
        assert (raw["homepage"], raw["license"]) == ("https://example.com/shapes", "MIT")
    else:
        assert raw["authors"] == [{"name": "sqz-convert", "maintainer": True}]
        assert raw["homepage"] == "https://pypi.org/project/sqz-mcu/" and "license" not in raw


def _properties(path: Path) -> dict[str, str]:
    props = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            assert key not in props, f"{key} twice"
            props[key] = value
    return props


def test_arduino_manifests_only_for_boards_with_an_arduino_core(exports):
    """No Arduino core runs the host or the mps2-an386 board's model: their libraries have no
    library.properties (and no Arduino sketch) instead of claiming architectures=*."""
    for which in ("host", "m4"):
        lib = getattr(exports, which)
        assert not (lib / "library.properties").exists()
        assert not (exports.runtime(lib) / "library.properties").exists()
        assert not (lib / "examples" / "classify").exists()
    for folder in (exports.esp, exports.runtime(exports.esp)):
        assert _properties(folder / "library.properties")["architectures"] == "esp32"
    props = _properties(exports.esp / "library.properties")
    assert (props["author"], props["maintainer"], props["url"]) == (
        "Jane Doe <jane@example.com>", "Acme Firmware <fw@example.com>",
        "https://example.com/shapes")


@pytest.mark.parametrize("which", ["esp", "esp-runtime"])
def test_library_properties_follow_the_arduino_specification(exports, which, monkeypatch):
    lib = exports.esp if which == "esp" else exports.runtime(exports.esp)
    props = _properties(lib / "library.properties")
    for key in ARDUINO_REQUIRED:
        assert props.get(key), f"library.properties lacks {key}"
    assert props["category"] in ARDUINO_CATEGORIES
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 _.\-]*", props["name"])
    assert export.VERSION_RE.match(props["version"])
    assert props["dot_a_linkage"] == "true"  # the validation server is linked only if used
    for header in props["includes"].split(","):
        assert (lib / "src" / header.strip()).is_file()
    # Arduino's "1.5" layout: sources under src/, each example a folder with a same-named .ino.
    assert not list(lib.glob("*.c")) and (lib / "src").is_dir()
    if which == "esp":
        sketches = [d for d in (lib / "examples").iterdir() if (d / f"{d.name}.ino").is_file()]
        assert {d.name for d in sketches} >= {"classify"}
    # PlatformIO reads library.properties too: its schema must accept it.
    data = _pio_manifest(lib / "library.properties", monkeypatch)
    assert data["version"] == props["version"]


@pytest.mark.parametrize("which", ["host", "esp", "esp-runtime"])
def test_idf_component_yml_passes_the_component_manager(exports, which):
    pytest.importorskip("idf_component_tools",
                        reason="idf-component-manager not installed (pip install -e '.[test]')")
    from idf_component_tools.manager import ManifestManager, UploadMode

    lib = exports.runtime(exports.esp) if which == "esp-runtime" else getattr(exports, which)
    mm = ManifestManager(lib, lib.name.replace("-", "_"),
                         upload_mode=UploadMode.component).validate()
    assert not mm._validation_errors, mm._validation_errors
    manifest = mm.manifest
    assert str(manifest.version) == json.loads((lib / "sqz_export.json").read_text())["version"]
    if which == "esp":
        assert list(manifest.targets) == ["esp32s3"]


def _idf_registration(lib: Path, tmp_path: Path) -> tuple[list[str], str, str]:
    """The ESP-IDF branch of a library's CMakeLists.txt, run with a stand-in for
    idf_component_register: (SRCS, INCLUDE_DIRS, REQUIRES)."""
    out = tmp_path / f"registered-{lib.name}.txt"
    script = tmp_path / f"idf-{lib.name}.cmake"
    script.write_text(
        "set(ESP_PLATFORM 1)\n"
        "function(idf_component_register)\n"
        "  cmake_parse_arguments(A \"\" \"\" \"SRCS;INCLUDE_DIRS;REQUIRES\" ${ARGN})\n"
        f"  file(WRITE \"{out.as_posix()}\" "
        "\"${A_SRCS}\\n${A_INCLUDE_DIRS}\\n${A_REQUIRES}\\n\")\n"
        "endfunction()\n"
        f"include(\"{(lib / 'CMakeLists.txt').as_posix()}\")\n")
    proc = subprocess.run(["cmake", "-P", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    srcs, includes, requires = out.read_text().split("\n")[:3]
    return srcs.split(";"), includes, requires


def test_cmakelists_registers_esp_idf_components(exports, tmp_path):
    """The model library and the runtime each register as an ESP-IDF component, the model
    requiring the runtime; every source they list exists and every source on disk is listed."""
    _need("cmake")
    runtime = exports.runtime(exports.esp)
    srcs, includes, requires = _idf_registration(exports.esp, tmp_path)
    assert (includes, requires) == ("src", "sqz_runtime")
    assert "src/shapes_psram.c" in srcs and "src/shapes_psram_validation/app.c" in srcs
    rt_srcs, rt_includes, _ = _idf_registration(runtime, tmp_path)
    assert rt_includes == "src"
    # C and, for the esp32s3's PIE kernels, assembly.
    for lib, listed in ((exports.esp, srcs), (runtime, rt_srcs)):
        for s in listed:
            assert (lib / s).is_file(), s
        on_disk = {p.relative_to(lib).as_posix() for ext in ("*.c", "*.S")
                   for p in (lib / "src").rglob(ext)}
        assert on_disk == set(listed)
    assert any(s.endswith("conv_pie_loops.S") for s in rt_srcs)


def test_export_manifest_lists_every_file_with_its_hash(exports):
    for lib in (exports.host, exports.m4, exports.esp,
                *(exports.runtime(x) for x in (exports.host, exports.m4, exports.esp))):
        manifest = json.loads((lib / "sqz_export.json").read_text())
        files = {p.relative_to(lib).as_posix() for p in lib.rglob("*") if p.is_file()}
        assert set(manifest["files"]) == files - {"sqz_export.json"}
        for rel, digest in manifest["files"].items():
            assert hashlib.sha256((lib / rel).read_bytes()).hexdigest() == digest
    m = json.loads((exports.esp / "sqz_export.json").read_text())
    assert (m["library"], m["version"], m["target"]) == ("shapes_psram", "2.1.0-rc1", "esp32s3")
    m = json.loads((exports.runtime(exports.esp) / "sqz_export.json").read_text())
    assert (m["library"], m["archs"]) == ("sqz_runtime", ["esp32s3"])
    assert m["users"] == {"shapes_psram": {"arch": "esp32s3", "target": "esp32s3",
                                           "folder": "shapes_psram"}}


# --- the other flavours compile ----------------------------------------------------------------

def _compile(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, " ".join(cmd) + "\n" + proc.stderr[-3000:]


@pytest.mark.parametrize("which", ["host", "esp"])
def test_arduino_flavour_compiles_against_the_stub_core(exports, which):
    """Sketches and library sources as the Arduino builder would compile them: each library's
    src/ on the include path, C files as C, sketches as C++ against the stub core."""
    _need("cc", "g++")
    lib = getattr(exports, which)
    includes = ["-I", str(lib / "src"), "-I", str(exports.runtime(lib) / "src")]
    for c in sorted([*(lib / "src").rglob("*.c"), *(exports.runtime(lib) / "src").rglob("*.c")]):
        _compile(["cc", "-std=c99", *WARN.split(), "-fsyntax-only", *includes, str(c)])
    sketches = [lib / "examples" / "platformio" / "src" / "main.cpp"]
    if which == "esp":  # the Arduino sketch, and the board's port as a validation sketch
        sketches += [lib / "examples" / "classify" / "classify.ino",
                     lib / "examples" / "sqz_validate" / "sqz_validate.ino"]
    for sketch in sketches:
        _compile(["g++", "-std=gnu++17", "-Wall", "-Wextra", "-Werror", "-fsyntax-only",
                  "-x", "c++", "-I", str(STUBS / "arduino"), *includes, str(sketch)])


def test_psram_export_leaves_the_arena_to_the_application(exports):
    header = (exports.esp / "src" / "shapes_psram.h").read_text()
    assert "#define SHAPES_PSRAM_BUILTIN_ARENA 0" in header
    assert "builtin_arena" not in (exports.esp / "src" / "shapes_psram.c").read_text()
    assert "heap_caps_aligned_alloc" in (exports.esp / "examples" / "classify" /
                                         "classify.ino").read_text()
    assert "CONFIG_SPIRAM=y" in (exports.esp / "examples" / "esp_idf" /
                                 "sdkconfig.defaults").read_text()


def test_esp_idf_example_compiles_against_stubs(exports):
    _need("cc")
    src = exports.esp / "src"
    _compile(["cc", "-std=gnu99", *WARN.split(), "-Wno-pedantic", "-fsyntax-only", "-I",
              str(STUBS / "esp_idf"), "-I", str(STUBS / "arduino"), "-I", str(src), "-I",
              str(exports.runtime(exports.esp) / "src"),
              str(exports.esp / "examples" / "esp_idf" / "main" / "main.c")])


def test_library_compiles_for_the_esp32s3_with_its_toolchain(exports):
    xtensa = shutil.which("xtensa-esp32s3-elf-gcc") or "/opt/esp32s3/xtensa-esp32s3-elf/bin/" \
        "xtensa-esp32s3-elf-gcc"
    if not Path(xtensa).is_file():
        pytest.skip("xtensa-esp32s3-elf-gcc not found (the ESP32-S3 bundle in /opt/esp32s3)")
    src, runtime = exports.esp / "src", exports.runtime(exports.esp) / "src"
    for c in sorted([*src.rglob("*.c"), *runtime.rglob("*.c"), *runtime.rglob("*.S")]):
        _compile([xtensa, "-std=c99", *WARN.split(), "-O2", "-mlongcalls", "-c", "-o",
                  os.devnull, "-I", str(src), "-I", str(runtime), str(c)])


def test_platformio_example_project_parses_offline(exports):
    pio = shutil.which("pio") or str(Path(os.sys.executable).with_name("pio"))
    if not Path(pio).exists():
        pytest.skip("PlatformIO (pio) is not installed")
    proc = subprocess.run([pio, "project", "config", "--json-output"],
                          cwd=exports.esp / "examples" / "platformio", capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    cfg = {section: dict(items) for section, items in json.loads(proc.stdout)}
    env = cfg["env:esp32s3"]
    assert env["board"] == "esp32-s3-devkitc-1"
    assert env["lib_deps"] == ["symlink://../..", "symlink://../../../sqz_runtime"]


def test_platformio_boards_agree_with_the_checkout(tmp_path):
    import configparser

    ini = configparser.ConfigParser(interpolation=None)
    ini.read(REPO / "platformio.ini")
    for env, board in export.PIO_BOARDS.items():
        section = ini[f"env:{env}"]
        assert (section["platform"], section["board"]) == (board["platform"], board["board"])
        for key, value in board["options"]:
            if key == "build_flags":
                assert set(value.split()) <= set(section[key].split())
            else:
                assert section[key] == value


# --- determinism and safety --------------------------------------------------------------------

def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file()}


def test_export_is_deterministic(exports, tmp_path):
    """Repeated exports are byte-identical, and an export from the model directory alone
    (converted again from its sqz.json) is the one sqz-convert --export wrote from the
    conversion in memory."""
    a, b = tmp_path / "a" / "sqz_shapes", tmp_path / "b" / "sqz_shapes"
    export.export_library(exports.host_model, a, sample=None)
    export.export_library(exports.host_model, b)
    assert _tree(a) == _tree(b)
    assert _tree(a.parent / "sqz_runtime") == _tree(b.parent / "sqz_runtime")
    assert _tree(a.parent / "sqz_runtime") == _tree(exports.runtime(exports.host))
    fixture = _tree(exports.host)
    for rel, data in _tree(a).items():  # the fixture's sample is its first calibration image
        if "sample" not in rel and rel not in ("sqz_export.json", "README.md"):
            assert fixture[rel] == data, rel
    api = (a / "src" / "sqz_shapes.c").read_text()
    assert api.startswith("/* DO NOT EDIT. Generated by sqz")
    # A model converted with --input whole (sqz.json records it) converts again the same.
    w = tmp_path / "w" / "shapes_whole"
    export.export_library(exports.root / "whole", w, name="shapes_whole")
    fixture = _tree(exports.whole)
    for rel, data in _tree(w).items():
        if "sample" not in rel and rel not in ("sqz_export.json", "README.md"):
            assert fixture[rel] == data, rel


def test_export_replaces_its_own_export_and_nothing_else(exports, tmp_path, capsys):
    dest = tmp_path / "lib"
    export.export_library(exports.host_model, dest)
    runtime = tmp_path / "sqz_runtime"
    assert (runtime / "sqz_export.json").is_file()
    # A file an older export wrote (its manifest lists it) and this one does not: removed.
    (dest / "src" / "stale.c").write_text("/* from an older export */\n")
    manifest = json.loads((dest / "sqz_export.json").read_text())
    manifest["files"]["src/stale.c"] = "0" * 64
    (dest / "sqz_export.json").write_text(json.dumps(manifest))
    export.export_library(exports.host_model, dest)
    assert not (dest / "src" / "stale.c").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".lib.")] == []
    # A file the user added to the library is not deleted: the export is refused.
    (dest / "src" / "mine.c").write_text("/* my own */\n")
    with pytest.raises(UsageError, match=r"holds files that sqz did not write \(src/mine.c\)"):
        export.export_library(exports.host_model, dest)
    assert (dest / "src" / "mine.c").is_file()

    mine = tmp_path / "my_project"
    mine.mkdir()
    (mine / "main.c").write_text("int main(void) { return 0; }\n")
    rc = convert_main([str(exports.host_model / "model.tflite"), "--target", "host", "--out",
                       str(tmp_path / "out"), "--export", str(mine), "-q"])
    err = capsys.readouterr().err
    assert rc == 3
    assert "is not a library exported by sqz (no sqz_export.json)" in err
    assert [p.name for p in mine.iterdir()] == ["main.c"]
    assert not (tmp_path / "out").exists()  # refused before converting anything


@pytest.mark.parametrize("args,message", [
    (["--export-name", "My Lib"], "--export-name 'My Lib': use lower-case letters"),
    (["--export-name", "sqz_run"], "--export-name 'sqz_run': the names sqz, sqz_runtime"),
    (["--export-name", "sqz_runtime"], "--export-name 'sqz_runtime': the names sqz"),
    (["--export-version", "1.0"], "--export-version '1.0': give a semantic version"),
    (["--export-image", "nope.png"], "--export-image nope.png: no such image file"),
    (["--export-url", "example.com"], "--export-url 'example.com': give an http:// or"),
    (["--export-license", "MIT license"], "--export-license 'MIT license': give an SPDX"),
    (["--export-author", "a\nb"], "--export-author 'a\\nb': give one line of text"),
])
def test_bad_export_options_are_usage_errors(exports, tmp_path, capsys, args, message):
    rc = convert_main([str(exports.host_model / "model.tflite"), "--target", "host", "--out",
                       str(tmp_path / "out"), "--export", str(tmp_path / "lib"), *args, "-q"])
    err = capsys.readouterr().err
    assert rc in (2, 3)
    assert message in err


def test_export_and_out_must_not_overlap(exports, tmp_path, capsys):
    out = tmp_path / "out"
    rc = convert_main([str(exports.host_model / "model.tflite"), "--target", "host", "--out",
                       str(out), "--export", str(out / "lib"), "-q"])
    assert rc == 2
    assert "overlap" in capsys.readouterr().err


def test_export_options_need_export(exports, tmp_path, capsys):
    for option in ("--export-name", "--export-author"):
        rc = convert_main([str(exports.host_model / "model.tflite"), "--target", "host",
                           "--out", str(tmp_path / "out"), option, "x", "-q"])
        assert rc == 2
        assert "go with --export DIR" in capsys.readouterr().err


# --- several models in one firmware, one runtime -------------------------------------------------

TWO_MODELS_MAIN = """\
#include <stdio.h>

#include "digits.h"
#include "digits_sample.h"
#include "sqz_shapes.h"
#include "sqz_shapes_sample.h"

static uint8_t second_arena[DIGITS_ARENA_BYTES] __attribute__((aligned(16)));

int main(void)
{
    uint16_t a = 0, b = 0;
    int8_t sa = 0, sb = 0;
    if (sqz_shapes_init(NULL, 0) != SQZ_OK || digits_init(second_arena, sizeof second_arena)
        != SQZ_OK) {
        return 2;
    }
    static int8_t x[SQZ_SHAPES_INPUT_BYTES];
    static int8_t row[DIGITS_INPUT_ROW_BYTES];
    uint32_t y;
    /* One model on a whole input, the other fed row by row. */
    sqz_shapes_quantize_pixels(sqz_shapes_sample_pixels, x, SQZ_SHAPES_INPUT_PIXELS);
    digits_input_begin();
    for (y = 0; y < DIGITS_INPUT_HEIGHT; ++y) {
        digits_quantize_pixels(digits_sample_pixels + y * DIGITS_INPUT_ROW_BYTES, row,
                               DIGITS_INPUT_WIDTH);
        digits_input_write(row, sizeof row);
    }
    if (sqz_shapes_run_input(x) != SQZ_OK || digits_input_end() != SQZ_OK) {
        return 3;
    }
    sqz_shapes_top_k(1, &a, &sa);
    digits_top_k(1, &b, &sb);
    printf("sqz_shapes %s %u %d %d\\n", sqz_shapes_class_name(a), (unsigned)a, (int)sa,
           SQZ_SHAPES_SAMPLE_EXPECTED_CLASS);
    printf("digits %u %d %d\\n", (unsigned)b, (int)sb, DIGITS_SAMPLE_EXPECTED_CLASS);
    return a == SQZ_SHAPES_SAMPLE_EXPECTED_CLASS && b == DIGITS_SAMPLE_EXPECTED_CLASS ? 0 : 1;
}
"""


def test_two_models_in_one_firmware(exports, tmp_path):
    """Two exported models, each with its own names, linked into one CMake firmware with one
    runtime, and both run: the bundled example and a small SqueezeNet of another shape. Before,
    the second header was skipped (same include guard) and the first model's symbols won."""
    _need("cmake", "cc")
    libs = tmp_path / "lib"
    shutil.copytree(exports.host, libs / "sqz_shapes")
    shutil.copytree(exports.runtime(exports.host), libs / "sqz_runtime")
    rc = convert_main(["squeezenet1_1", "--input-size", "40", "--classes", "3", "--preprocess",
                       "simple", "--target", "host", "--out", str(tmp_path / "digits-model"),
                       "--export", str(libs / "digits"), "--export-name", "digits", "-q"])
    assert rc == 0
    assert sorted(p.name for p in libs.iterdir() if not p.name.startswith(".")) == [
        "digits", "sqz_runtime", "sqz_shapes"]
    users = json.loads((libs / "sqz_runtime" / "sqz_export.json").read_text())["users"]
    assert sorted(users) == ["digits", "sqz_shapes"]
    project = tmp_path / "firmware"
    project.mkdir()
    (project / "main.c").write_text(TWO_MODELS_MAIN)
    (project / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.13)\nproject(two_models C)\n"
        f"add_subdirectory({(libs / 'sqz_shapes').as_posix()} sqz_shapes)\n"
        f"add_subdirectory({(libs / 'digits').as_posix()} digits)\n"
        "add_executable(two_models main.c)\n"
        "target_link_libraries(two_models PRIVATE sqz_shapes digits)\n")
    build = _cmake_build(project, tmp_path / "b")
    proc = subprocess.run([str(build / "two_models")], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    shapes_line, digits_line = proc.stdout.splitlines()
    assert shapes_line.split()[1] == "circle"
    assert digits_line.split()[1] == digits_line.split()[3]
    # One runtime archive, each model's symbols under its own name, sqz_run defined once.
    assert len(list(build.rglob("libsqz_runtime.a"))) == 1
    syms = subprocess.run(["nm", str(build / "two_models")], capture_output=True,
                          text=True).stdout
    defined = [ln.split()[-1] for ln in syms.splitlines() if re.match(r"\S+ [TtDdRrBb] ", ln)]
    assert defined.count("sqz_run") == 1
    assert {"sqz_shapes_run_input", "digits_input_end", "sqz_shapes_model_def",
            "digits_model_def"} <= set(defined)


def test_runtime_is_shared_and_kept_consistent(exports, tmp_path):
    """The runtime beside the models is written once; exporting again leaves it as it is; a
    model for another CPU's kernels is refused; a runtime written by different sources is
    replaced only when no other model uses it; a removed model no longer counts."""
    libs = tmp_path / "lib"
    export.export_library(exports.host_model, libs / "a", name="model_a")
    runtime = libs / "sqz_runtime"
    stamp = (runtime / "sqz_export.json").stat().st_mtime_ns
    export.export_library(exports.host_model, libs / "a", name="model_a")
    assert (runtime / "sqz_export.json").stat().st_mtime_ns == stamp  # nothing to change
    export.export_library(exports.host_model, libs / "b", name="model_b")
    users = json.loads((runtime / "sqz_export.json").read_text())["users"]
    assert sorted(users) == ["model_a", "model_b"]
    # Models for two CPUs' kernels cannot share a runtime (nor a firmware).
    other = tmp_path / "other"
    export.export_library(exports.root / "esp", other / "model_e", name="model_e")
    with pytest.raises(UsageError, match=r"serves model_e, converted for the esp32s3 kernels, "
                                         r"and this model is for armv7em: one firmware runs on "
                                         r"one CPU"):
        export.export_library(exports.root / "m4", other / "model_m", name="model_m")
    # A runtime from other sources (another sqz), still used by model_b: refused.
    manifest = json.loads((runtime / "sqz_export.json").read_text())
    manifest["files"]["src/sqz_runtime/runtime/exec.c"] = "0" * 64
    manifest["generator"] = "sqz 0.0.1"
    (runtime / "sqz_export.json").write_text(json.dumps(manifest))
    with pytest.raises(InputFileError, match=r"is the runtime of model_b, written by sqz 0.0.1"):
        export.export_library(exports.host_model, libs / "a", name="model_a")
    # Once model_b is gone, model_a's export replaces it.
    shutil.rmtree(libs / "b")
    export.export_library(exports.host_model, libs / "a", name="model_a")
    manifest = json.loads((runtime / "sqz_export.json").read_text())
    assert list(manifest["users"]) == ["model_a"] and manifest["generator"].startswith("sqz 0.")
    assert manifest["files"]["src/sqz_runtime/runtime/exec.c"] != "0" * 64


def test_reserved_names_cover_the_runtimes_symbols(exports, tmp_path):
    """A model library's symbols are NAME_...; no NAME the export accepts can produce one of
    the runtime's global symbols, because their second word is reserved."""
    _need("cc")
    objs = []
    # Every architecture's runtime (their variants build on the host too, as C twins).
    for i, lib in enumerate((exports.host, exports.m4, exports.esp)):
        runtime = exports.runtime(lib)
        for c in sorted((runtime / "src").rglob("*.c")):
            obj = tmp_path / f"{i}-{c.stem}.o"
            _compile(["cc", "-std=c99", "-c", "-o", str(obj), "-I", str(runtime / "src"),
                      str(c)])
            objs.append(str(obj))
    # The validation server's and the ports' names too: sqz_app_*, sqz_port_*.
    header = (runtime / "src" / "sqz" / "port.h").read_text()
    names = set(re.findall(r"\b(sqz_\w+)\s*\(", header))
    syms = subprocess.run(["nm", "-g", "--defined-only", *objs], capture_output=True,
                          text=True).stdout
    names |= {ln.split()[-1] for ln in syms.splitlines() if len(ln.split()) == 3}
    assert names and all(n.startswith("sqz_") for n in names), names
    for n in names:
        assert n.split("_")[1] in export.RESERVED_WORDS, n


def test_public_header_brings_no_runtime_internals(exports, tmp_path):
    """The API header needs the status codes only; the generic names model.h and sqz_target.h
    are not on the user's include path (the libraries' src/)."""
    _need("cc")
    lib, runtime = exports.host, exports.runtime(exports.host)
    for include_dir in (lib / "src", runtime / "src"):
        assert not (include_dir / "model.h").exists()
        assert not (include_dir / "sqz_target.h").exists()
    user = tmp_path / "user.c"
    user.write_text('#include "sqz_shapes.h"\n')
    proc = subprocess.run(["cc", "-std=c99", "-E", "-I", str(lib / "src"), "-I",
                           str(runtime / "src"), str(user)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    included = set(re.findall(r'^# \d+ "([^"]+)"', proc.stdout, re.M))
    ours = {Path(p).name for p in included if str(lib) in p or str(runtime) in p}
    assert ours == {"sqz_shapes.h", "sqz_runtime.h", "status.h"}
    assert "sqz_node" not in proc.stdout and "sqz_conv_params" not in proc.stdout


def test_cmake_asks_for_optimization_without_a_build_type(exports, tmp_path):
    """CMake compiles with no optimization (-O0) when the project sets no build type; the
    libraries then ask for -O2 themselves, and leave a build type alone."""
    _need("cmake", "cc")
    example = exports.host / "examples" / "cmake"
    for build_type, want in ((None, True), ("Debug", False)):
        build = tmp_path / f"b-{build_type}"
        cmd = ["cmake", "-S", str(example), "-B", str(build),
               "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON"]
        if build_type:
            cmd.append(f"-DCMAKE_BUILD_TYPE={build_type}")
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        commands = json.loads((build / "compile_commands.json").read_text())
        libs = [c for c in commands if "/src/" in c["file"]]
        assert {Path(c["file"]).name for c in libs} >= {"sqz_shapes.c", "exec.c", "conv_s8.c"}
        for c in libs:
            assert ("-O2" in c["command"].split()) == want, c


# --- camera models: the frame API ---------------------------------------------------------------

@dataclass(frozen=True)
class CameraExports:
    models: dict[str, Path]  # spec -> model directory
    libs: dict[str, Path]  # spec -> library


# Host libraries: a landscape RGB565 frame (centre crop drops columns) and a portrait YUYV one
# with nearest resizing (the crop drops the frame's first and last rows, which the library takes
# and drops); the Cortex-M4 library runs on QEMU.
CAMERAS = {"rgb565": ("host", "rgb565le:40x30"), "yuyv": ("host", "yuyv:30x40:nearest"),
           "m4": ("mps2-an386", "rgb565le:40x30")}


@pytest.fixture(scope="module")
def camera_exports(exports) -> CameraExports:
    """The bundled example's int8 model (with its preprocessing and classes beside it),
    converted with --camera and exported."""
    tfl = exports.root / "shapes.tflite"
    models, libs = {}, {}
    for key, (target, spec) in CAMERAS.items():
        models[key] = exports.root / f"cam-{key}"
        libs[key] = exports.root / f"cam-{key}-lib" / "sqz_cam"
        assert convert_main([str(tfl), "--target", target, "--camera", spec, "--out",
                             str(models[key]), "--export", str(libs[key]), "--export-name",
                             "sqz_cam", "-q"]) == 0
    return CameraExports(models, libs)


def _camera_reference(model_dir: Path, seed: int) -> tuple[bytes, list[int]]:
    """The synthetic frame, and LiteRT's output on what the host mirror makes of it."""
    from converter.frontend import camera, tflite_reader
    from converter.modeldir import load_model_dir

    md = load_model_dir(model_dir, None)
    g = tflite_reader.read_model_bytes(md.tflite)
    t = g.tensor(g.inputs[0])
    scale, zp = t.quant.single()
    params = camera.camera_params(md.camera, md.preprocessing, scale, zp, *t.shape[1:])
    frame = camera.frame_gradient(md.camera, seed)
    x = camera.mirror(frame, params)
    return frame, reference.run_reference(md.tflite, x[None]).outputs.reshape(-1).tolist()


# What each misuse of the frame API returns (tests/c/export_frame_check.c): SQZ_ERR_ARG is 1.
FRAME_ERRORS = {**{k: v for k, v in STREAM_ERRORS.items() if k != "run_input_null"},
                "write_after_run_frame": 1, "run_frame_null": 1}


@pytest.mark.parametrize("which,seed", [("rgb565", 0), ("yuyv", 5)])
def test_frame_api_against_the_reference(camera_exports, which, seed, tmp_path):
    """tests/c/export_frame_check.c, linked with a camera model's library (warnings as errors,
    AddressSanitizer and UBSan): the synthetic frame is frame_gradient's; LIB_run_frame and the
    streaming API in pieces of 1, 7, a row, a row and one, and the whole frame's bytes each give
    LiteRT's output on the host mirror's input; the misuse statuses; the plain input functions
    are not offered."""
    _need("cmake", "cc")
    lib = camera_exports.libs[which]
    header = (lib / "src" / "sqz_cam.h").read_text()
    for absent in ("input_begin", "input_write", "input_end", "run_input", "quantize_pixels",
                   "input", "run"):
        assert not re.search(rf"^\w.*\bsqz_cam_{absent}\(", header, re.M), absent  # declared
    for present in ("run_frame", "frame_begin", "frame_write", "frame_end"):
        assert f"sqz_status sqz_cam_{present}(" in header
    project = tmp_path / "check"
    project.mkdir()
    shutil.copy(REPO / "tests" / "c" / "export_frame_check.c", project / "check.c")
    (project / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.13)\nproject(check C)\n"
        f"add_subdirectory({lib.as_posix()} lib)\n"
        "add_executable(check check.c)\n"
        "target_compile_definitions(check PRIVATE LIB=sqz_cam LIBU=SQZ_CAM "
        f"SQZ_API_HEADER=\"sqz_cam.h\" SEED={seed}u)\n"
        "target_link_libraries(check PRIVATE sqz_cam)\n")
    sanitize = "-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
    build = _cmake_build(project, tmp_path / "b", cflags=f"{WARN} {sanitize}")
    proc = subprocess.run([str(build / "check")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    lines = proc.stdout.splitlines()

    from converter.frontend import camera

    cam = camera.Camera.parse(CAMERAS[which][1])
    assert lines[0].split()[1:] == [str(camera.FORMATS.index(cam.format) + 1), cam.format,
                                    str(cam.width), str(cam.height), str(cam.row_bytes),
                                    str(cam.frame_bytes), lines[0].split()[-1]]
    assert 1 <= int(lines[0].split()[-1]) <= 2
    facts = dict(x.rsplit(" ", 1) for x in lines if x.startswith("init "))
    assert facts == {"init run_before": "1", "init begin_before": "1",
                     "init write_before": "1", "init ok": "0"}
    frame, want = _camera_reference(camera_exports.models[which], seed)
    device_frame = bytes(int(v) for v in next(
        x for x in lines if x.startswith("frame ")).split()[1:])
    assert device_frame == frame
    outputs = [[int(v) for v in x.split()[1:]] for x in lines if x.startswith("whole ")]
    assert outputs == [[0, *want], [0, *want]]
    streams = {x.split()[1]: [int(v) for v in x.split()[2:]] for x in lines
               if x.startswith("stream ")}
    assert set(streams) == {"1", "7", "row", "row+1", "frame", "resumed", "restarted"}
    for chunk, got in streams.items():
        assert got == [0, *want], chunk  # SQZ_OK, then the reference's output
    errors = {x.split()[1]: int(x.split()[2]) for x in lines if x.startswith("error ")}
    assert errors == FRAME_ERRORS
    assert lines.count("failed none") == 2


def _camera_label(model_dir: Path) -> tuple[str, int, int]:
    _, out = _camera_reference(model_dir, export.FRAME_SEED)
    names = json.loads((model_dir / "classes.json").read_text())
    top = int(np.argmax(out))
    return names[top], top, out[top]


def test_camera_cmake_example_classifies_a_synthetic_frame(camera_exports, tmp_path):
    """The CMake example of a camera model makes a synthetic RGB565 frame row by row and feeds
    it row by row: it prints the class LiteRT gives on the host mirror's input, on the host and,
    cross-compiled, on QEMU's mps2-an386."""
    _need("cmake", "cc")
    lib = camera_exports.libs["rgb565"]
    main = (lib / "examples" / "cmake" / "main.c").read_text()
    assert "sqz_cam_frame_gradient_byte(FRAME_SEED, x, y)" in main
    assert "sqz_cam_frame_write(row, SQZ_CAM_FRAME_ROW_BYTES)" in main
    assert "sample_pixels" not in main and "input_write" not in main
    build = _cmake_build(lib / "examples" / "cmake", tmp_path / "host")
    proc = subprocess.run([str(build / "classify")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    label, cls, score, expected, _ = _parse(proc.stdout)
    want = _camera_label(camera_exports.models["rgb565"])
    assert (label, cls, score) == want and expected == want[1]

    _need("arm-none-eabi-gcc", "qemu-system-arm")
    lib = camera_exports.libs["m4"]
    cmake_dir = lib / "examples" / "cmake"
    build = _cmake_build(cmake_dir, tmp_path / "m4", "-DCMAKE_TOOLCHAIN_FILE="
                         f"{cmake_dir / 'mps2_an386' / 'toolchain.cmake'}")
    proc = subprocess.run([*QEMU_CMD, str(build / "classify")], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    label, cls, score, expected, micros = _parse(proc.stdout)
    want = _camera_label(camera_exports.models["m4"])
    assert (label, cls, score) == want and expected == want[1]
    assert 0 < micros < 1_000_000


def test_camera_examples_compile_against_stubs(camera_exports):
    """The Arduino/PlatformIO sketch and the ESP-IDF example of a camera model, against the
    stub cores: they feed the frame API."""
    _need("cc", "g++")
    lib = camera_exports.libs["rgb565"]
    includes = ["-I", str(lib / "src"), "-I", str(lib.parent / export.RUNTIME / "src")]
    sketch = lib / "examples" / "platformio" / "src" / "main.cpp"
    assert "sqz_cam_frame_write" in sketch.read_text()
    _compile(["g++", "-std=gnu++17", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", "-x", "c++",
              "-I", str(STUBS / "arduino"), *includes, str(sketch)])
    idf = lib / "examples" / "esp_idf" / "main" / "main.c"
    assert "sqz_cam_frame_write" in idf.read_text()
    _compile(["cc", "-std=gnu99", *WARN.split(), "-Wno-pedantic", "-fsyntax-only", "-I",
              str(STUBS / "esp_idf"), *includes, str(idf)])
    for c in sorted((lib / "src").rglob("*.c")):
        _compile(["cc", "-std=c99", *WARN.split(), "-fsyntax-only", *includes, str(c)])


def test_camera_export_from_the_model_directory_is_the_same(camera_exports, tmp_path):
    """Exporting a camera model from its directory alone converts it again with its
    camera.json: the same code as the export sqz-convert wrote from the conversion."""
    key = "yuyv"
    dest = tmp_path / "again" / "sqz_cam"
    export.export_library(camera_exports.models[key], dest, name="sqz_cam")
    again, first = _tree(dest), _tree(camera_exports.libs[key])
    assert again.keys() == first.keys()
    for rel, data in again.items():
        if rel not in ("sqz_export.json", "README.md"):
            assert first[rel] == data, rel
    assert "extras/sqz/camera.json" in again


def test_export_image_with_a_camera_is_a_usage_error(exports, tmp_path, capsys):
    rc = convert_main([str(exports.root / "shapes.tflite"), "--target", "host", "--camera",
                       "rgb565le:40x30", "--out", str(tmp_path / "out"), "--export",
                       str(tmp_path / "lib"), "--export-image", str(FIRST_IMAGE), "-q"])
    assert rc == 2
    assert "--export-image goes with plain models" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_docs_camera_code_compiles_against_a_camera_export(camera_exports, tmp_path):
    """docs/export.md's camera-driver block, compiled with a camera model's library and fed the
    synthetic frame row by row: it prints the reference's class."""
    _need("cmake", "cc")
    text = (REPO / "docs" / "export.md").read_text()
    code = re.search(r"## Camera frames\n.*?```c\n(.*?)```", text, re.S).group(1)
    project = tmp_path / "docs"
    project.mkdir()
    (project / "driver.c").write_text(
        "#include <stdio.h>\n" + code + "\nint main(void)\n{\n"
        "    static uint8_t row[SQZ_CAM_FRAME_ROW_BYTES];\n    uint32_t x, y;\n"
        "    if (sqz_cam_init(NULL, 0) != SQZ_OK) {\n        return 2;\n    }\n"
        "    sqz_cam_frame_begin();\n"
        "    for (y = 0; y < SQZ_CAM_FRAME_HEIGHT; ++y) {\n"
        "        for (x = 0; x < SQZ_CAM_FRAME_ROW_BYTES; ++x) {\n"
        "            row[x] = sqz_cam_frame_gradient_byte(0, x, y);\n        }\n"
        "        on_camera_row(row);\n    }\n    on_frame_done();\n    return 0;\n}\n")
    lib = camera_exports.libs["rgb565"]
    (project / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.13)\nproject(docs C)\n"
        f"add_subdirectory({lib.as_posix()} lib)\n"
        "add_executable(driver driver.c)\ntarget_link_libraries(driver PRIVATE sqz_cam)\n")
    build = _cmake_build(project, tmp_path / "b")
    proc = subprocess.run([str(build / "driver")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == _camera_label(camera_exports.models["rgb565"])[0] + "\n"
