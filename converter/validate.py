"""Validation: run inputs on a device and compare with LiteRT BUILTIN_REF, bit for bit.

The device is a board on a serial port, or a simulated one (the host firmware on a
pseudo-terminal, or the Cortex-M firmware in QEMU on a TCP socket); all go through the same
serial client. The comparison is exact: the tool exits 0 only when every output byte matches.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import atomic
from .errors import InputFileError, ModelMismatchError, UsageError
from .frontend import reference
from .frontend.preprocess import (
    Preprocessing,
    load_image_folder,
    load_labelled_folder,
    quantize_input,
)
from .modeldir import ModelDir

DEFAULT_RANDOM_INPUTS = 10


@dataclass
class Inputs:
    int8: np.ndarray  # (N, *input shape[1:])
    floats: np.ndarray | None  # the float inputs they were quantized from, if any
    labels: np.ndarray | None
    class_names: list[str] | None
    names: list[str]
    kind: str
    # Camera models: the raw frames the device gets; int8 is the host mirror's bytes of them
    # (converter/frontend/camera.py), which the reference runs on. floats, when given, are the
    # original images through the host's own preprocessing (for the float model).
    frames: list[bytes] | None = None


FRAME_SUFFIXES = frozenset({".raw", ".bin", ".rgb565", ".rgb", ".yuv", ".yuyv", ".gray"})


def load_camera_inputs(spec: str | None, n: int | None, seed: int, camera, params,
                       pre: Preprocessing | None, model_classes: list[str] | None = None,
                       n_outputs: int | None = None) -> Inputs:
    """Inputs of a model fed by camera frames: raw frame files (a file or a folder), ordinary
    images (a folder, labelled by subfolders or not; each converted to a frame of the camera's
    format and size first), a .npy of uint8 frames, or seeded random frames."""
    from .frontend.camera import frame_from_image, mirror, read_frame
    from .frontend.preprocess import IMAGE_SUFFIXES, load_image

    what = f"{camera} frames ({camera.frame_bytes:,} bytes each)"

    def done(frames: list[bytes], names: list[str], how: str, floats=None, labels=None,
             classes=None) -> Inputs:
        x = np.stack([mirror(f, params) for f in frames]).astype(np.int8)
        return Inputs(x, floats, labels, classes, names, how, frames=frames)

    if spec is None:
        count = n or DEFAULT_RANDOM_INPUTS
        rng = np.random.default_rng(seed)
        frames = [rng.integers(0, 256, camera.frame_bytes, dtype=np.uint8).tobytes()
                  for _ in range(count)]
        return done(frames, [f"random#{i}" for i in range(count)],
                    f"{count} random {what} (seed {seed})")
    p = Path(spec)
    if p.is_file() and p.suffix.lower() == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise InputFileError(f"{p}: not a readable .npy array ({exc})") from None
        if arr.dtype != np.uint8 or arr.ndim < 1 or len(arr) == 0 or \
                arr[0].size != camera.frame_bytes:
            raise InputFileError(f"{p}: the model takes {what}; give uint8 frames, one per "
                                 f"row of the array, not {arr.dtype} of shape {arr.shape}")
        arr = arr[:n] if n else arr
        return done([a.tobytes() for a in arr], [f"{p.name}[{i}]" for i in range(len(arr))],
                    f"{len(arr)} {what} from {p.name}")
    if p.is_file():
        if p.suffix.lower() in IMAGE_SUFFIXES:
            return done([frame_from_image(p, camera)], [p.name], f"{p.name} as a {what[:-21]}",
                        floats=None if pre is None else load_image(p, pre)[None])
        return done([read_frame(p, camera)], [p.name], f"1 of {what} from {p.name}")
    if not p.is_dir():
        raise InputFileError(f"{p}: no such file or folder; give raw frames, images or a .npy")
    raw = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in FRAME_SUFFIXES)
    if raw:
        raw = raw[:n] if n else raw
        return done([read_frame(f, camera) for f in raw], [f.name for f in raw],
                    f"{len(raw)} {what} from {p}")
    if pre is None:
        raise UsageError(f"{p}: images need the preprocessing recorded at conversion "
                         "(preprocess.json in the model directory), and there is none")
    xf, y, classes, files = _image_folder(p, pre, model_classes, n_outputs)
    keep = np.arange(len(files))
    if n and n < len(files):
        keep = stratified_selection(y, n, seed) if y is not None else np.arange(n)
    files = [files[i] for i in keep]
    frames = [frame_from_image(f, camera) for f in files]
    names = [str(f.relative_to(p)) if f.is_relative_to(p) else f.name for f in files]
    return done(frames, names, f"{len(files)} images from {p}, each made a {camera} frame "
                "(the float model sees the original images)", floats=xf[keep],
                labels=None if y is None else y[keep], classes=classes)


def _to_model_labels(folder: Path, y: np.ndarray, folder_classes: list[str],
                     model_classes: list[str] | None, n_outputs: int | None = None
                     ) -> tuple[np.ndarray, list[str]]:
    """Folder labels -> the model's output indices, matched by class name when the model
    records its classes (classes.json), else the sorted folder order is assumed."""
    if model_classes is None:
        if n_outputs is not None and len(folder_classes) > n_outputs:
            raise InputFileError(
                f"{folder}: {len(folder_classes)} class folders ({', '.join(folder_classes)}) "
                f"but the model has {n_outputs} outputs and records no class names "
                "(classes.json); give a folder with one subfolder per output class, in output "
                "order")
        return y, folder_classes
    unknown = [c for c in folder_classes if c not in model_classes]
    if unknown:
        raise InputFileError(
            f"{folder}: class folders {unknown} are not among the model's classes "
            f"{model_classes} (classes.json); name the subfolders after the model's classes")
    index = np.array([model_classes.index(c) for c in folder_classes])
    return index[y], model_classes


def _image_folder(p: Path, pre: Preprocessing, model_classes: list[str] | None,
                  n_outputs: int | None):
    """An image folder's floats, labels (one subfolder per class, matched to the model's
    outputs) or None, class names and files."""
    subdirs = [d for d in sorted(p.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    if subdirs:
        xf, y, classes, files = load_labelled_folder(p, pre)
        y, classes = _to_model_labels(p, y, classes, model_classes, n_outputs)
        return xf, y, classes, files
    xf, files = load_image_folder(p, pre)
    return xf, None, None, files


def stratified_selection(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of ``n`` samples taken evenly from every class (round robin over the classes,
    each class in a seeded random order), in their original order."""
    rng = np.random.default_rng(seed)
    pools = [list(rng.permutation(np.flatnonzero(labels == c)))
             for c in np.unique(labels)]
    chosen: list[int] = []
    while len(chosen) < n:
        for pool in pools:
            if pool and len(chosen) < n:
                chosen.append(int(pool.pop(0)))
    return np.array(sorted(chosen), dtype=np.int64)


def load_inputs(spec: str | None, n: int | None, seed: int, shape: tuple[int, ...],
                scale: float, zero_point: int, pre: Preprocessing | None,
                model_classes: list[str] | None = None, n_outputs: int | None = None
                ) -> Inputs:
    per = tuple(shape[1:])
    if spec is None:
        count = n or DEFAULT_RANDOM_INPUTS
        rng = np.random.default_rng(seed)
        x = rng.integers(-128, 128, size=(count, *per), dtype=np.int8)
        return Inputs(x, None, None, None, [f"random#{i}" for i in range(count)],
                      f"{count} random int8 inputs (seed {seed})")
    p = Path(spec)
    if p.is_dir():
        if pre is None:
            raise UsageError(f"{p}: images need the preprocessing recorded at conversion "
                             "(preprocess.json in the model directory), and there is none; "
                             "convert again or give a .npy")
        if tuple(pre.input_shape) != per:
            raise InputFileError(f"{p}: preprocessing gives {pre.input_shape}, the model input "
                                 f"is {per}")
        xf, y, classes, files = _image_folder(p, pre, model_classes, n_outputs)
        total = len(files)
        how = f"{total} images from {p}"
        if n and n < total:
            if y is not None:
                keep = stratified_selection(y, n, seed)
                counts = np.bincount(y[keep], minlength=len(classes or []))
                how = (f"{n} of {total} labelled images from {p}, drawn evenly from each class "
                       f"(seed {seed}; per class: "
                       + ", ".join(f"{c} {k}" for c, k in zip(classes or [], counts, strict=False)
                                   if k) + ")")
                y = y[keep]
            else:
                keep = np.arange(n)
                how = f"the first {n} of {total} images from {p} (sorted by path)"
            xf, files = xf[keep], [files[i] for i in keep]
        return Inputs(quantize_input(xf, scale, zero_point), xf, y, classes,
                      [str(f.relative_to(p)) if f.is_relative_to(p) else f.name for f in files],
                      how)
    if not p.is_file():
        raise InputFileError(f"{p}: no such file or folder; give a .npy or an image folder")
    try:
        arr = np.load(p, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputFileError(f"{p}: not a readable .npy array ({exc})") from None
    if arr.shape[1:] != per:
        if arr.shape == per:
            arr = arr[None]
        else:
            raise InputFileError(f"{p}: inputs have shape {arr.shape}, the model takes "
                                 f"(N, {', '.join(map(str, per))})")
    if n:
        arr = arr[:n]
    if arr.dtype == np.int8:
        return Inputs(arr, None, None, None, [f"{p.name}[{i}]" for i in range(len(arr))],
                      f"{len(arr)} int8 inputs from {p.name}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise InputFileError(f"{p}: inputs must be int8 (already quantized) or float "
                             f"(preprocessed), not {arr.dtype}")
    xf = arr.astype(np.float32)
    return Inputs(quantize_input(xf, scale, zero_point), xf, None, None,
                  [f"{p.name}[{i}]" for i in range(len(arr))], f"{len(arr)} float inputs from "
                  f"{p.name}, quantized with the model's input scale")


@dataclass
class DeviceRun:
    outputs: np.ndarray
    logits: np.ndarray | None
    counts: list[int]
    layer_counts: list[int] | None
    step_names: list[str] | None
    info: object


@contextlib.contextmanager
def open_device(args, md: ModelDir) -> Iterator[tuple[object, str]]:
    """Yields (port, description) for --port, --sim host or --sim qemu."""
    if args.port:
        from .device.client import open_port

        with open_port(args.port, args.baud) as port:
            yield port, args.port
    elif args.sim == "host":
        from .device.hostsim import start_host_firmware

        with start_host_firmware(md.path) as fw:
            yield fw.port, "host firmware on a pseudo-terminal"
    else:
        from .device.qemu import start_qemu_firmware

        with start_qemu_firmware(md.path) as q:
            yield q.port, q.description


def run_device(args, md: ModelDir, inputs: Inputs, out: Console
               ) -> tuple[DeviceRun, reference.ReferenceResult]:
    """HELLO and the model check first (a wrong board fails fast), then the host reference,
    then the inferences."""
    from .device.client import DeviceClient

    with open_device(args, md) as (port, where):
        dev = DeviceClient(port, run_timeout=args.timeout)
        info = dev.hello()
        dev.check_model(bytes.fromhex(md.sha256), md.name or None)
        if info.input.bytes != inputs.int8[0].nbytes:
            raise ModelMismatchError(f"the device takes {info.input.bytes} input bytes, the "
                                     f"model {inputs.int8[0].nbytes}")
        if inputs.frames is not None and info.frame_bytes != len(inputs.frames[0]):
            takes = (f"frames of {info.frame_bytes:,} bytes" if info.frame_bytes else
                     "no camera frames")
            raise ModelMismatchError(
                f"the device takes {takes}, the model in {md.path} frames of "
                f"{len(inputs.frames[0]):,} bytes: flash the firmware converted from this "
                "model")
        out.print(f"Device: [bold]{info.target_name}[/] ({where}), firmware "
                  f"{info.firmware_version}, model {info.model_name}, arena "
                  f"{info.arena_bytes:,} B, counter in {info.counter_unit}")
        with out.status("Running the LiteRT reference (BUILTIN_REF)..."):
            ref = reference.run_reference(md.tflite, inputs.int8)
        outputs, logits, counts = [], [], []
        layer_counts = None
        with Progress(TextColumn("inferences"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=out, transient=True) as bar:
            task = bar.add_task("infer", total=len(inputs.int8))
            for i, x in enumerate(inputs.int8):
                if inputs.frames is not None:  # the device makes x from the frame itself
                    r = dev.infer(inputs.frames[i], per_layer=args.per_layer and i == 0,
                                  frame=True)
                else:
                    r = dev.infer(x.tobytes(), per_layer=args.per_layer and i == 0)
                outputs.append(np.frombuffer(r.output, np.int8))
                if r.logits is not None:
                    logits.append(np.frombuffer(r.logits, np.int8))
                counts.append(r.run.total_count)
                if r.layer_counts is not None:
                    layer_counts = r.layer_counts
                bar.advance(task)
        names = dev.read_step_names() if layer_counts is not None else None
    return DeviceRun(np.stack(outputs), np.stack(logits) if logits else None, counts,
                     layer_counts, names, info), ref


@dataclass
class Comparison:
    n: int
    exact: int
    max_abs_diff: int
    top1_agree: int
    compared: str  # "output" or "logits"
    per_input: list[dict] = field(default_factory=list)


def compare(dev: np.ndarray, ref: np.ndarray, names: list[str], what: str) -> Comparison:
    per = []
    exact = 0
    top1 = 0
    worst = 0
    for i, name in enumerate(names):
        a = dev[i].astype(np.int32).ravel()
        b = ref[i].astype(np.int32).ravel()
        d = int(np.abs(a - b).max()) if a.size else 0
        same_top = int(np.argmax(a)) == int(np.argmax(b))
        exact += d == 0
        top1 += same_top
        worst = max(worst, d)
        per.append({"input": name, "bit_exact": d == 0, "max_abs_diff": d,
                    "differing_values": int((a != b).sum()), "device_top1": int(np.argmax(a)),
                    "reference_top1": int(np.argmax(b))})
    return Comparison(len(names), exact, worst, top1, what, per)


def float_outputs(md: ModelDir, keras_path: Path | None, inputs: Inputs, scale: float, zp: int
                  ) -> np.ndarray | None:
    path = keras_path or md.keras_path
    if path is None:
        return None
    from .frontend.quantize import captured_output
    from .frontend.sources import load_keras

    what = "--keras" if keras_path else "the float model"
    x = inputs.floats
    if x is None:
        x = (inputs.int8.astype(np.float32) - zp) * np.float32(scale)
    with captured_output():
        km = load_keras(path, what)
        want = tuple(x.shape[1:])
        have = tuple(km.input_shape[1:]) if not isinstance(km.input_shape, list) else None
        if have != want:
            raise InputFileError(
                f"{what} {path}: the float model takes inputs of shape (N, "
                f"{', '.join(map(str, have or ()))}), the int8 model in {md.path} takes (N, "
                f"{', '.join(map(str, want))}); give the float model this conversion was made "
                f"from ({md.path / 'float_model.keras'} when sqz-convert kept it)")
        try:
            return np.asarray(km.predict(x, verbose=0, batch_size=16))
        except Exception as exc:  # Keras raises assorted errors for a model it cannot run
            raise InputFileError(f"{what} {path}: the float model cannot run on these inputs "
                                 f"({type(exc).__name__}: {str(exc).splitlines()[0]}); give "
                                 "the float model this conversion was made from") from None


def dequantize(q: np.ndarray, scale: float, zp: int) -> np.ndarray:
    return (q.astype(np.float32) - zp) * np.float32(scale)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(np.dot(a, b) / (na * nb)) if na and nb else 1.0


def count_stats(counts: list[int], hz: int) -> dict:
    med = statistics.median(counts)
    return {"min": min(counts), "median": med, "max": max(counts),
            "min_ms": min(counts) / hz * 1e3, "median_ms": med / hz * 1e3,
            "max_ms": max(counts) / hz * 1e3}


def write_junit(path: Path, cmp: Comparison, model: str, seconds: float) -> None:
    suite = ET.Element("testsuite", name=f"sqz-validate {model}", tests=str(cmp.n),
                       failures=str(cmp.n - cmp.exact), time=f"{seconds:.3f}")
    for row in cmp.per_input:
        case = ET.SubElement(suite, "testcase", classname=f"sqz.{model}", name=row["input"])
        if not row["bit_exact"]:
            f = ET.SubElement(case, "failure", message=(
                f"{row['differing_values']} {cmp.compared} values differ, max |diff| "
                f"{row['max_abs_diff']}"))
            f.text = json.dumps(row)
    with atomic.replacing(path) as tmp:
        ET.ElementTree(suite).write(tmp, encoding="utf-8", xml_declaration=True)


def layer_macs(model_dir: Path, names: list[str] | None) -> list[int] | None:
    """MACs per step from the report.json sqz-convert wrote, when its layers are the device's
    steps (same names, same order); None otherwise."""
    try:
        layers = json.loads((model_dir / "report.json").read_text())["layers"]
        macs = [int(row["macs"]) for row in layers]
        same = names is not None and [row["name"] for row in layers] == list(names)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return macs if same else None


def per_layer_rows(devrun: DeviceRun, out: Console, macs: list[int] | None = None
                   ) -> list[dict]:
    """Counts per step: the device records the counter after every step. With the steps'
    MACs, also the count per MAC of each."""
    marks = devrun.layer_counts or []
    names = devrun.step_names or [f"step {i}" for i in range(len(marks))]
    total = sum(marks) or 1
    unit = devrun.info.counter_unit
    t = Table(title=f"per layer ({unit}, first inference)")
    t.add_column("#", justify="right")
    t.add_column("layer")
    t.add_column(unit, justify="right")
    t.add_column("share", justify="right")
    if macs:
        t.add_column("MACs", justify="right")
        t.add_column(f"{unit}/MAC", justify="right")
    rows = []
    for i, (name, c) in enumerate(zip(names, marks, strict=False)):
        cells = [str(i), name, f"{c:,}", f"{100 * c / total:.1f}%"]
        row = {"step": i, "name": name, "count": c}
        if macs:
            m = macs[i] if i < len(macs) else 0
            cells += [f"{m:,}", f"{c / m:.2f}" if m else ""]
            row["macs"] = m
        t.add_row(*cells)
        rows.append(row)
    out.print(t)
    return rows
