"""The data gate: every array sqz reads from a user's file passes here before anything uses it.

Calibration arrays (``--calib``), validation inputs (``sqz-validate --inputs``) and weights
files (``--weights``) are checked for what silently ruins or crashes the work downstream:
non-finite values (TensorFlow's quantizer dies with SIGSEGV on inf, and NaN calibrates a model
that looks fine and is not), the wrong dtype, and magnitudes no preprocessed input or weight
has. Each refusal names the file, the first offending index and what to do, because the user
sees only the message.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import SqzError

# Beyond this, a float input or weight is garbage (an uninitialised buffer, a unit mix-up):
# int8 quantization of such a range leaves every ordinary value at zero. Preprocessed inputs
# are within a few units of 0 and raw pixels below 256.
MAX_ABS = 1e6


def _where(arr: np.ndarray, mask: np.ndarray) -> tuple[tuple[int, ...], int]:
    """The index of the first True in ``mask`` and how many are True."""
    first = tuple(int(i) for i in np.unravel_index(int(np.argmax(mask)), mask.shape))
    return first, int(np.count_nonzero(mask))


def _index_text(index: tuple[int, ...], sample_axis: bool) -> str:
    if sample_axis and len(index) > 1:
        return f"sample {index[0]}, index {index}"
    return f"index {index}"


def check_finite(arr: np.ndarray, source: str, error: type[SqzError], *, fix: str,
                 sample_axis: bool = True, max_abs: float = MAX_ABS) -> np.ndarray:
    """Refuses NaN, inf and values beyond ``max_abs`` in a float array (``error`` names the
    exit code: the caller knows whether the array is calibration, inputs or weights)."""
    if not np.issubdtype(arr.dtype, np.floating):
        return arr
    with np.errstate(invalid="ignore", over="ignore"):
        nan = np.isnan(arr)
        if nan.any():
            idx, count = _where(arr, nan)
            raise error(f"{source}: NaN at {_index_text(idx, sample_axis)} ({count:,} NaN "
                        f"value{'s' if count != 1 else ''} in all); {fix}")
        inf = np.isinf(arr)
        if inf.any():
            idx, count = _where(arr, inf)
            raise error(f"{source}: {'+' if arr[idx] > 0 else '-'}inf at "
                        f"{_index_text(idx, sample_axis)} ({count:,} infinite "
                        f"value{'s' if count != 1 else ''} in all); {fix}")
        big = np.abs(arr) > max_abs
        if big.any():
            idx, count = _where(arr, big)
            raise error(f"{source}: value {float(arr[idx]):.6g} at "
                        f"{_index_text(idx, sample_axis)} is beyond +-{max_abs:g} ({count:,} "
                        f"such value{'s' if count != 1 else ''}); {fix}")
    return arr


def load_npy(path: Path, error: type[SqzError], what: str) -> np.ndarray:
    """``np.load`` of one .npy array, with every way it fails as ``error`` naming ``what``."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise error(f"{what} {path}: not a readable .npy array ({exc}); save it with "
                    "numpy.save") from None
    if not isinstance(arr, np.ndarray):  # an .npz archive given where one array belongs
        raise error(f"{what} {path}: an .npz archive of several arrays, not one .npy array; "
                    "save the array with numpy.save")
    return arr


CALIB_FIX = ("calibration data must be finite floats preprocessed exactly as for the float "
             "model: fix or drop those samples")
INPUTS_FIX = ("inputs must be finite floats preprocessed as for the model (or int8): fix or "
              "drop those samples")
WEIGHTS_FIX = ("the weights are damaged or come from a diverged training run: save them again "
               "from a model that trains normally")


def calibration(arr: np.ndarray, source: str) -> np.ndarray:
    from ..errors import CalibrationError

    if not np.issubdtype(arr.dtype, np.floating):
        raise CalibrationError(f"{source}: calibration data is {arr.dtype}; give float inputs "
                               "preprocessed exactly as for the float model")
    return check_finite(arr, source, CalibrationError, fix=CALIB_FIX)


def validation_inputs(arr: np.ndarray, source: str) -> np.ndarray:
    from ..errors import InputFileError

    if arr.dtype == np.int8:
        return arr
    if not np.issubdtype(arr.dtype, np.floating):
        raise InputFileError(f"{source}: inputs must be int8 (already quantized) or float "
                             f"(preprocessed), not {arr.dtype}; save them as float32 or int8")
    return check_finite(arr, source, InputFileError, fix=INPUTS_FIX)


def weights_npz(path: Path) -> None:
    """Checks every array of a weights .npz (only the values: the key and shape checks that
    need the model are in models/weights.py). Unreadable archives are left to that loader,
    which words them."""
    import zipfile

    from ..errors import InputFileError

    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return
    if not isinstance(data, np.lib.npyio.NpzFile):
        return
    with data:
        for key in data.files:
            try:
                arr = data[key]
            except (OSError, ValueError, EOFError, zipfile.BadZipFile):
                return
            check_finite(arr, f"weights file {path}, key {key!r}", InputFileError,
                         fix=WEIGHTS_FIX, sample_axis=False)
