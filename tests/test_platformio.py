"""platformio.ini parses offline, and sqz-convert makes a plain `pio run` build its target."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from converter.cli import convert_main


def _pio() -> list[str]:
    exe = shutil.which("pio") or str(Path(sys.executable).with_name("pio"))
    if not Path(exe).exists():
        pytest.skip("PlatformIO (pio) is not installed: pip install platformio")
    return [exe]


def _config(project: Path) -> dict:
    proc = subprocess.run([*_pio(), "project", "config", "--json-output"], cwd=project,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return {section: dict(items) for section, items in json.loads(proc.stdout)}


def test_platformio_ini_parses_offline(tmp_path):
    # A copy without build/sqz_pio.ini: what a fresh checkout sees.
    shutil.copy(REPO / "platformio.ini", tmp_path / "platformio.ini")
    cfg = _config(tmp_path)
    assert cfg["platformio"]["default_envs"] == ["esp32s3"]
    assert cfg["platformio"]["src_dir"].endswith("firmware")
    assert cfg["sqz"]["model_dir"] == "build/esp32s3"
    for env, board in (("esp32s3", "esp32-s3-devkitc-1"), ("esp32", "esp32dev"),
                       ("nucleo_f767zi", "nucleo_f767zi")):
        assert cfg[f"env:{env}"]["board"] == board
        port = {"nucleo_f767zi": "stm32_arduino"}.get(env, "esp32_arduino")
        assert f"+<ports/{port}/>" in cfg[f"env:{env}"]["build_src_filter"][0]
        assert (REPO / "firmware" / "ports" / port / "port.cpp").is_file()


def test_conversion_selects_the_pio_env(tmp_path, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "platformio.ini", project / "platformio.ini")
    glue = project / "build" / "sqz_pio.ini"
    monkeypatch.setenv("SQZ_PIO_GLUE", str(glue))
    out = tmp_path / "model"
    assert convert_main(["squeezenet1_1", "--target", "nucleo_f767zi", "--input-size", "32",
                         "--classes", "2", "--out", str(out), "-q"]) == 0
    cfg = _config(project)
    assert cfg["platformio"]["default_envs"] == ["nucleo_f767zi"]
    assert cfg["sqz"]["model_dir"] == str(out.resolve())
