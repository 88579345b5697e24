"""platformio.ini parses offline, and sqz-convert makes a plain `pio run` build its target."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from converter.commands.convert import convert_main


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


class _FakeEnv:
    """The part of PlatformIO's SCons environment firmware/tools/pio_sqz.py uses."""

    def __init__(self, project: Path, model_dir: Path) -> None:
        self.vars = {"$PROJECT_DIR": str(project), "$PIOENV": "esp32s3"}
        self.model_dir = model_dir
        self.cpppath: list[str] = []
        self.built: list[tuple[str, str]] = []
        self.replaced: dict[str, str] = {}

    def subst(self, s: str) -> str:
        return self.vars[s]

    def GetProjectConfig(self):  # noqa: N802 - PlatformIO's name
        model_dir = self.model_dir

        class Config:
            def get(self, section: str, key: str) -> str:
                assert (section, key) == ("sqz", "model_dir")
                return str(model_dir)
        return Config()

    def Append(self, CPPPATH):  # noqa: N802,N803 - SCons's names
        self.cpppath += CPPPATH

    def BuildSources(self, variant: str, src: str) -> None:  # noqa: N802
        self.built.append((variant, src))

    def Replace(self, **values: str) -> None:  # noqa: N802
        self.replaced.update(values)


def _run_pre_script(project: Path, model_dir: Path) -> _FakeEnv:
    env = _FakeEnv(project, model_dir)
    code = (REPO / "firmware" / "tools" / "pio_sqz.py").read_text()
    exec(compile(code, "pio_sqz.py", "exec"), {"Import": lambda name: None, "env": env})
    return env


def _model(tmp_path: Path, arch: str) -> Path:
    model = tmp_path / "model"
    model.mkdir()
    for name in ("model.c", "model_data.c", "model.h"):
        (model / name).write_text("")
    (model / "sqz_target.h").write_text(f'#define SQZ_ARCH "{arch}"\n')
    return model


def test_pre_script_builds_the_model_and_no_variant_for_portable(tmp_path):
    model = _model(tmp_path, "portable")
    env = _run_pre_script(tmp_path, model)
    assert env.built == [("$BUILD_DIR/sqz_model", str(model))]
    assert env.cpppath == [str(model)]
    # For the emulated boards' upload message: the model as the user names it, from the project.
    assert env.replaced == {"SQZ_MODEL_DIR": "model"}


def test_pre_script_adds_the_kernel_variants_of_the_models_arch(tmp_path):
    """A profile with arch = "xyz" (e.g. esp32s3's PIE kernels) compiles firmware/src/arch/xyz/
    on the real board as in every other build."""
    arch_dir = tmp_path / "firmware" / "src" / "arch" / "xyz"
    arch_dir.mkdir(parents=True)
    (arch_dir / "conv_xyz.S").write_text("")
    model = _model(tmp_path, "xyz")
    env = _run_pre_script(tmp_path, model)
    assert env.built == [("$BUILD_DIR/sqz_model", str(model)),
                         ("$BUILD_DIR/sqz_arch", str(arch_dir))]
    assert str(arch_dir) in env.cpppath


def test_pre_script_names_a_missing_arch_directory(tmp_path):
    model = _model(tmp_path, "xyz")
    with pytest.raises(SystemExit, match=r"uses the 'xyz' kernels, but .*arch/xyz is missing"):
        _run_pre_script(tmp_path, model)
