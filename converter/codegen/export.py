"""sqz-convert --export DIR: the model and sqz's runtime as a library for the user's firmware.

One directory serves four build systems at once:

* a PlatformIO library (library.json, src/),
* an Arduino library (library.properties, src/, examples/<name>/<name>.ino),
* an ESP-IDF component and a plain CMake library: one CMakeLists.txt that registers itself
  with ESP-IDF (idf_component.yml beside it) or builds a static library for add_subdirectory,

each with a minimal example that classifies a sample image compiled into flash and prints the
label and the time taken. The protocol server of sqz-validate comes along (src/sqz_validation)
so that a product firmware can be validated bit for bit; nothing links it unless it is called.

The export is a function of a model directory written by sqz-convert: the generated model,
the reference .tflite and the board profile it names. Runtime sources are copied verbatim from
firmware/ (the list comes from converter.device.build.model_runtime_sources); every other file is
rendered from templates/export/. Python only prepares the data.
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

from .. import __version__, arch, atomic, targets
from ..device.build import model_runtime_sources
from ..errors import InputFileError, ModelError, UsageError
from ..frontend import tflite_edit, tflite_reader
from ..frontend.preprocess import (
    Preprocessing,
    load_image_folder,
    load_pixels,
    normalize,
    quantize_input,
)
from ..ir.quantmath import quantize_multiplier, round_half_away
from ..paths import FIRMWARE, require

FORMAT = 1  # of the exported layout, recorded in sqz_export.json
MANIFEST = "sqz_export.json"
DEFAULT_VERSION = "1.0.0"
HOMEPAGE = "https://pypi.org/project/sqz/"
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
# Semantic versioning without build metadata, which not every registry accepts.
VERSION_RE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$")
ROW = 24  # values per line in generated arrays

# ESP-IDF's name for the chips sqz has profiles for (keyed by profile name).
IDF_TARGETS = {"esp32s3": "esp32s3", "esp32": "esp32"}
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


@dataclass(frozen=True)
class Sample:
    """The input the examples classify: camera pixels (uint8, H x W x C, RGB or gray) when
    the model's preprocessing is known, else the int8 model input itself."""

    data: np.ndarray
    pixels: bool
    description: str


@dataclass(frozen=True)
class Exported:
    path: Path
    name: str
    version: str
    files: tuple[str, ...]
    expected_class: int


def library_name(model_name: str) -> str:
    """sqz_<model>, reduced to what every build system accepts: [a-z0-9_], letter first."""
    stem = re.sub(r"[^a-z0-9]+", "_", model_name.lower()).strip("_") or "model"
    return f"sqz_{stem}"[:48]


def check_options(dest: Path, *, name: str | None, version: str, out_dir: Path | None = None,
                  image: str | None = None) -> None:
    """Everything about --export that can be wrong, checked before any conversion work."""
    if name is not None and not NAME_RE.match(name):
        raise UsageError(f"--export-name '{name}': use lower-case letters, digits and '_', "
                         "starting with a letter (at most 48), e.g. sqz_shapes")
    if not VERSION_RE.match(version):
        raise UsageError(f"--export-version '{version}': give a semantic version such as "
                         "1.0.0 or 1.2.0-rc1")
    if image is not None and not Path(image).is_file():
        raise InputFileError(f"--export-image {image}: no such image file")
    dest = Path(dest)
    if out_dir is not None:
        a, b = dest.resolve(), Path(out_dir).resolve()
        if a == b or a.is_relative_to(b) or b.is_relative_to(a):
            raise UsageError(f"--export {dest} and --out {out_dir} overlap; the library and the "
                             "conversion output need separate directories")
    check_destination(dest)


def check_destination(dest: Path) -> None:
    """An existing --export directory is replaced only when sqz wrote it: never a user's own
    folder that happens to have the name."""
    if not dest.exists():
        return
    if not dest.is_dir():
        raise InputFileError(f"--export {dest} exists and is not a directory; choose another")
    if any(dest.iterdir()) and not (dest / MANIFEST).is_file():
        raise InputFileError(f"--export {dest} exists and is not a library exported by sqz (no "
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
    from ..modeldir import load_model_dir

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
    model = {
        "name": md.name,
        "sha256": md.sha256,
        "arena_bytes": int(_define(header, "SQZ_MODEL_ARENA_BYTES", model_dir / "model.h",
                                   r"(\d+)")),
        "arena_in_psram": _define(target_text, "SQZ_ARENA_IN_PSRAM", target_h) == "1",
        "input": {"height": in_shape[1], "width": in_shape[2], "channels": in_shape[3],
                  "bytes": int(np.prod(in_shape)), "scale": repr(in_scale), "scale_f": in_scale,
                  "zero_point": in_zp,
                  "q16": _fixed_point(1.0 / (in_scale * 65536.0), "input")},
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

def library_path(src: Path) -> str:
    """Where a firmware file goes in the library. firmware/include/ becomes src/ (so
    "sqz/runtime.h" resolves), the protocol server src/sqz_validation/, and the rest of
    firmware/src/ keeps its layout under src/sqz_runtime/ (runtime/, arch/<arch>/), so
    relative includes between kernels and their variants still resolve."""
    parts = src.relative_to(FIRMWARE).parts
    if parts[0] == "include":
        return "/".join(("src", *parts[1:]))
    if parts[:2] == ("src", "app"):
        return "/".join(("src", "sqz_validation", *parts[2:]))
    if parts[0] == "src":
        return "/".join(("src", "sqz_runtime", *parts[1:]))
    raise ValueError(f"{src} is not part of the exported firmware")


def _runtime_files(model_dir: Path, arch_name: str) -> tuple[list[Path], list[Path]]:
    """(sources, headers) of the runtime the model needs."""
    sources = model_runtime_sources(model_dir)
    headers = [*sorted(require(FIRMWARE / "include" / "sqz").glob("*.h")),
               *sorted((FIRMWARE / "src" / "runtime").glob("*.h")), *arch.headers(arch_name)]
    return sources, headers


def _validation_files() -> list[Path]:
    app = require(FIRMWARE / "src" / "app")
    return sorted(p for p in app.iterdir() if p.suffix in (".c", ".h"))


def export_library(model_dir: Path, dest: Path, *, name: str | None = None,
                   version: str = DEFAULT_VERSION, sample: Sample | None = None) -> Exported:
    """Write the library for the model in `model_dir` (a directory written by sqz-convert) to
    `dest`, replacing an earlier export there. Runs the host reference once on the sample, so
    the examples can print what the host computes next to what the board computes."""
    from ..frontend import reference

    model_dir, dest = Path(model_dir), Path(dest)
    info, md = _model_context(model_dir)
    model, target = info["model"], info["target"]
    name = name or library_name(md.name)
    check_options(dest, name=name, version=version)
    inp = model["input"]
    shape = (inp["height"], inp["width"], inp["channels"])
    pre = md.preprocessing if _preprocessing_fits(md.preprocessing, shape) else None
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
    sources, headers = _runtime_files(model_dir, arch_name)
    validation = _validation_files()
    lib_sources = [f"src/{name}.c", "src/model.c", "src/model_data.c",
                   *(library_path(s) for s in sources)]
    ctx: dict[str, Any] = {
        "banner": {"sha256": md.sha256, "tool_version": __version__, "source": md.name,
                   "target": target.name},
        "lib": {
            "name": name, "upper": name.upper(), "version": version,
            "cmake_version": version.split("-")[0],
            "header": f"{name}.h", "sample_header": f"{name}_sample.h",
            "float_header": f"{name}_float.h", "url": HOMEPAGE,
            "builtin_arena": not model["arena_in_psram"],
            "description": (f"{md.name}, an int8 SqueezeNet image classifier converted by sqz "
                            f"for {target.name}: model, runtime and a small C API "
                            "(bit-exact with the TFLite reference kernels)."),
            "sentence": f"The {md.name} image classifier (int8, bit-exact), generated by sqz.",
            "paragraph": (f"{model['output']['classes']} classes from a "
                          f"{inp['height']}x{inp['width']}x{inp['channels']} image; "
                          "C99, no heap, no float. Model SHA-256 " + md.sha256[:16] + "."),
        },
        "model": model,
        "target": {"name": target.name, "description": target.description, "arch": arch_name,
                   "idf_target": IDF_TARGETS.get(target.name)},
        "pixels": pixels_ctx,
        "classes": {"known": names is not None,
                    "names": names or [str(i) for i in range(model["output"]["classes"])]},
        "sample": {"pixels": sample.pixels, "description": sample.description,
                   "count": int(x.size), "rows": _rows(sample.data),
                   "expected_class": expected_class, "expected_score": expected_score},
        "sources": {"library": lib_sources,
                    "validation": [library_path(p) for p in validation if p.suffix == ".c"],
                    "has_asm": any(s.suffix == ".S" for s in sources)},
        "pio": ({"env": target.pio_env, **PIO_BOARDS[target.pio_env]}
                if target.pio_env in PIO_BOARDS else None),
        "glue": {"mps2": target.port == "mps2_an386"},
        "examples": {"validate_sketch": target.port in ARDUINO_PORTS},
    }

    files: dict[str, bytes] = {}
    for src in [*sources, *headers, *validation]:
        files[library_path(src)] = src.read_bytes()
    for generated in ("model.c", "model_data.c", "model.h", "sqz_target.h"):
        files[f"src/{generated}"] = (model_dir / generated).read_bytes()
    rendered = {
        f"src/{name}.h": "export/api.h.j2",
        f"src/{name}.c": "export/api.c.j2",
        f"src/{name}_sample.h": "export/sample.h.j2",
        f"src/{name}_float.h": "export/float.h.j2",
        "CMakeLists.txt": "export/CMakeLists.txt.j2",
        "library.json": "export/library.json.j2",
        "library.properties": "export/library.properties.j2",
        "idf_component.yml": "export/idf_component.yml.j2",
        "README.md": "export/README.md.j2",
        "examples/classify/classify.ino": "export/examples/classify.ino.j2",
        "examples/platformio/platformio.ini": "export/examples/platformio.ini.j2",
        "examples/platformio/src/main.cpp": "export/examples/classify.ino.j2",
        "examples/esp_idf/CMakeLists.txt": "export/examples/esp_idf_CMakeLists.txt.j2",
        "examples/esp_idf/main/CMakeLists.txt": "export/examples/esp_idf_main_CMakeLists.txt.j2",
        "examples/esp_idf/main/main.c": "export/examples/esp_idf_main.c.j2",
        "examples/cmake/CMakeLists.txt": "export/examples/cmake_CMakeLists.txt.j2",
        "examples/cmake/main.c": "export/examples/cmake_main.c.j2",
        "examples/cmake/clock_std.c": "export/examples/cmake_clock_std.c.j2",
    }
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

    from . import environment

    env = environment()
    for path, template in rendered.items():
        files[path] = env.get_template(template).render(**ctx).encode()
    # The reference and the report, so sqz-validate --model can point here.
    extras = {"model.h": model_dir / "model.h", "model.tflite": md.tflite_path}
    for optional in ("sqz.json", "preprocess.json", "classes.json", "report.md", "report.json"):
        if (model_dir / optional).is_file():
            extras[optional] = model_dir / optional
    for fname, path in extras.items():
        files[f"extras/sqz/{fname}"] = path.read_bytes()

    manifest = {
        "format": FORMAT, "library": name, "version": version, "generator": f"sqz {__version__}",
        "model": md.name, "model_sha256": md.sha256, "target": target.name, "arch": arch_name,
        "files": {p: hashlib.sha256(files[p]).hexdigest() for p in sorted(files)},
    }
    files[MANIFEST] = (json.dumps(manifest, indent=2) + "\n").encode()
    write_tree(dest, files)
    return Exported(path=dest, name=name, version=version, files=tuple(sorted(files)),
                    expected_class=expected_class)


def write_tree(dest: Path, files: Mapping[str, bytes]) -> None:
    """Make `dest` hold exactly `files` (relative path -> bytes): the whole old tree or the
    whole new one, never a mix (converter/atomic.py: staged beside `dest`, swapped in one
    rename, locked against a second writer)."""
    dest = Path(dest)
    known: list[str] = []
    try:  # the export's own manifest lists what sqz wrote: anything else is the user's
        known = list(json.loads((dest / MANIFEST).read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    with atomic.output_directory(dest, what="--export", manifest=None, legacy_marker=MANIFEST,
                                 legacy_names=[*known, MANIFEST]) as stage:
        for rel, data in files.items():
            stage.write_bytes(rel, data)
