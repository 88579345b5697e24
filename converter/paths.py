"""Where the project's non-Python parts live (firmware, templates, targets, the bundled example).

In a checkout they sit beside the package (firmware/, templates/, targets/, examples/ at the
top of the repository), which is also what an editable install (`pip install -e .`) uses. A
wheel (`pip install sqz-mcu`) carries the same folders inside the package (installed as
sqz_mcu), as sqz_mcu/_data/ (mapped in pyproject.toml), and that copy wins when it exists.
"""

from __future__ import annotations

from pathlib import Path

from .errors import BuildError

PACKAGE = Path(__file__).resolve().parent
_INSTALLED = PACKAGE / "_data"
_CHECKOUT = PACKAGE.parent

#: True when running from a wheel (or any non-editable install), False in a checkout.
INSTALLED = (_INSTALLED / "firmware").is_dir()
#: The folder holding firmware/, templates/, targets/ and examples/.
ROOT = _INSTALLED if INSTALLED else _CHECKOUT
FIRMWARE = ROOT / "firmware"
TEMPLATES = ROOT / "templates"
TARGETS = ROOT / "targets"
EXAMPLES = ROOT / "examples"
#: The repository checkout (with platformio.ini) sqz runs from, or None for an installed sqz.
CHECKOUT: Path | None = (
    _CHECKOUT if not INSTALLED and (_CHECKOUT / "platformio.ini").is_file() else None)


def require(path: Path) -> Path:
    if not path.exists():
        where = ("the installed sqz package" if INSTALLED else f"the sqz checkout {_CHECKOUT}")
        raise BuildError(
            f"{path} is missing from {where}: the installation is incomplete. Reinstall sqz "
            "(`pip install sqz-mcu`, or `pip install -e .` in a checkout)")
    return path
