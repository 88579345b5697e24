"""The bundled example model (examples/shapes): what sqz-convert uses when given no model."""

from __future__ import annotations

from ..errors import UsageError
from ..paths import EXAMPLES

EXAMPLE_DIR = EXAMPLES / "shapes"


def example_model_args() -> tuple[str, str | None, str | None]:
    """(model path, calibration folder, preprocessing file) of the bundled example."""
    model = EXAMPLE_DIR / "shapes.keras"
    if not model.is_file():
        raise UsageError("no model given and the bundled example (examples/shapes/shapes.keras) "
                         "is missing; give a model, e.g. sqz-convert squeezenet1_1")
    calib = EXAMPLE_DIR / "calib"
    return str(model), str(calib) if calib.is_dir() else None, None
