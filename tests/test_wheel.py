"""sqz as a user installs it: `python -m build`, the wheel installed into a new virtual
environment, the tools run from a directory that is not the checkout.

The environment is new and has no access to the checkout: sqz, its firmware, templates, board
profiles and the bundled example come from the wheel alone (asserted below). Its third-party
dependencies (TensorFlow and the rest, about 2 GB) are not installed a second time: a .pth file
puts the test environment's site-packages after the new environment's own. A .pth path is
appended to sys.path but its own .pth files are not run, so the editable install of the
checkout there stays invisible, and `pip check` confirms that the wheel's declared
requirements are met by what is visible. Set SQZ_WHEEL_FULL_INSTALL=1 to install the
dependencies into the new environment instead (from the pip cache or the index; minutes).
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO

IGNORE = shutil.ignore_patterns(".git", ".venv", "build", "dist", ".pio", "__pycache__",
                                "*.egg-info", ".hypothesis", ".pytest_cache", ".ruff_cache")
FULL_INSTALL = os.environ.get("SQZ_WHEEL_FULL_INSTALL") == "1"
FOREIGN_CONVERTER = 'raise ImportError("this is the unrelated PyPI package converter")\n'


@dataclass(frozen=True)
class Installed:
    wheel: Path
    sdist: Path
    python: Path
    bin: Path
    env: dict[str, str]
    work: Path  # an empty directory outside the checkout, the tools' working directory

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.bin / args[0]), *args[1:]], cwd=self.work, env=self.env,
                              capture_output=True, text=True, timeout=timeout)


def _check(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    pytest.importorskip("build", reason="the wheel test needs `build` (pip install -e '.[test]')")
    tmp = tmp_path_factory.mktemp("wheel")
    # A copy, so that building writes nothing (egg-info, build/) into the checkout.
    src = tmp / "src"
    shutil.copytree(REPO, src, ignore=IGNORE)
    dist = tmp / "dist"
    # sdist first, then the wheel built from the unpacked sdist: both must carry the data.
    _check(subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir",
                           str(dist), str(src)], capture_output=True, text=True, timeout=600))
    wheel = next(dist.glob("sqz_mcu-*.whl"))
    sdist = next(dist.glob("sqz_mcu-*.tar.gz"))

    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    pip = [sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check"]
    if FULL_INSTALL:
        _check(subprocess.run([*pip, "install", "-q", str(wheel)], capture_output=True,
                              text=True, timeout=3600))
    else:
        Path(purelib, "_sqz_test_dependencies.pth").write_text(
            "".join(p + "\n" for p in site.getsitepackages()))
        _check(subprocess.run([*pip, "install", "-q", "--no-deps", "--no-index", str(wheel)],
                              capture_output=True, text=True, timeout=600))
    _check(subprocess.run([*pip, "check"], capture_output=True, text=True, timeout=600))
    # A stand-in for PyPI's unrelated `converter` distribution, installed beside sqz: sqz must not
    # import it (nor overwrite it: the wheel's own package is sqz_mcu).
    foreign = Path(purelib, "converter")
    foreign.mkdir()
    (foreign / "__init__.py").write_text(FOREIGN_CONVERTER)

    work = tmp / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "SQZ_PIO_GLUE", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    # Fresh build caches: the firmware is compiled from the wheel's sources, not reused.
    cache = tmp / "tmpdir"
    cache.mkdir()
    env["TMPDIR"] = str(cache)
    return Installed(wheel=wheel, sdist=sdist, python=python, bin=venv / "bin", env=env,
                     work=work)


def _checkout_files() -> set[str]:
    """Every file the wheel must carry, as its path inside the wheel (the converter/ folder is
    the package sqz_mcu)."""
    want = {f"sqz_mcu/{p.relative_to(REPO / 'converter').as_posix()}"
            for p in (REPO / "converter").rglob("*.py")}
    for folder, suffixes in (("firmware", (".c", ".h", ".S", ".cpp", ".ld", ".py", ".json")),
                             ("templates", (".j2",)), ("targets", (".toml",))):
        want |= {f"sqz_mcu/_data/{p.relative_to(REPO).as_posix()}"
                 for p in (REPO / folder).rglob("*") if p.suffix in suffixes}
    return {w for w in want if "__pycache__" not in w}


def test_wheel_carries_the_package_firmware_templates_and_targets(installed):
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    missing = sorted(_checkout_files() - names)
    assert not missing, f"not in the wheel: {missing}"
    assert "sqz_mcu/_data/examples/shapes/shapes.keras" in names
    assert any(n.startswith("sqz_mcu/_data/examples/shapes/calib/circle/") for n in names)
    # One top-level package, named after the distribution: nothing from the checkout's top
    # level, and no `converter` (an unrelated PyPI distribution installs that name).
    assert {n.split("/")[0] for n in names} == {"sqz_mcu", "sqz_mcu-0.1.0.dist-info"}
    metadata = zipfile.ZipFile(installed.wheel).read("sqz_mcu-0.1.0.dist-info/METADATA")
    assert b"\nName: sqz-mcu\n" in metadata


def test_installed_sqz_uses_its_own_files(installed):
    proc = _check(subprocess.run(
        [str(installed.python), "-c",
         "import sqz_mcu, sqz_mcu.paths as p; "
         "print(sqz_mcu.__file__); print(p.INSTALLED, p.FIRMWARE, p.CHECKOUT)"],
        cwd=installed.work, env=installed.env, capture_output=True, text=True))
    module, paths = proc.stdout.splitlines()
    venv = installed.python.parent.parent
    assert Path(module).is_relative_to(venv), module
    installed_flag, firmware, checkout = paths.split()
    assert installed_flag == "True" and checkout == "None"
    assert Path(firmware).is_relative_to(venv)
    # The unrelated `converter` package beside it is untouched and still the one that name gets.
    proc = subprocess.run([str(installed.python), "-c", "import converter"], cwd=installed.work,
                          env=installed.env, capture_output=True, text=True)
    assert "this is the unrelated PyPI package converter" in proc.stderr


def test_convert_validate_and_bench_from_another_directory(installed):
    work = installed.work
    # The bundled example, found in the wheel, and exported as a library.
    proc = _check(installed.run("sqz-convert", "--target", "host", "--out", "host",
                                "--export", "lib"))
    assert "using the bundled example" in proc.stdout
    assert (work / "host" / "model.c").is_file()
    assert not (work / "build").exists()  # no PlatformIO glue without a checkout
    if shutil.which("cmake"):
        example = work / "lib" / "examples" / "cmake"
        _check(subprocess.run(["cmake", "-S", str(example), "-B", str(work / "lib-build")],
                              capture_output=True, text=True, env=installed.env))
        _check(subprocess.run(["cmake", "--build", str(work / "lib-build")],
                              capture_output=True, text=True, env=installed.env))
        proc = _check(subprocess.run([str(work / "lib-build" / "classify")],
                                     capture_output=True, text=True))
        assert proc.stdout.startswith("label: circle (class 0,")

    proc = _check(installed.run("sqz-validate", "--sim", "host", "--model", "host", "-n", "2"))
    assert "PASS: all 2 outputs bit-exact" in proc.stdout

    if shutil.which("qemu-system-arm") and shutil.which("arm-none-eabi-gcc"):
        _check(installed.run("sqz-convert", "host/model.tflite", "--target", "mps2-an386",
                             "--out", "m4"))
        proc = _check(installed.run("sqz-validate", "--sim", "qemu", "--model", "m4", "-n", "1"))
        assert "PASS: all 1 outputs bit-exact" in proc.stdout
    else:
        print("QEMU part skipped: qemu-system-arm or arm-none-eabi-gcc missing "
              "(apt-get install qemu-system-arm gcc-arm-none-eabi libnewlib-arm-none-eabi)")

    if shutil.which("valgrind"):
        _check(installed.run("sqz-bench", "host/model.tflite", "--out", "bench", "--no-layers",
                             "--json", "bench.json"))
        figures = json.loads((work / "bench.json").read_text())
        assert figures["instructions"] > figures["macs"] > 0
        assert figures["arena_bytes"] > 0
    else:
        print("sqz-bench part skipped: valgrind missing (apt-get install valgrind)")
