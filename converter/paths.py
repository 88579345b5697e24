"""Where the project's non-Python parts live (firmware, templates, targets).

sqz is installed editable from its checkout (see README), so these are found beside the package.
"""

from __future__ import annotations

from pathlib import Path

from .errors import BuildError

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
TEMPLATES = ROOT / "templates"
TARGETS = ROOT / "targets"


def require(path: Path) -> Path:
    if not path.exists():
        raise BuildError(
            f"{path} is missing: sqz must be installed from its checkout with "
            "'pip install -e .' so it can find firmware/, templates/ and targets/"
        )
    return path
