"""The files sqz-compress writes: the compression sidecar (OUT.keras.compress.json, read back by
converter.frontend.compression) and the report's paths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..frontend.compression import SIDECAR_FORMAT
from .algorithm import LayerCode
from .options import paper_density


def json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def report_paths(model: Path) -> tuple[Path, Path]:
    stem = model.name[: -len(model.suffix)] if model.suffix else model.name
    return model.with_name(stem + ".report.md"), model.with_name(stem + ".report.json")


def sidecar_record(codes: list[LayerCode], **meta: Any) -> dict[str, Any]:
    """The compression sidecar: how to quantize, and per layer what sqz-convert checks."""
    layers = []
    for c in codes:
        kept = int(np.count_nonzero(c.kernel()))
        layers.append({
            "name": c.name, "weights": c.size, "kept": kept, "density": kept / c.size,
            "target_density": c.target_density, "paper_density": paper_density(c.name),
            "bits": c.bits, "codebook": "channel" if c.per_channel else "tensor",
            "centroids": [[float(np.float32(v)) for v in book] for book in c.codebooks],
        })
    per_channel = bool(codes) and codes[0].per_channel
    return {"format": SIDECAR_FORMAT, "tool": f"sqz-compress {__version__}",
            "weight_quantization": "per-channel" if per_channel else "per-tensor",
            "layers": layers, **meta}
