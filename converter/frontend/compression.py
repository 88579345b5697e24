"""The compression record sqz-compress writes beside a model (MODEL.keras.compress.json), as
sqz-convert reads it: a per-tensor codebook must be quantized with one scale per tensor
(TFLite's default, one scale per output channel, would give every channel its own int8 table),
and after quantization the structure must have survived (`Compression.check_quantized`)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputFileError, ModelError

COMPRESS_SIDECAR = ".compress.json"
SIDECAR_FORMAT = "sqz-compress/1"


def sidecar_path(model: Path) -> Path:
    return model.with_name(model.name + COMPRESS_SIDECAR)


class Compression:
    """A model's compression sidecar, as sqz-convert uses it."""

    def __init__(self, record: dict[str, Any], path: Path):
        self.record, self.path = record, path
        if record.get("format") != SIDECAR_FORMAT or not isinstance(record.get("layers"), list):
            raise InputFileError(f"{path}: not a sqz-compress sidecar ({SIDECAR_FORMAT}); "
                                 "re-run sqz-compress or delete the file")
        if record.get("weight_quantization") not in ("per-tensor", "per-channel"):
            raise InputFileError(f"{path}: weight_quantization must be 'per-tensor' or "
                                 "'per-channel'")

    @classmethod
    def beside(cls, model: Path) -> Compression | None:
        path = sidecar_path(Path(model))
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text())
        except ValueError as exc:
            raise InputFileError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(record, dict):
            raise InputFileError(f"{path}: not a sqz-compress sidecar ({SIDECAR_FORMAT})")
        return cls(record, path)

    @property
    def per_channel_quantization(self) -> bool:
        return self.record["weight_quantization"] == "per-channel"

    def check_quantized(self, tflite: bytes, model) -> None:
        """Every compressed layer's int8 filter: at most 2^bits values per tensor (or channel),
        zero where the float kernel is zero, no more nonzeros than were kept."""
        from . import tflite_reader

        graph = tflite_reader.read_model_bytes(tflite)
        filters = filters_by_layer(graph, [la["name"] for la in self.record["layers"]])
        fix = (f"the model was changed after sqz-compress, or this TensorFlow quantizes "
               f"differently; re-run sqz-compress, or delete {self.path.name} to convert it as "
               "an ordinary model")
        for la in self.record["layers"]:
            name, bits = la["name"], int(la["bits"])
            tensor = filters.get(name)
            if tensor is None:
                raise ModelError(f"layer '{name}' (in {self.path.name}): its filter is not in "
                                 f"the quantized model; {fix}")
            q = tensor.array()
            per_tensor = la["codebook"] == "tensor"
            if per_tensor and tensor.quant is not None and tensor.quant.per_channel:
                raise ModelError(f"layer '{name}': TFLite quantized its filter per output "
                                 "channel although its codebook is per tensor; each channel "
                                 f"would get its own int8 table. {fix}")
            groups = q.reshape(1, -1) if per_tensor else q.reshape(q.shape[0], -1)
            most = max(len(np.unique(r)) for r in groups)
            if most > 2**bits:
                raise ModelError(f"layer '{name}': its int8 filter takes {most} distinct values "
                                 f"per {la['codebook']}, more than 2^{bits} = {2**bits}; {fix}")
            kernel = np.moveaxis(model.get_layer(name).get_weights()[0], -1, 0)
            if kernel.shape != q.shape:
                raise ModelError(f"layer '{name}': int8 filter shape {q.shape} differs from the "
                                 f"float kernel's {kernel.shape}; {fix}")
            if np.any(q[kernel == 0] != 0):
                raise ModelError(f"layer '{name}': pruned weights are not zero in the int8 "
                                 f"filter; {fix}")
            if np.count_nonzero(q) > int(la["kept"]):
                raise ModelError(f"layer '{name}': the int8 filter has "
                                 f"{np.count_nonzero(q):,} nonzero weights but sqz-compress kept "
                                 f"{int(la['kept']):,}; {fix}")


def filters_by_layer(graph, names: Sequence[str]) -> dict[str, Any]:
    """The constant filter tensor of each conv / fully-connected op, by Keras layer name.
    The TFLite converter names a filter after its op's scope, e.g.
    'squeezenet1_1_1/fire2_squeeze1x1_1/convolution' for layer fire2_squeeze1x1."""
    from ..ir import graph as ir

    wanted = set(names)
    found: dict[str, Any] = {}
    for op in graph.ops:
        if not isinstance(op, ir.Conv2D | ir.FullyConnected) or len(op.inputs) < 2:
            continue
        tensor = graph.tensor(op.inputs[1])
        for seg in tensor.name.split("/"):
            name = seg if seg in wanted else re.sub(r"_\d+$", "", seg)
            if name in wanted:
                found.setdefault(name, tensor)
                break
    return found
