"""A model directory written by sqz-convert, read back as one conversion: the generated code's
SHA-256, the reference .tflite it must match, and the sidecars (preprocessing, classes, the float
model)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from . import atomic
from .errors import InputFileError, ModelMismatchError, UsageError
from .frontend.camera import Camera
from .frontend.preprocess import Preprocessing

_SHA_RE = re.compile(r'#define\s+SQZ_MODEL_SHA256\s+"([0-9a-f]{64})"')


@dataclass
class ModelDir:
    path: Path
    sha256: str  # from the generated model.h
    name: str
    tflite: bytes
    tflite_path: Path
    meta: dict
    preprocessing: Preprocessing | None
    keras_path: Path | None
    class_names: list[str] | None  # output index -> name (classes.json), when recorded
    camera: Camera | None = None  # camera.json: the model is fed camera frames (--camera)


def load_model_dir(path: Path, tflite: Path | None) -> ModelDir:
    """Reads the files of a conversion. sqz-convert swaps a new conversion in as a whole
    (converter/atomic.py); if that happens while this reads, it reads again, so the files
    always come from one conversion."""

    atomic.recover(path)  # a conversion killed mid-swap (fallback without exchange)
    for _ in range(5):
        before = _dir_identity(path)
        md = _load_model_dir(path, tflite)
        if _dir_identity(path) == before:
            return md
    return md


def _dir_identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _load_model_dir(path: Path, tflite: Path | None) -> ModelDir:
    if not path.is_dir():
        raise InputFileError(f"{path}: no such directory; give the --out directory of "
                             "sqz-convert with --model")
    header = path / "model.h"
    if not header.is_file():
        raise InputFileError(f"{path}: no model.h here; is this a directory written by "
                             "sqz-convert?")
    m = _SHA_RE.search(header.read_text(errors="replace"))
    if not m:
        raise InputFileError(f"{header}: no SQZ_MODEL_SHA256; regenerate it with sqz-convert")
    tpath = tflite or path / "model.tflite"
    if not tpath.is_file():
        raise InputFileError(f"{tpath}: reference model not found; give it with --tflite")
    buf = tpath.read_bytes()
    actual = hashlib.sha256(buf).hexdigest()
    if actual != m.group(1):
        raise ModelMismatchError(
            f"the generated code in {path} was made from a model with SHA-256 {m.group(1)}, "
            f"but {tpath} has SHA-256 {actual}. Validate against the .tflite it was converted "
            "from, or run sqz-convert again")
    meta_p = path / "sqz.json"
    meta = json.loads(meta_p.read_text()) if meta_p.is_file() else {}
    pre_p = path / "preprocess.json"
    pre = Preprocessing.from_dict(json.loads(pre_p.read_text())) if pre_p.is_file() else None
    name_m = re.search(r'#define\s+SQZ_MODEL_NAME\s+"([^"]*)"', header.read_text())
    keras = path / "float_model.keras"
    cls_p = path / "classes.json"
    classes = json.loads(cls_p.read_text()) if cls_p.is_file() else None
    cam_p = path / "camera.json"
    camera = None
    if cam_p.is_file():
        try:
            camera = Camera.from_dict(json.loads(cam_p.read_text()))
        except (ValueError, UsageError) as exc:
            raise InputFileError(f"{cam_p}: not a camera description written by sqz-convert "
                                 f"({exc}); convert again") from None
    return ModelDir(path=path, sha256=m.group(1), name=name_m.group(1) if name_m else "",
                    tflite=buf, tflite_path=tpath, meta=meta, preprocessing=pre,
                    keras_path=keras if keras.is_file() else None, class_names=classes,
                    camera=camera)
