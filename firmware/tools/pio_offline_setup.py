"""PlatformIO without its registry: install its SCons package from PyPI's SCons.

PlatformIO Core runs every build through SCons, which it normally downloads from its registry
as the package `platformio/tool-scons` on first use. Where the registry cannot be reached, that
first build fails. This script builds the same package from the SCons that PyPI distributes
(installed with pip: `pip install scons==4.11.1`, part of sqz's test extras) and installs it
with PlatformIO's own package manager:

    python firmware/tools/pio_offline_setup.py          # PlatformIO's core directory
    PLATFORMIO_CORE_DIR=DIR python firmware/tools/pio_offline_setup.py

Run it with the Python that has PlatformIO and SCons (sqz's virtual environment). A machine that
can reach the registry never needs it. With it, the boards that need no other package build
offline: sqz's emulated boards (`pio run -e esp32s3-qemu`, `-e mps2-an386`, whose platform is
kept in firmware/tools/pio_qemu). It changes nothing when the package is already installed.

How: PlatformIO wants tool-scons in the version that encodes SCons 4.M.P as 4.4MMPP.0 (PlatformIO
6.1.19 and later: ~4.41101.0 for SCons 4.11.1). The package is a folder with the `SCons` module,
the `scons.py` launcher PlatformIO runs, and a package.json; `pio pkg install -g --tool
file://FOLDER` installs it, and its install record (.piopm) is then given the owner
`platformio`, because PlatformIO looks the package up as platformio/tool-scons.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PACKAGE = "tool-scons"
LAUNCHER = '''\
"""SCons as PlatformIO runs it (scons.py in its tool-scons package): here PyPI's SCons, copied
beside this file by sqz's firmware/tools/pio_offline_setup.py."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import SCons.Script  # noqa: E402

SCons.Script.main()
'''


class SetupError(Exception):
    pass


def package_version(scons_version: str) -> str:
    """PlatformIO's version of tool-scons for an SCons release: 4.11.1 -> 4.41101.0."""
    parts = scons_version.split(".")
    if len(parts) < 3 or not all(p.isdigit() for p in parts[:3]):
        raise SetupError(f"cannot read the SCons version {scons_version!r}")
    major, minor, patch = (int(p) for p in parts[:3])
    return f"{major}.{major}{minor:02d}{patch:02d}.0"


def required_spec() -> str:
    """The tool-scons version range this PlatformIO wants (platformio.dependencies)."""
    from platformio.dependencies import get_core_dependencies

    return get_core_dependencies()[PACKAGE]


def _scons() -> tuple[Path, str]:
    spec = importlib.util.find_spec("SCons")
    if spec is None or not spec.submodule_search_locations:
        raise SetupError(f"SCons is not installed for {sys.executable}: pip install "
                         "scons==4.11.1 (sqz's test extras have it: pip install -e '.[test]')")
    import SCons

    return Path(next(iter(spec.submodule_search_locations))), SCons.__version__


def packages_dir() -> Path:
    """PlatformIO's global tool packages (PLATFORMIO_CORE_DIR/packages, ~/.platformio/packages
    by default)."""
    from platformio.package.manager.tool import ToolPackageManager

    return Path(ToolPackageManager().package_dir)


def installed_record(packages: Path) -> dict | None:
    try:
        return json.loads((packages / PACKAGE / ".piopm").read_text())
    except (OSError, ValueError):
        return None


def _matches(version: str, spec: str) -> bool:
    import semantic_version

    return semantic_version.Version(version) in semantic_version.SimpleSpec(spec)


def setup(*, quiet: bool = False) -> Path:
    """Installs tool-scons into PlatformIO's core directory unless a usable one is there;
    returns the package's directory."""
    if importlib.util.find_spec("platformio") is None:
        raise SetupError(f"PlatformIO is not installed for {sys.executable}: pip install "
                         "platformio (sqz depends on it: pip install -e .)")
    spec = required_spec()
    packages = packages_dir()
    record = installed_record(packages)
    if (record and (record.get("spec") or {}).get("owner") == "platformio"
            and _matches(record.get("version", "0.0.0"), spec)):
        if not quiet:
            print(f"{PACKAGE} {record['version']} is already installed in {packages}")
        return packages / PACKAGE
    source, version = _scons()
    pkg_version = package_version(version)
    if not _matches(pkg_version, spec):
        raise SetupError(f"this PlatformIO wants {PACKAGE} {spec}, and SCons {version} is "
                         f"{pkg_version}: install the SCons release it encodes (pip install "
                         f"scons==4.11.1 for ~4.41101.0)")
    with tempfile.TemporaryDirectory(prefix="sqz-tool-scons-") as tmp:
        folder = Path(tmp) / PACKAGE
        shutil.copytree(source, folder / "SCons",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        (folder / "scons.py").write_text(LAUNCHER)
        (folder / "package.json").write_text(json.dumps({
            "name": PACKAGE, "version": pkg_version,
            "description": f"SCons {version} from PyPI, packaged for PlatformIO by sqz",
            "keywords": ["build tool"], "license": "MIT",
            "homepage": "https://scons.org"}, indent=2) + "\n")
        env = {**os.environ, "PLATFORMIO_SETTING_ENABLE_TELEMETRY": "No"}
        proc = subprocess.run([sys.executable, "-m", "platformio", "pkg", "install", "-g",
                               "--tool", f"file://{folder}"], capture_output=True, text=True,
                              env=env)
        if proc.returncode != 0:
            raise SetupError(f"pio pkg install failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    path = packages / PACKAGE / ".piopm"
    record = installed_record(packages)
    if record is None:
        raise SetupError(f"pio pkg install reported success but {path} is missing")
    # PlatformIO looks the package up as platformio/tool-scons; a file:// install records no
    # owner (and the folder's name), so the record is completed as a registry install's would be.
    record["spec"] = {**(record.get("spec") or {}), "owner": "platformio", "name": PACKAGE}
    tmp_path = path.with_name(path.name + ".tmp")
    tmp_path.write_text(json.dumps(record))
    os.replace(tmp_path, path)
    if not quiet:
        print(f"Installed {PACKAGE} {pkg_version} (SCons {version} from PyPI) in {packages}")
    return path.parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    args = p.parse_args(argv)
    try:
        setup(quiet=args.quiet)
    except SetupError as e:
        print(f"pio_offline_setup: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
