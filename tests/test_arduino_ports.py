"""The Arduino ports (ESP32/ESP32-S3 and STM32) cannot be built here: PlatformIO's registry,
which serves the cores, is unreachable. They are still compiled as C++, warnings as errors,
against the headers sqz-convert generates for their boards and stub headers declaring the few
core APIs they use, so a typo or a type error in them fails CI. What the stubs cannot check is
the cores' real API."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest import REPO
from tflbuild import maxpool_model

from converter import convert, targets

PORTS = REPO / "firmware" / "ports"
STUBS = REPO / "tests" / "stubs" / "arduino"


@pytest.mark.parametrize("board,port,ram_budget", [
    ("esp32s3", "esp32_arduino", None),   # arena in internal SRAM
    ("esp32s3", "esp32_arduino", 6144),   # arena in PSRAM (the buffers fit, not the arena too)
    ("esp32", "esp32_arduino", None),
    ("nucleo_f767zi", "stm32_arduino", None),
])
def test_port_compiles_against_its_generated_headers(tmp_path, board, port, ram_budget):
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler (g++) to check the Arduino ports with")
    buf = maxpool_model()
    conv = convert.convert_tflite(buf, targets.load(board), model_name="m",
                                  source_name="m.tflite", ram_budget=ram_budget)
    assert conv.budget.arena_in_psram == (ram_budget is not None)
    convert.write(conv, buf, tmp_path)
    proc = subprocess.run(
        [cxx, "-std=gnu++17", "-Wall", "-Wextra", "-Werror", "-fsyntax-only",
         "-I", str(tmp_path), "-I", str(STUBS), "-I", str(REPO / "firmware" / "include"),
         str(PORTS / port / "port.cpp")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
