"""sqz-convert --export DIR: the model and sqz's runtime as libraries for the user's firmware.

Two libraries, each serving four build systems at once (PlatformIO: library.json; Arduino:
library.properties; ESP-IDF: a component; plain CMake: add_subdirectory):

* DIR, the model library NAME: the model's code and data under the library's own names (every
  global symbol, macro, include guard and file starts with NAME, e.g. sqz_shapes_run(),
  SQZ_SHAPES_ARENA_BYTES, src/sqz_shapes_model.c), its C API (src/NAME.h), a sample image, the
  protocol server of sqz-validate bound to this model, and examples;
* DIR/../sqz_runtime, the runtime: sqz's kernels, executor and frame codec, copied verbatim
  from firmware/, written once and shared by every model exported beside it, so several models
  live in one firmware with one runtime. It holds every portable kernel and the variants of
  every architecture its models were converted for; a static library links only what is used.

Every file is rendered from templates/export/ or copied verbatim from firmware/; Python only
prepares the data. The model's code is the conversion's own schedule rendered again with the
library's symbol prefix (convert.Conversion.render), so it is the code sqz-validate checked.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, arch, atomic, targets
from .device.build import runtime_sources
from .errors import InputFileError, ModelError, UsageError
from .frontend import camera, tflite_edit, tflite_reader
from .frontend.preprocess import (
    Preprocessing,
    load_image_folder,
    load_pixels,
    normalize,
    quantize_input,
)
from .ir.quantmath import quantize_multiplier, round_half_away
from .paths import FIRMWARE, require

FORMAT = 2  # of the exported layout, recorded in sqz_export.json (2: model + shared runtime)
MANIFEST = "sqz_export.json"
RUNTIME = "sqz_runtime"  # the runtime library's name and folder, beside every model library
DEFAULT_VERSION = "1.0.0"
DEFAULT_AUTHOR = "sqz-convert"
# sqz's PyPI distribution (the name "sqz" there belongs to an unrelated project).
HOMEPAGE = "https://pypi.org/project/sqz-mcu/"
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
# A model library's symbols are NAME_<something>; the runtime's are sqz_<word>_...: a NAME made
# of sqz_ and one of these words could collide with them (tests/test_export.py checks the list
# against the runtime's symbols).
RESERVED_WORDS = frozenset({
    "add", "app", "arch", "armv7em", "avg", "camera", "check", "clamp", "concat", "conv", "crc32",
    "depthwise", "dims", "exact", "exec", "fc", "feed", "frame", "fully", "load", "mac", "max",
    "mean", "min", "model", "mps2", "node",
    "packed", "pair", "per", "pie", "pool", "port", "proto", "requantize", "reset", "rounding",
    "row", "rows", "run", "runtime", "s3", "sat", "segment", "softmax", "status", "sxtb16",
    "target", "tensor", "trailing", "validation", "window"})
# Semantic versioning without build metadata, which not every registry accepts.
VERSION_RE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$")
ROW = 24  # values per line in generated arrays
FRAME_SEED = 0  # of the synthetic camera frame a camera model's examples classify

# ESP-IDF's name for the chips sqz has profiles for (keyed by profile name).
IDF_TARGETS = {"esp32s3": "esp32s3", "esp32": "esp32", "esp32s3-qemu": "esp32s3"}
# Where each profile's library is built and tested, for the manifests' board lists: the Arduino
# core architecture (None: no Arduino core runs the profile's chip, and no library.properties is
# written) and the PlatformIO platforms. Not "*": an int8 SqueezeNet does not fit an AVR.
PLATFORMS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "esp32s3": ("esp32", ("espressif32",)),
    "esp32": ("esp32", ("espressif32",)),
    "esp32s3-qemu": ("esp32", ("espressif32", "sqz-qemu")),
    "nucleo_f767zi": ("stm32", ("ststm32",)),
    "mps2-an386": (None, ("sqz-qemu",)),
    "host": (None, ("native",)),
}
# The PlatformIO example's env for boards that have one in the checkout's platformio.ini
# (tests/test_export.py checks that the two agree).
PIO_BOARDS: dict[str, dict[str, Any]] = {
    "esp32s3": {"platform": "espressif32", "board": "esp32-s3-devkitc-1", "options": [
        ("board_build.arduino.memory_type", "qio_opi"),
        ("board_build.partitions", "default_8MB.csv"),
        ("board_upload.flash_size", "8MB"),
        ("build_flags", "-DBOARD_HAS_PSRAM -DARDUINO_USB_MODE=1 -DARDUINO_USB_CDC_ON_BOOT=1")]},
    "esp32": {"platform": "espressif32", "board": "esp32dev", "options": [
        ("build_flags", "-DBOARD_HAS_PSRAM")]},
    "nucleo_f767zi": {"platform": "ststm32", "board": "nucleo_f767zi", "options": []},
}
# Board ports that are complete Arduino sketches: shipped as examples/sqz_validate.
ARDUINO_PORTS = ("esp32_arduino", "stm32_arduino")
# The emulated boards: their PlatformIO example is sqz's bare-metal validation firmware built
# from the library with sqz's local platform (firmware/tools/pio_qemu, shipped with it).
QEMU_PORTS = {"mps2_an386": "mps2-an386", "esp32s3_qemu": "esp32s3-qemu"}
PIO_PLATFORM = FIRMWARE / "tools" / "pio_qemu"


@dataclass(frozen=True)
class Sample:
    """The input the examples classify: camera pixels (uint8, H x W x C, RGB or gray) when
    the model's preprocessing is known, else the int8 model input itself."""

    data: np.ndarray
    pixels: bool
    description: str


@dataclass(frozen=True)
class Authors:
    """The manifests' people and links (--export-author and friends)."""

    author: str = DEFAULT_AUTHOR
    maintainer: str | None = None  # default: the author
    url: str = HOMEPAGE
    license: str | None = None  # an SPDX identifier, or none


@dataclass(frozen=True)
class Exported:
    path: Path
    name: str
    version: str
    files: tuple[str, ...]
    expected_class: int
    runtime: Path


def library_name(model_name: str) -> str:
    """sqz_<model>, reduced to what every build system accepts: [a-z0-9_], letter first."""
    stem = re.sub(r"[^a-z0-9]+", "_", model_name.lower()).strip("_") or "model"
    if not stem[0].isalpha():
        stem = f"m{stem}"
    name = f"sqz_{stem}"[:48]
    # sqz_model, sqz_run...: the runtime's own words (a model file named model.tflite).
    return name if _name_problem(name) is None else f"{stem}_lib"[:48]


def _name_problem(name: str) -> str | None:
    if not NAME_RE.match(name):
        return ("use lower-case letters, digits and '_', starting with a letter (at most 48), "
                "e.g. sqz_shapes")
    parts = name.split("_")
    if name == RUNTIME or name == "sqz" or (parts[0] == "sqz" and len(parts) > 1
                                             and parts[1] in RESERVED_WORDS):
        return (f"the names sqz, {RUNTIME} and sqz_<word> for the runtime's own words "
                f"({', '.join(sorted(RESERVED_WORDS))}) are taken by sqz's runtime; e.g. "
                "sqz_shapes or my_model")
    return None


_TEXT_RE = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")


def check_options(dest: Path, *, name: str | None, version: str, out_dir: Path | None = None,
                  image: str | None = None, authors: Authors | None = None) -> None:
    """Everything about --export that can be wrong, checked before any conversion work."""
    if name is not None and (problem := _name_problem(name)) is not None:
        raise UsageError(f"--export-name '{name}': {problem}")
    if not VERSION_RE.match(version):
        raise UsageError(f"--export-version '{version}': give a semantic version such as "
                         "1.0.0 or 1.2.0-rc1")
    authors = authors or Authors()
    for option, value in (("--export-author", authors.author),
                          ("--export-maintainer", authors.maintainer),
                          ("--export-url", authors.url), ("--export-license", authors.license)):
        if value is not None and not _TEXT_RE.match(value):
            raise UsageError(f"{option} {value!r}: give one line of text (1 to 200 characters)")
    if not re.match(r"^https?://\S+$", authors.url):
        raise UsageError(f"--export-url '{authors.url}': give an http:// or https:// address")
    if authors.license is not None and not re.match(r"^[A-Za-z0-9.+-]+( (AND|OR|WITH) "
                                                    r"[A-Za-z0-9.+-]+)*$", authors.license):
        raise UsageError(f"--export-license '{authors.license}': give an SPDX identifier such "
                         "as MIT or Apache-2.0")
    if image is not None and not Path(image).is_file():
        raise InputFileError(f"--export-image {image}: no such image file")
    dest = Path(dest)
    runtime = runtime_dir(dest)
    if out_dir is not None:
        b = Path(out_dir).resolve()
        for path in (dest, runtime):
            a = path.resolve()
            if a == b or a.is_relative_to(b) or b.is_relative_to(a):
                raise UsageError(f"--export {dest} and --out {out_dir} overlap (the library, "
                                 f"and its runtime in {runtime}); the libraries and the "
                                 "conversion output need separate directories")
    if dest.resolve() == runtime.resolve() or dest.name == RUNTIME:
        raise UsageError(f"--export {dest}: {RUNTIME} is the shared runtime's folder beside "
                         "the model library; give the model library's own folder, e.g. "
                         "lib/sqz_shapes")
    check_destination(dest)
    check_destination(runtime, what=f"--export's runtime folder {runtime}")


def runtime_dir(dest: Path) -> Path:
    """Where the runtime a model library at `dest` uses lives: beside it."""
    return Path(dest).absolute().parent / RUNTIME


def check_destination(dest: Path, what: str | None = None) -> None:
    """An existing --export directory is replaced only when sqz wrote it: never a user's own
    folder that happens to have the name."""
    what = what or f"--export {dest}"
    if not dest.exists():
        return
    if not dest.is_dir():
        raise InputFileError(f"{what} exists and is not a directory; choose another")
    if any(dest.iterdir()) and not (dest / MANIFEST).is_file():
        raise InputFileError(f"{what} exists and is not a library exported by sqz (no "
                             f"{MANIFEST}); sqz replaces only its own exports: choose a new "
                             "directory or remove this one")


# --- the model ----------------------------------------------------------------------------

def _define(text: str, name: str, path: Path, pattern: str = r"(\S+)") -> str:
    m = re.search(rf"#define\s+{name}\s+{pattern}", text)
    if m is None:
        raise InputFileError(f"{path} has no {name}: it was generated by an older sqz; convert "
                             "the model again")
    return m.group(1)


def _fixed_point(real: float, what: str) -> dict[str, int]:
    """`real` as multiplier * 2**-shift with a 31-bit multiplier and shift in 1..62, so that
    C computes x * real with one 64-bit product and a rounding shift."""
    m, e = quantize_multiplier(real)
    shift = 31 - e
    if shift < 1:
        raise ModelError(f"the {what} scale {real!r} is too large for the Q16.16 helpers")
    if shift > 62:
        m, shift = round_half_away(m / 2.0 ** (shift - 62)), 62
    return {"multiplier": int(m), "shift": int(shift)}


def _tensor(graph, index: int) -> tuple[list[int], float, int]:
    t = graph.tensor(index)
    if t.quant is None:
        raise ModelError(f"tensor {t.name} has no quantization; sqz exports int8 models only")
    scale, zp = t.quant.single()
    return list(t.shape), float(scale), int(zp)


def _model_context(model_dir: Path) -> tuple[dict[str, Any], Any]:
    from .modeldir import load_model_dir

    md = load_model_dir(model_dir, None)
    header = (model_dir / "model.h").read_text(errors="replace")
    target_h = model_dir / "sqz_target.h"
    target_text = require(target_h).read_text(errors="replace")
    target = targets.load(_define(target_text, "SQZ_TARGET_NAME", target_h, r'"([^"]*)"'))
    graph = tflite_reader.read_model_bytes(tflite_edit.strip_float_edges(md.tflite),
                                           source=md.tflite_path.name)
    in_shape, in_scale, in_zp = _tensor(graph, graph.inputs[0])
    out_shape, out_scale, out_zp = _tensor(graph, graph.outputs[0])
    if len(in_shape) != 4 or in_shape[0] != 1:
        raise ModelError(f"{md.tflite_path}: input shape {in_shape} is not one NHWC image")
    classes = int(np.prod(out_shape[1:]))
    model_h = model_dir / "model.h"
    frame_format = int(_define(header, "SQZ_MODEL_FRAME_FORMAT", model_h, r"(\d+)"))
    frame = None
    if frame_format:  # 1 + the format's index in camera.FORMATS (0: no camera input)
        if md.camera is None or md.preprocessing is None:
            raise InputFileError(f"{model_dir}: model.h says the input is made from camera "
                                 "frames but camera.json or preprocess.json is missing; "
                                 "convert the model again")
        frame = {"format": frame_format, "format_name": md.camera.format,
                 "width": int(_define(header, "SQZ_MODEL_FRAME_WIDTH", model_h, r"(\d+)")),
                 "height": int(_define(header, "SQZ_MODEL_FRAME_HEIGHT", model_h, r"(\d+)")),
                 "row_bytes": int(_define(header, "SQZ_MODEL_FRAME_ROW_BYTES", model_h,
                                          r"(\d+)")),
                 "bytes": int(_define(header, "SQZ_MODEL_FRAME_BYTES", model_h, r"(\d+)")),
                 "ring_rows": int(_define(header, "SQZ_MODEL_FRAME_RING_ROWS", model_h,
                                          r"(\d+)")),
                 "resize": md.camera.resize, "fit": md.camera.fit,
                 "spec": str(md.camera)}
        if frame["format_name"] != camera.FORMATS[frame_format - 1] or (
                frame["width"], frame["height"]) != (md.camera.width, md.camera.height):
            raise InputFileError(f"{model_h} and {model_dir / 'camera.json'} describe different "
                                 "camera frames; convert the model again")
    model = {
        "name": md.name,
        "sha256": md.sha256,
        "arena_bytes": int(_define(header, "SQZ_MODEL_ARENA_BYTES", model_h, r"(\d+)")),
        "arena_in_psram": _define(target_text, "SQZ_ARENA_IN_PSRAM", target_h) == "1",
        "input": {"height": in_shape[1], "width": in_shape[2], "channels": in_shape[3],
                  "bytes": int(np.prod(in_shape)), "scale": repr(in_scale), "scale_f": in_scale,
                  "zero_point": in_zp,
                  "q16": _fixed_point(1.0 / (in_scale * 65536.0), "input"),
                  # A ring (--input ring): the API takes the input row by row and has no
                  # input buffer; else it is stored whole in the arena (--input whole).
                  "ring": _define(header, "SQZ_MODEL_INPUT_RING", model_h, r"([01])") == "1",
                  "row_bytes": int(_define(header, "SQZ_MODEL_INPUT_ROW_BYTES", model_h,
                                           r"(\d+)")),
                  },
        # The camera frame the input is made from on the device (--camera), or None.
        "frame": frame,
        "output": {"classes": classes, "scale": repr(out_scale), "scale_f": out_scale,
                   "zero_point": out_zp,
                   "softmax": tflite_edit.final_softmax_input(md.tflite) is not None,
                   "q16": _fixed_point(out_scale * 65536.0, "output")},
    }
    return {"model": model, "target": target, "md": md}, md


# --- the sample and the pixel tables -------------------------------------------------------

def _gradient(h: int, w: int, c: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    chans = [((xx * (k + 1) + yy * (c - k)) * 255) // max((w - 1) * (k + 1) + (h - 1) * (c - k), 1)
             for k in range(c)]
    return np.stack(chans, axis=-1).astype(np.uint8)


def _preprocessing_fits(pre: Preprocessing | None, shape: tuple[int, int, int]) -> bool:
    return pre is not None and tuple(pre.input_shape) == tuple(shape)


def pick_sample(image: str | None, calib: str | None, pre: Preprocessing | None,
                input_shape: tuple[int, int, int]) -> Sample:
    """--export-image, else the first image of an image-folder --calib, else a gradient."""
    shape = tuple(int(v) for v in input_shape)
    fits = _preprocessing_fits(pre, shape)
    if image is not None:
        if not fits:
            raise UsageError("--export-image needs the model's preprocessing to turn the image "
                             "into its input; give --preprocess simple, imagenet or FILE.json")
        return Sample(load_pixels(image, pre), True,
                      f"{Path(image).name}, resized as the model's preprocessing does")
    if calib is not None and Path(calib).is_dir() and fits:
        _, files = load_image_folder(calib, pre, limit=1)
        return Sample(load_pixels(files[0], pre), True,
                      f"{files[0].relative_to(calib).as_posix()} from the calibration images")
    pixels = _gradient(*shape)
    if fits:
        return Sample(pixels, True, "a synthetic colour gradient")
    return Sample((pixels.astype(np.int16) - 128).astype(np.int8), False,
                  "a synthetic gradient, already quantized")


def pixel_tables(pre: Preprocessing, scale: float, zero_point: int) -> tuple[np.ndarray, list[int]]:
    """(int8 table[channel][value], source channel of each model channel): the exact int8
    input code of every pixel value, through sqz's own preprocessing and input quantization."""
    c = pre.channels
    ramp = np.repeat(np.arange(256, dtype=np.uint8)[:, None, None], c, axis=2)
    q = quantize_input(normalize(ramp, pre), scale, zero_point)  # (256, 1, C)
    source = [2 - k for k in range(c)] if (c == 3 and pre.channel_order == "bgr") else list(
        range(c))
    return np.ascontiguousarray(q[:, 0, :].T), source


def quantize_pixels(pixels: np.ndarray, tables: np.ndarray, source: list[int]) -> np.ndarray:
    """What the exported sqz_model_quantize_pixels() computes, in numpy."""
    return np.stack([tables[k][pixels[..., s]] for k, s in enumerate(source)], axis=-1)


def _rows(values) -> list[list[int]]:
    flat = [int(v) for v in np.asarray(values).reshape(-1)]
    return [flat[i:i + ROW] for i in range(0, len(flat), ROW)]


# --- files ------------------------------------------------------------------------------------

def runtime_path(src: Path) -> str:
    """Where a firmware file goes in the runtime library. firmware/include/ becomes src/ (so
    "sqz/runtime.h" resolves) and firmware/src/ keeps its layout under src/sqz_runtime/
    (runtime/, arch/<arch>/, app/frame.c), so relative includes between kernels and their
    variants still resolve."""
    parts = src.relative_to(FIRMWARE).parts
    if parts[0] == "include":
        return "/".join(("src", *parts[1:]))
    if parts[0] == "src":
        return "/".join(("src", "sqz_runtime", *parts[1:]))
    raise ValueError(f"{src} is not part of the exported runtime")


def _app_file(name: str) -> Path:
    return require(FIRMWARE / "src" / "app" / name)


def _runtime_files(archs: list[str]) -> list[Path]:
    """Every portable kernel, the variants of `archs`, their headers, and the frame codec of
    the protocol server (model-independent; each model library has its own server)."""
    files = [*runtime_sources(), *sorted((FIRMWARE / "src" / "runtime").glob("*.h")),
             *sorted(require(FIRMWARE / "include" / "sqz").glob("*.h")),
             _app_file("frame.c"), _app_file("frame.h")]
    for a in archs:
        files += [*arch.sources(a), *arch.headers(a)]
    return files


class ModelCode:
    """The generated model rendered again under another symbol prefix: from the conversion
    in memory (sqz-convert --export), or from a model directory, converted again with the
    options its sqz.json recorded and checked to give exactly the files it holds."""

    def __init__(self, model_dir: Path, conv: Any | None, target: targets.Target,
                 tflite: bytes) -> None:
        self.render = conv.render if conv is not None else self._reconverted(
            model_dir, target, tflite)

    @staticmethod
    def _reconverted(model_dir: Path, target: targets.Target, tflite: bytes):
        from . import codegen, convert, passes
        from .ir.lower import lower
        from .modeldir import load_model_dir

        meta_path = model_dir / "sqz.json"
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as e:
            raise InputFileError(f"{meta_path}: cannot read it ({e}); convert the model "
                                 "again") from None
        need = ("arch", "packing", "stream_option", "model_name", "source_name")
        missing = [k for k in need if k not in meta]
        if missing:
            raise InputFileError(f"{meta_path} was written by an older sqz (it lacks "
                                 f"{', '.join(missing)}); convert the model again, with "
                                 "--export DIR to export it in the same run")
        target_h = model_dir / "sqz_target.h"
        in_psram = _define(target_h.read_text(errors="replace"), "SQZ_ARENA_IN_PSRAM",
                           target_h) == "1"
        graph = tflite_reader.read_model_bytes(tflite, source=meta["source_name"])
        lowered = lower(graph)
        # sqz.json records --input since the input ring came; before, it was stored whole.
        input_mode = meta.get("input", "whole")
        md = load_model_dir(model_dir, None)  # camera.json and preprocess.json (--camera)
        cam = convert.camera_device_params(lowered, md.camera, md.preprocessing, input_mode)
        lw, layout = passes.run_passes(lowered, arch=meta["arch"],
                                       stream_mode=meta["stream_option"], in_place=True,
                                       input_mode=input_mode, camera=cam,
                                       packing_mode=meta["packing"],
                                       scratch=meta.get("scratch", "full"),
                                       packing_room=lambda _: int(meta.get("packing_room", 0)))

        def render(prefix: str) -> dict[str, str]:
            return convert.render_files(lw, layout, target, arch=meta["arch"],
                                        model_name=meta["model_name"],
                                        source_name=meta["source_name"],
                                        arena_in_psram=in_psram, prefix=prefix)

        for fname, text in render(codegen.DEFAULT_PREFIX).items():
            if (model_dir / fname).read_text(errors="replace") != text:
                raise InputFileError(f"{model_dir / fname} is not what its model and sqz.json "
                                     "convert to with this sqz (another sqz version, or "
                                     "edited); convert again, with --export DIR")
        return render


def export_library(model_dir: Path, dest: Path, *, name: str | None = None,
                   version: str = DEFAULT_VERSION, sample: Sample | None = None,
                   conv: Any | None = None, authors: Authors | None = None) -> Exported:
    """Write the library for the model in `model_dir` (a directory written by sqz-convert) to
    `dest`, and the runtime it uses beside it (runtime_dir), replacing earlier exports there.
    `conv` is that directory's conversion (convert.Conversion) when the caller has it in
    memory; without it the model is converted again from the directory (ModelCode). Runs the
    host reference once on the sample, so the examples can print what the host computes next
    to what the board computes."""
    from . import codegen
    from .frontend import reference

    model_dir, dest = Path(model_dir), Path(dest)
    authors = authors or Authors()
    info, md = _model_context(model_dir)
    model, target = info["model"], info["target"]
    name = name or library_name(md.name)
    check_options(dest, name=name, version=version, authors=authors)
    inp = model["input"]
    shape = (inp["height"], inp["width"], inp["channels"])
    frame = model["frame"]
    pre = md.preprocessing if _preprocessing_fits(md.preprocessing, shape) else None
    if frame is not None:
        # A camera model takes frames only: its examples make a synthetic frame row by row on
        # the device (sqz_camera_gradient_byte), and the host runs the reference on what the
        # device makes of it (camera.mirror, bit-exact with the device).
        if sample is not None:
            raise UsageError("a camera model's examples classify a synthetic "
                             f"{frame['format_name']} frame made on the device: give no sample")
        params = camera.camera_params(md.camera, md.preprocessing, inp["scale_f"],
                                      inp["zero_point"], *shape)
        sample = Sample(camera.mirror(camera.frame_gradient(md.camera, FRAME_SEED), params),
                        False, f"the synthetic {frame['format_name']} gradient frame "
                        f"{frame['width']}x{frame['height']} (seed {FRAME_SEED}), made on "
                        "the device row by row")
        pre = None  # no pixel helper: the library takes frames, not the model's input
    if sample is None:
        sample = pick_sample(None, None, pre, shape)
    if sample.pixels and pre is None:
        raise UsageError("a pixel sample needs the model's preprocessing (preprocess.json)")

    pixels_ctx = None
    if pre is not None:
        tables, source = pixel_tables(pre, inp["scale_f"], inp["zero_point"])
        pixels_ctx = {
            "channels": pre.channels,
            "tables": [_rows(t) for t in tables],
            "source_channel": source,
            "layout": "R, G, B bytes" if pre.channels == 3 else "one gray byte",
            "description": (f"{pre.resize_mode} to {pre.size[0]}x{pre.size[1]}, "
                            f"x = (pixel * {pre.scale:.9g} - mean) / std per channel, "
                            f"{pre.channel_order if pre.channels == 3 else 'grayscale'}"),
        }
    if sample.pixels:
        x = quantize_pixels(sample.data, tables, source)
    else:
        x = sample.data
    if x.shape != shape:
        raise UsageError(f"the sample image is {x.shape}, the model takes {shape}")
    ref = reference.run_reference(md.tflite, x[None].astype(np.int8))
    if ref.outputs is not None:
        scores = ref.outputs.reshape(-1)
        expected_class, expected_score = int(np.argmax(scores)), int(scores.max())
    else:  # LiteRT's softmax aborted (see reference.py): no host answer to print
        expected_class, expected_score = -1, 0

    names = md.class_names
    if names is not None and len(names) != model["output"]["classes"]:
        names = None
    arch_name = target.arch
    prefix = f"{name}_"
    sym = codegen.symbols(prefix)
    code = ModelCode(model_dir, conv, target, md.tflite).render(prefix)
    arduino_arch, pio_platforms = PLATFORMS.get(target.name, (None, ()))
    validation_dir = f"src/{name}_validation"
    qemu_board = QEMU_PORTS.get(target.port)
    ctx: dict[str, Any] = {
        "n": name, "N": name.upper(),
        "banner": {"sha256": md.sha256, "tool_version": __version__, "source": md.name,
                   "target": target.name},
        "lib": {
            "name": name, "upper": name.upper(), "version": version,
            "cmake_version": version.split("-")[0],
            "header": f"{name}.h", "sample_header": f"{name}_sample.h",
            "float_header": f"{name}_float.h", "url": authors.url,
            "author": authors.author, "maintainer": authors.maintainer or authors.author,
            "license": authors.license,
            "builtin_arena": not model["arena_in_psram"],
            "description": (f"{md.name}, an int8 SqueezeNet image classifier converted by sqz "
                            f"for {target.name}: the model and a small C API (bit-exact with "
                            "the TFLite reference kernels; sqz's runtime is the library "
                            f"{RUNTIME} beside it)."),
            "sentence": f"The {md.name} image classifier (int8, bit-exact), generated by sqz.",
            "paragraph": (f"{model['output']['classes']} classes from a "
                          f"{inp['height']}x{inp['width']}x{inp['channels']} image; "
                          f"C99, no heap, no float; needs the library {RUNTIME}. Model SHA-256 "
                          + md.sha256[:16] + "."),
            "arduino_arch": arduino_arch, "pio_platforms": list(pio_platforms),
        },
        "runtime": {"name": RUNTIME, "version": __version__},
        "symbols": sym,
        "model": model,
        # Every macro of the generated header, under sqz's default names for the server.
        "model_macros": re.findall(rf"^#define {re.escape(sym['macro'])}MODEL_(\w+) ",
                                   code[sym["header"]], re.M),
        "target": {"name": target.name, "description": target.description, "arch": arch_name,
                   "idf_target": IDF_TARGETS.get(target.name)},
        "pixels": pixels_ctx,
        "classes": {"known": names is not None,
                    "names": names or [str(i) for i in range(model["output"]["classes"])]},
        "sample": {"pixels": sample.pixels, "description": sample.description,
                   "frame": frame is not None, "seed": FRAME_SEED,
                   "count": int(x.size), "rows": [] if frame is not None else _rows(sample.data),
                   "expected_class": expected_class, "expected_score": expected_score},
        "sources": {"library": [f"src/{name}.c", f"src/{sym['source']}", f"src/{sym['data']}"],
                    "validation": [f"{validation_dir}/app.c"]},
        "pio": ({"env": target.pio_env, **PIO_BOARDS[target.pio_env]}
                if target.pio_env in PIO_BOARDS else None),
        "qemu": None,
        "glue": {"mps2": target.port == "mps2_an386"},
        "examples": {"validate_sketch": target.port in ARDUINO_PORTS},
    }

    files: dict[str, bytes] = {}
    for generated, text in code.items():
        files[f"src/{generated}"] = text.encode()
    for app in ("app.c", "frame.h", "protocol.h"):  # verbatim; the shims below bind them
        files[f"{validation_dir}/{app}"] = _app_file(app).read_bytes()
    rendered = {
        f"src/{name}.h": "export/api.h.j2",
        f"src/{name}.c": "export/api.c.j2",
        f"src/{name}_sample.h": "export/sample.h.j2",
        f"src/{name}_float.h": "export/float.h.j2",
        f"{validation_dir}/model.h": "export/validation_model.h.j2",
        f"{validation_dir}/sqz_target.h": "export/validation_target.h.j2",
        "CMakeLists.txt": "export/CMakeLists.txt.j2",
        "library.json": "export/library.json.j2",
        "idf_component.yml": "export/idf_component.yml.j2",
        "README.md": "export/README.md.j2",
        "examples/esp_idf/CMakeLists.txt": "export/examples/esp_idf_CMakeLists.txt.j2",
        "examples/esp_idf/main/CMakeLists.txt": "export/examples/esp_idf_main_CMakeLists.txt.j2",
        "examples/esp_idf/main/main.c": "export/examples/esp_idf_main.c.j2",
        "examples/cmake/CMakeLists.txt": "export/examples/cmake_CMakeLists.txt.j2",
        "examples/cmake/main.c": "export/examples/cmake_main.c.j2",
        "examples/cmake/clock_std.c": "export/examples/cmake_clock_std.c.j2",
    }
    if arduino_arch is not None:
        rendered["library.properties"] = "export/library.properties.j2"
        rendered["examples/classify/classify.ino"] = "export/examples/classify.ino.j2"
    if qemu_board is not None:
        # sqz's validation firmware for the emulated board, built from the library by
        # PlatformIO with sqz's local platform (shipped in the example): `pio run -t upload`
        # starts QEMU, then sqz-validate --port checks the library bit for bit.
        port_dir = FIRMWARE / "ports" / target.port
        port_files = sorted(p for p in require(port_dir).iterdir()
                            if p.suffix in (".c", ".S"))
        script = next(p for p in port_dir.iterdir() if p.suffix == ".ld")
        base = "examples/platformio"
        for p in port_files:
            files[f"{base}/src/{p.name}"] = p.read_bytes()
        files[f"{base}/{script.name}"] = script.read_bytes()
        for p in sorted(require(PIO_PLATFORM).rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts:
                files[f"{base}/platform/{p.relative_to(PIO_PLATFORM).as_posix()}"] = (
                    p.read_bytes())
        rendered[f"{base}/src/model.h"] = "export/validation_model.h.j2"
        rendered[f"{base}/src/sqz_target.h"] = "export/validation_target.h.j2"
        rendered[f"{base}/platformio.ini"] = "export/examples/platformio_qemu.ini.j2"
        ctx["qemu"] = {"board": qemu_board, "ldscript": script.name,
                       "sources": [p.name for p in port_files]}
        ctx["pio_example_files"] = ["platformio.ini", script.name,
                                    *(f"src/{p.name}" for p in port_files), "src/model.h",
                                    "src/sqz_target.h"]
    else:
        rendered["examples/platformio/platformio.ini"] = "export/examples/platformio.ini.j2"
        rendered["examples/platformio/src/main.cpp"] = "export/examples/classify.ino.j2"
        ctx["pio_example_files"] = ["platformio.ini", "src/main.cpp"]
    if model["arena_in_psram"]:
        rendered["examples/esp_idf/sdkconfig.defaults"] = "export/examples/sdkconfig.defaults.j2"
    if ctx["glue"]["mps2"]:
        rendered["examples/cmake/mps2_an386/startup.c"] = "export/examples/mps2_startup.c.j2"
        rendered["examples/cmake/mps2_an386/toolchain.cmake"] = (
            "export/examples/mps2_toolchain.cmake.j2")
        files["examples/cmake/mps2_an386/mps2_an386.ld"] = require(
            FIRMWARE / "ports" / "mps2_an386" / "mps2_an386.ld").read_bytes()
    if ctx["examples"]["validate_sketch"]:
        files["examples/sqz_validate/sqz_validate.ino"] = require(
            FIRMWARE / "ports" / target.port / "port.cpp").read_bytes()
        rendered["examples/sqz_validate/model.h"] = "export/validation_model.h.j2"
        rendered["examples/sqz_validate/sqz_target.h"] = "export/validation_target.h.j2"

    env = codegen.environment()
    for path, template in rendered.items():
        files[path] = env.get_template(template).render(**ctx).encode()
    # The reference and the report, so sqz-validate --model can point here.
    extras = {"model.h": model_dir / "model.h", "model.tflite": md.tflite_path}
    for optional in ("sqz.json", "preprocess.json", "camera.json", "classes.json", "report.md",
                     "report.json"):
        if (model_dir / optional).is_file():
            extras[optional] = model_dir / optional
    for fname, path in extras.items():
        files[f"extras/sqz/{fname}"] = path.read_bytes()

    manifest = {
        "format": FORMAT, "library": name, "version": version, "generator": f"sqz {__version__}",
        "model": md.name, "model_sha256": md.sha256, "target": target.name, "arch": arch_name,
        "runtime": RUNTIME,
        "files": {p: hashlib.sha256(files[p]).hexdigest() for p in sorted(files)},
    }
    files[MANIFEST] = (json.dumps(manifest, indent=2) + "\n").encode()
    runtime = write_runtime(runtime_dir(dest), name=name, folder=dest.absolute().name,
                            arch_name=arch_name, target_name=target.name, env=env)
    write_tree(dest, files)
    return Exported(path=dest, name=name, version=version, files=tuple(sorted(files)),
                    expected_class=expected_class, runtime=runtime)


def _manifest(path: Path) -> dict | None:
    try:
        data = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_runtime(runtime: Path, *, name: str, folder: str, arch_name: str, target_name: str,
                  env) -> Path:
    """The shared runtime beside a model library: written when missing, extended when a model
    of another architecture joins it, left alone when it already holds what is needed. The
    models it serves are recorded (those whose library is gone are dropped); one written by a
    different runtime is replaced only when no other model uses it."""
    old = _manifest(runtime)
    users: dict[str, dict[str, str]] = {
        name: {"arch": arch_name, "target": target_name, "folder": folder}}
    if old is not None:
        if old.get("library") != RUNTIME:
            raise InputFileError(f"{runtime} holds the export {old.get('library')!r}, not "
                                 f"sqz's runtime; {RUNTIME} is the shared runtime's folder "
                                 "beside a model library: move that export elsewhere")
        for other, use in (old.get("users") or {}).items():
            if other == name or not isinstance(use, dict):
                continue
            lib = _manifest(runtime.parent / str(use.get("folder")))
            if lib is not None and lib.get("library") == other and lib.get("runtime") == RUNTIME:
                users[other] = {k: str(use.get(k)) for k in ("arch", "target", "folder")}
    archs = sorted({u["arch"] for u in users.values()} - {arch.PORTABLE})
    if len(archs) > 1:
        theirs = sorted(u for u, use in users.items() if use["arch"] != arch_name)
        raise UsageError(f"{runtime} serves {', '.join(theirs)}, converted for the "
                         f"{', '.join(a for a in archs if a != arch_name)} kernels, and this "
                         f"model is for {arch_name}: one firmware runs on one CPU. Export it "
                         "into another folder, or convert it for the same board")
    files = _runtime_tree(archs, users, env)
    if old is not None:
        had = old.get("files") or {}
        ours = {p: hashlib.sha256(d).hexdigest() for p, d in files.items() if p != MANIFEST}
        others = sorted(set(users) - {name})
        # The code (src/): the manifests around it name the models and change as they do.
        changed = [p for p in set(had) | set(ours) if p.startswith("src/")
                   and (p not in had or p not in ours or had[p] != ours[p])]
        if changed and others:
            raise InputFileError(
                f"{runtime} is the runtime of {', '.join(others)}, written by "
                f"{old.get('generator')}, and this sqz {__version__} writes a different one "
                f"({sorted(changed)[0]} and {len(changed) - 1} more files differ), which their "
                "code may not match. Export every model again with this sqz, into another "
                f"folder (or remove {runtime} first)")
        if had == ours and old.get("users") == users:
            return runtime
    write_tree(runtime, files, what="--export's runtime")
    return runtime


def _runtime_tree(archs: list[str], users: dict[str, dict[str, str]], env) -> dict[str, bytes]:
    sources = _runtime_files(archs)
    files = {runtime_path(p): p.read_bytes() for p in sources}
    arduino = sorted({a for u in users.values()
                      if (a := PLATFORMS.get(u["target"], (None, ()))[0]) is not None})
    platforms = sorted({p for u in users.values()
                        for p in PLATFORMS.get(u["target"], (None, ()))[1]})
    ctx = {
        "banner": {"tool_version": __version__},
        "runtime": {"name": RUNTIME, "upper": RUNTIME.upper(), "version": __version__,
                    "url": HOMEPAGE, "archs": archs, "users": sorted(users),
                    "arduino_archs": arduino, "pio_platforms": platforms,
                    "sources": sorted(runtime_path(p) for p in sources
                                      if p.suffix in (".c", ".S")),
                    "has_asm": any(p.suffix == ".S" for p in sources)},
    }
    rendered = {"CMakeLists.txt": "export/runtime/CMakeLists.txt.j2",
                "library.json": "export/runtime/library.json.j2",
                "idf_component.yml": "export/runtime/idf_component.yml.j2",
                "README.md": "export/runtime/README.md.j2",
                "src/sqz_runtime.h": "export/runtime/sqz_runtime.h.j2"}
    if arduino:
        rendered["library.properties"] = "export/runtime/library.properties.j2"
    for path, template in rendered.items():
        files[path] = env.get_template(template).render(**ctx).encode()
    manifest = {
        "format": FORMAT, "library": RUNTIME, "version": __version__,
        "generator": f"sqz {__version__}", "archs": archs, "users": users,
        "files": {p: hashlib.sha256(files[p]).hexdigest() for p in sorted(files)},
    }
    files[MANIFEST] = (json.dumps(manifest, indent=2) + "\n").encode()
    return files


def write_tree(dest: Path, files: Mapping[str, bytes], what: str = "--export") -> None:
    """Make `dest` hold exactly `files` (relative path -> bytes): the whole old tree or the
    whole new one, never a mix (converter/atomic.py: staged beside `dest`, swapped in one
    rename, locked against a second writer)."""
    dest = Path(dest)
    known: list[str] = []
    try:  # the export's own manifest lists what sqz wrote: anything else is the user's
        known = list(json.loads((dest / MANIFEST).read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    with atomic.output_directory(dest, what=what, manifest=None, legacy_marker=MANIFEST,
                                 legacy_names=[*known, MANIFEST]) as stage:
        for rel, data in files.items():
            stage.write_bytes(rel, data)
