"""Weights as .npz files in the layout of ``shared/pretrained/squeezenet1_1_imagenet.npz``.

Keys are ``<layer path>/<variable>``, e.g. ``fire2/squeeze1x1/kernel``, where the layer path is
the Keras layer name with the ``_`` after ``fireN`` written as ``/`` (Keras forbids ``/`` in
layer names).  Kernels are in Keras layout (kh, kw, in, out).  Files may store float16; values are
cast to the variable's dtype (float32) on load.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import atomic
from ..errors import InputFileError, ModelError

if TYPE_CHECKING:
    import keras

_FIRE_PREFIX = re.compile(r"^(fire\d+)_(.+)$")
# Zip entries carry a timestamp; a fixed one makes saving the same weights byte-identical.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def layer_key_prefix(layer_name: str) -> str:
    """``fire2_squeeze1x1`` -> ``fire2/squeeze1x1``; names without a fire prefix are unchanged."""
    match = _FIRE_PREFIX.match(layer_name)
    return f"{match.group(1)}/{match.group(2)}" if match else layer_name


def _model_variables(model: keras.Model) -> dict[str, tuple[str, object]]:
    """Map every npz key the model expects to (layer name, variable)."""
    expected: dict[str, tuple[str, object]] = {}
    for layer in model.layers:
        for variable in layer.weights:
            key = f"{layer_key_prefix(layer.name)}/{variable.name}"
            expected[key] = (layer.name, variable)
    return expected


def _shape_hint(layer_name: str, model_shape: tuple, file_shape: tuple) -> str:
    if layer_name == "conv10" and model_shape[:-1] == file_shape[:-1]:
        classes = file_shape[-1]
        return f"the file was saved for {classes} classes: build with --classes {classes}"
    if layer_name == "conv1" and len(file_shape) == 4 and model_shape[:2] == file_shape[:2]:
        if model_shape[2] != file_shape[2]:
            return (
                f"the file expects {file_shape[2]}-channel input: build with an input shape "
                f"ending in {file_shape[2]}"
            )
    return (
        "the file was saved from a different architecture: build the same version, bypass and "
        "meta-parameters it was saved from"
    )


def _open_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        raise InputFileError(f"weights file {path} does not exist; check the path")
    if not path.is_file():
        raise InputFileError(f"weights file {path} is not a file; give the path of a .npz file")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        # np.load signals a non-archive through several exception types; the user needs one answer.
        raise InputFileError(
            f"weights file {path} is not a readable .npz archive ({exc}); save weights with "
            "save_weights_npz or numpy.savez"
        ) from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise InputFileError(
            f"weights file {path} holds a single array, not an .npz archive of named arrays; "
            "save weights with save_weights_npz or numpy.savez"
        )
    try:
        with data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputFileError(
            f"weights file {path} is damaged ({exc}); save the weights again"
        ) from None


def load_weights_npz(model: keras.Model, path: str | Path) -> None:
    """Assign every variable of ``model`` from the .npz at ``path``.

    The file must match the model exactly: a variable without a key, a key without a variable
    or a shape difference is an error, because a partial load gives a model that runs but
    predicts garbage.  All checks run before anything is assigned, so on error the model is
    left untouched.
    """
    path = Path(path)
    arrays = _open_npz(path)
    expected = _model_variables(model)

    missing = [key for key in expected if key not in arrays]
    if missing:
        layers = sorted({expected[key][0] for key in missing})
        raise ModelError(
            f"weights file {path} has no values for layer(s) {', '.join(layers)} of model "
            f"{model.name!r} (missing keys: {', '.join(missing[:6])}"
            f"{', ...' if len(missing) > 6 else ''}); the file was saved from a different "
            "architecture: build the same version, bypass and meta-parameters it was saved from"
        )
    extra = [key for key in arrays if key not in expected]
    if extra:
        raise ModelError(
            f"weights file {path} has key(s) {', '.join(extra[:6])}"
            f"{', ...' if len(extra) > 6 else ''} that match no layer of model {model.name!r}; "
            "the file was saved from a different architecture (e.g. with a complex bypass): "
            "build the same version, bypass and meta-parameters it was saved from"
        )

    values = {}
    for key, (layer_name, variable) in expected.items():
        array = arrays[key]
        model_shape, file_shape = tuple(variable.shape), tuple(array.shape)
        if model_shape != file_shape:
            raise ModelError(
                f"weights file {path}: key {key!r} has shape {file_shape} but layer "
                f"{layer_name!r} of model {model.name!r} needs {model_shape}; "
                f"{_shape_hint(layer_name, model_shape, file_shape)}"
            )
        if not np.issubdtype(array.dtype, np.floating):
            raise InputFileError(
                f"weights file {path}: key {key!r} has dtype {array.dtype}, not floating point; "
                "store weights as float32 or float16"
            )
        if not np.all(np.isfinite(array)):
            raise InputFileError(
                f"weights file {path}: key {key!r} (layer {layer_name!r}) contains NaN or "
                "infinity; the model it was saved from diverged, use a different checkpoint"
            )
        values[key] = array.astype(np.dtype(variable.dtype), copy=False)

    for key, (_, variable) in expected.items():
        variable.assign(values[key])


def save_weights_npz(model: keras.Model, path: str | Path) -> None:
    """Write every variable of ``model`` as float32 to ``path`` in the layout above.

    Written exactly at ``path`` (no ``.npz`` appended) with fixed zip timestamps, so saving
    the same weights twice gives byte-identical files.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise InputFileError(
            f"cannot write weights to {path}: directory {path.parent} does not exist; create it "
            "first"
        )
    entries = [
        (key, np.asarray(variable.numpy(), dtype=np.float32))
        for key, (_, variable) in _model_variables(model).items()
    ]
    try:
        with atomic.replacing(path) as tmp, zipfile.ZipFile(tmp, "w",
                                                             compression=zipfile.ZIP_STORED
                                                             ) as archive:
            for key, array in entries:
                info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_EPOCH)
                with archive.open(info, "w", force_zip64=True) as handle:
                    np.lib.format.write_array(handle, array, allow_pickle=False)
    except OSError as exc:
        raise InputFileError(f"cannot write weights to {path}: {exc.strerror or exc}") from None
