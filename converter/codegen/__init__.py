"""Render the schedule into C with the Jinja2 templates in templates/.

Python prepares plain data (numbers, lists of numbers, names); the templates decide every
character of C. Output is deterministic: no timestamps, no dict-order surprises, no absolute
paths, so the same model gives byte-identical files.
"""

from __future__ import annotations

import dataclasses
import re
import struct
from typing import Any

import jinja2
import numpy as np

from .. import __version__
from ..arch import conv_kernel, portable
from ..ir import packing
from ..ir.steps import (
    AddStep,
    ConcatPartStep,
    ConstStep,
    ConvStep,
    Dims,
    FullyConnectedStep,
    InputStep,
    Lowered,
    MeanStep,
    PoolStep,
    RequantizeStep,
    SoftmaxStep,
)
from ..passes.memory import Layout
from ..paths import TEMPLATES, require
from ..targets import Target

ROW = 24  # array values per line in model_data.c


def _c_string(value: str) -> str:
    """A C string literal body: printable ASCII kept, everything else escaped."""
    out = []
    for ch in value:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif " " <= ch <= "~" and ch != "?":  # '?' can start a trigraph
            out.append(ch)
        else:
            out.extend(f"\\{b:03o}" for b in ch.encode())
    return "".join(out)


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(require(TEMPLATES))),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["c_string"] = _c_string
    return env


def _dims(d: Dims) -> dict[str, int]:
    return dataclasses.asdict(d)


def _rows(values) -> list[list[int]]:
    flat = [int(v) for v in values]
    return [flat[i:i + ROW] for i in range(0, len(flat), ROW)]


def _f32_bits(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


class _Arrays:
    """Collects the const arrays of model_data.c, each named by its role and layer number."""

    def __init__(self, prefix: str) -> None:
        self.items: list[dict[str, Any]] = []
        self.prefix = prefix

    def add(self, role: str, layer: int, ctype: str, values) -> dict[str, Any]:
        arr = {"prefix": self.prefix, "role": role, "layer": layer, "ctype": ctype,
               "count": len(values), "rows": _rows(values)}
        self.items.append(arr)
        return {"prefix": self.prefix, "role": role, "layer": layer}


def _tensor_info(lw: Lowered, layout: Layout, t: int | None) -> dict[str, Any]:
    if t is None:
        return {"offset": 0, "bytes": 0, "dims": _dims(Dims(0, 0, 0, 0)), "scale_bits": 0,
                "scale": 0.0, "zero_point": 0, "shape": []}
    tensor = lw.graph.tensor(t)
    scale, zp = tensor.quant.single() if tensor.quant else (0.0, 0)
    return {"offset": layout.offsets[t], "bytes": tensor.nbytes,
            "dims": _dims(Dims.of(tensor.shape)), "scale_bits": _f32_bits(scale),
            "scale": repr(float(scale)), "zero_point": zp, "shape": list(tensor.shape)}


def _camera_info(lw: Lowered) -> dict[str, Any] | None:
    cam = next((s.camera for s in lw.steps if isinstance(s, InputStep)), None)
    if cam is None:
        return None
    # Frame format codes on the wire and in model.h: 1 + the index in camera.FORMATS (0: none).
    return {"format_code": cam.format + 1, "format_name": cam.format_name,
            "frame_w": cam.frame_width, "frame_h": cam.frame_height,
            "row_bytes": cam.row_bytes, "frame_bytes": cam.frame_bytes,
            "ring_rows": cam.ring_rows, "params": cam.to_template()}


def _row_bytes(lw: Lowered) -> int:
    d = Dims.of(lw.graph.tensor(lw.input).shape)
    return d.w * d.c * lw.graph.tensor(lw.input).dtype.itemsize


def _addressing(r) -> dict[str, int]:
    return {"offset": r.offset, "pitch": r.pitch, "slots": r.slots}


_NO_ROWS = {"offset": 0, "pitch": 0, "slots": 1}


_OPS = {ConvStep: "CONV", MeanStep: "MEAN", ConcatPartStep: "CONCAT", AddStep: "ADD",
        SoftmaxStep: "SOFTMAX", FullyConnectedStep: "FULLY_CONNECTED",
        RequantizeStep: "REQUANTIZE", ConstStep: "LOAD_CONST", InputStep: "INPUT"}


def node_op(s) -> str:
    """The sqz_op of a step's node (SQZ_OP_<this>)."""
    if isinstance(s, PoolStep):
        return "MAX_POOL_PUSH" if s.push else ("MAX_POOL" if s.kind == "max" else "AVG_POOL")
    return _OPS[type(s)]


DEFAULT_PREFIX = "sqz_"


def symbols(prefix: str = DEFAULT_PREFIX) -> dict[str, str]:
    """Names of the generated model's global symbols and files. Another prefix lets several
    models live in one firmware (the batched kernel tests, a product with two models)."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*_", prefix):
        raise ValueError(f"symbol prefix {prefix!r}: lower-case C identifier ending in '_'")
    default = prefix == DEFAULT_PREFIX
    return {"prefix": prefix, "macro": prefix.upper(), "model": f"{prefix}model_def",
            "header": "model.h" if default else f"{prefix}model.h",
            "source": "model.c" if default else f"{prefix}model.c",
            "data": "model_data.c" if default else f"{prefix}model_data.c",
            "target": "sqz_target.h" if default else f"{prefix}target.h"}


def build_context(lw: Lowered, layout: Layout, target: Target, *, model_name: str,
                  source_name: str, arch: str | None = None,
                  prefix: str = DEFAULT_PREFIX) -> dict[str, Any]:
    sym = symbols(prefix)
    arrays = _Arrays(prefix)
    kinds: dict[str, list[dict[str, Any]]] = {k: [] for k in (
        "conv", "pool", "mean", "concat", "add", "softmax", "fc", "requantize",
        "load_const", "input")}
    nodes: list[dict[str, Any]] = []
    packed_filters: list[dict[str, Any]] = []
    rows = layout.rows

    def node(kind: str, op: str, layer: dict[str, Any], i: int, s, inputs: tuple[int, ...],
             output: int) -> None:
        kinds[kind].append(layer)
        scratch, size = layout.scratch.get(i, (0, 0))
        ins = [_addressing(rows[t]) for t in inputs] + [_NO_ROWS] * (2 - len(inputs))
        nodes.append({"index": i, "op": op, "run": portable.NODE_ADAPTERS[op][0],
                      "member": kind, "layer": len(kinds[kind]) - 1,
                      "scratch": scratch, "scratch_size": size, "name": s.name,
                      "input": ins[0], "input2": ins[1], "output": _addressing(rows[output])})

    for i, s in enumerate(lw.steps):
        if isinstance(s, ConvStep):
            k = conv_kernel(s.kernel)
            per_tensor = s.quant_per_tensor
            packed = None
            if s.packed is not None:
                enc = s.packed
                packed = {
                    "index": len(packed_filters),
                    "stream": arrays.add("stream", i, "uint8_t", np.frombuffer(
                        enc.stream + bytes(k.stream_slack), np.uint8)),
                    "codebook": arrays.add("codebook", i, "int8_t", enc.codebook.reshape(-1)),
                    "entries": enc.entries, "bits": enc.bits, "rice_k": enc.rice_k,
                    "sparse": int(enc.kind == packing.SPARSE),
                    "per_channel": int(enc.per_channel), "quant_per_tensor": int(per_tensor),
                    "name": s.name, "kind": enc.kind,
                    "records": None, "record_bytes": 0, "record_bias": None,
                }
                if k.records:  # the kernel copies them in front of each decoded block
                    recs, biases = k.records(s)
                    packed.update(records=arrays.add("records", i, "int32_t", recs),
                                  record_bytes=4 * len(recs) // (1 if biases is not None
                                                                 else s.filter_dims.n))
                    if biases is not None:
                        packed.update(record_bias=arrays.add("record_bias", i, "int32_t",
                                                             biases))
                packed_filters.append(packed)
            layer = {
                "name": s.name, "kernel": k.symbol,
                "kernel_note": k.description + (f", {s.rows_per_call} rows per call"
                                                if s.rows_per_call > 1 else ""),
                "rows_kernel": k.rows_symbol if s.rows_per_call > 1 else None,
                "rows_per_call": s.rows_per_call,
                "input_offset": s.input_offset, "output_offset": s.output_offset,
                "stride": s.stride, "padding": s.padding, "dilation": s.dilation,
                "act_min": s.act_min, "act_max": s.act_max,
                "output_pixel_stride": s.output_pixel_stride,
                "input_dims": _dims(s.input_dims), "filter_dims": _dims(s.filter_dims),
                "bias_dims": _dims(Dims(1, 1, 1, s.output_dims.c)),
                "output_dims": _dims(s.output_dims),
                "filter": (None if packed else
                           arrays.add("filter", i, "int8_t", s.filter_values())),
                "packed": packed,
            }
            if k.folds_quant:  # the kernel reads them from its records in the filter
                layer.update(bias=None, multiplier=None, shift=None)
            else:
                layer.update(
                    bias=arrays.add("bias", i, "int32_t", s.bias),
                    multiplier=arrays.add("multiplier", i, "int32_t",
                                          s.multiplier[:1] if per_tensor else s.multiplier),
                    shift=arrays.add("shift", i, "int8_t",
                                     s.shift[:1] if per_tensor else s.shift))
            node("conv", "CONV", layer, i, s, (s.input,), s.output)
        elif isinstance(s, PoolStep):
            layer = {"name": s.name, "kernel": s.kernel, "push": s.push, "stride": s.stride,
                     "padding": s.padding, "act_min": s.act_min,
                     "act_max": s.act_max, "input_dims": _dims(s.input_dims),
                     "filter_dims": _dims(Dims(1, *s.filter_hw, 1)),
                     "output_dims": _dims(s.output_dims)}
            node("pool", node_op(s), layer, i, s, (s.input,), s.output)
        elif isinstance(s, MeanStep):
            layer = {"input_offset": s.input_offset, "output_offset": s.output_offset,
                     "multiplier": s.multiplier, "shift": s.shift,
                     "input_dims": _dims(s.input_dims), "output_dims": _dims(s.output_dims)}
            node("mean", "MEAN", layer, i, s, (s.input,), s.output)
        elif isinstance(s, ConcatPartStep):
            part = s.part
            layer = {"axis": s.axis, "axis_offset": part.axis_offset,
                     "requantize": int(part.requantize), "input_offset": part.input_offset,
                     "output_offset": part.output_offset, "multiplier": part.multiplier,
                     "shift": part.shift, "input_dims": _dims(part.input_dims),
                     "output_dims": _dims(s.output_dims)}
            node("concat", "CONCAT", layer, i, s, (part.input,), s.output)
        elif isinstance(s, AddStep):
            layer = {f.name: getattr(s, f.name) for f in dataclasses.fields(s)
                     if f.name.endswith(("_offset", "_multiplier", "_shift")) or
                     f.name in ("left_shift", "act_min", "act_max")}
            layer["dims"] = _dims(s.dims)
            tables = s.tables()
            layer["table1"], layer["table2"] = (
                (None, None) if tables is None else
                (arrays.add("add_table1", i, "int32_t", tables[0]),
                 arrays.add("add_table2", i, "int32_t", tables[1])))
            node("add", "ADD", layer, i, s, (s.input1, s.input2), s.output)
        elif isinstance(s, SoftmaxStep):
            layer = {"input_multiplier": s.input_multiplier,
                     "input_left_shift": s.input_left_shift, "diff_min": s.diff_min,
                     "dims": _dims(s.dims)}
            node("softmax", "SOFTMAX", layer, i, s, (s.input,), s.output)
        elif isinstance(s, FullyConnectedStep):
            layer = {"filter_offset": s.filter_offset, "output_offset": s.output_offset,
                     "act_min": s.act_min, "act_max": s.act_max,
                     "input_dims": _dims(s.input_dims), "filter_dims": _dims(s.filter_dims),
                     "bias_dims": _dims(Dims(1, 1, 1, s.filter_dims.n)),
                     "output_dims": _dims(s.output_dims),
                     "filter": arrays.add("filter", i, "int8_t",
                                          np.frombuffer(s.filter, np.int8)),
                     "bias": arrays.add("bias", i, "int32_t", s.bias),
                     "mantissa": arrays.add("mantissa", i, "uint64_t", s.scale_mantissa),
                     "exponent": arrays.add("exponent", i, "int16_t", s.scale_exponent)}
            node("fc", "FULLY_CONNECTED", layer, i, s, (s.input,), s.output)
        elif isinstance(s, RequantizeStep):
            layer = {"input_offset": s.input_offset, "output_offset": s.output_offset,
                     "multiplier": s.multiplier, "shift": s.shift, "dims": _dims(s.dims)}
            node("requantize", "REQUANTIZE", layer, i, s, (s.input,), s.output)
        elif isinstance(s, ConstStep):
            layer = {"data": arrays.add("const", i, "int8_t", np.frombuffer(s.data, np.int8)),
                     "bytes": len(s.data)}
            node("load_const", "LOAD_CONST", layer, i, s, (), s.output)
        elif isinstance(s, InputStep):
            layer = {"feed": "sqz_feed_camera" if s.camera is not None else "sqz_feed_rows",
                     "camera": s.camera is not None}
            node("input", "INPUT", layer, i, s, (), s.output)
        else:  # pragma: no cover - every Step subclass is handled above
            raise TypeError(f"no code generation for {type(s).__name__}")

    segments = []
    for seg in layout.schedule.segments:
        if list(seg.nodes) != list(range(seg.nodes[0], seg.nodes[0] + len(seg.nodes))):
            raise AssertionError("a segment must be a contiguous run of steps")
        names = [lw.steps[i].name for i in seg.nodes]
        note = (f"{names[0]}, whole tensors" if len(names) == 1 else
                f"{len(names)} layers row by row, {names[0]} .. {names[-1]}")
        segments.append({"first_node": seg.nodes[0], "n_nodes": len(seg.nodes),
                         "order": seg.order, "note": note,
                         "order_rows": [seg.order[j:j + 8] for j in range(0, len(seg.order), 8)]})

    sha = lw.graph.sha256
    target_data = dataclasses.asdict(target)
    if arch is not None:
        target_data["arch"] = arch
    return {
        "banner": {"sha256": sha, "tool_version": __version__, "source": source_name,
                   "target": target.name},
        "model": {
            "name": model_name,
            "sha256": sha,
            "sha256_bytes": list(bytes.fromhex(sha)),
            "arena_bytes": layout.arena_bytes,
            "n_steps": len(nodes),
            "macs": sum(s.macs for s in lw.steps),
            "input": _tensor_info(lw, layout, lw.input),
            "output": _tensor_info(lw, layout, lw.output),
            "logits": _tensor_info(lw, layout, lw.logits),
            "input_node": next((i for i, s in enumerate(lw.steps) if isinstance(s, InputStep)),
                               None),
            "input_row_bytes": _row_bytes(lw),
            "input_slots": layout.rows[lw.input].slots,
            "camera": _camera_info(lw),
        },
        "symbols": sym,
        "layers": kinds,
        "packed_filters": packed_filters,
        "nodes": nodes,
        "segments": segments,
        "arrays": arrays.items,
        "target": target_data,
    }


OUTPUTS = {
    "model.h": "model.h.j2",
    "model.c": "model.c.j2",
    "model_data.c": "model_data.c.j2",
    "sqz_target.h": "sqz_target.h.j2",
}


def render(context: dict[str, Any]) -> dict[str, str]:
    env = environment()
    sym = context["symbols"]
    names = {"model.h": sym["header"], "model.c": sym["source"], "model_data.c": sym["data"],
             "sqz_target.h": sym["target"]}
    return {names.get(name, name): env.get_template(tpl).render(**context)
            for name, tpl in OUTPUTS.items()}
