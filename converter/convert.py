"""The conversion pipeline: .tflite bytes -> IR -> lowered schedule -> passes -> C sources.

Each stage lives in its own module; this one only strings them together and writes the output
directory (all files or none).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from . import codegen, kernels, passes, tflite_reader
from .budget import Budget, check_budget
from .lower import ConvStep, Lowered, PoolStep, lower
from .passes import Layout
from .targets import Target


@dataclass(frozen=True)
class Conversion:
    lowered: Lowered
    layout: Layout
    target: Target
    budget: Budget
    files: dict[str, str]
    arch: str


def convert_tflite(buf: bytes, target: Target, *, model_name: str, source_name: str,
                   stream: str = "auto", in_place: bool = True, arch: str | None = None,
                   prefix: str = codegen.DEFAULT_PREFIX, pack: bool = True,
                   ram_budget: int | None = None, psram_budget: int | None = None,
                   flash_budget: int | None = None) -> Conversion:
    """Everything up to the rendered files; raises BudgetError before rendering anything.
    `arch` overrides the target's kernel architecture (tests run variants on the host);
    `prefix` names the model's global symbols and files (codegen.symbols); `pack=False` keeps
    every filter plain int8 (to measure what decoding packed weights costs)."""
    graph = tflite_reader.read_model_bytes(buf, source=source_name)
    lw = lower(graph)
    lw, layout = passes.run_passes(lw, arch=arch or target.arch, stream_mode=stream,
                                   in_place=in_place, pack=pack)
    budget = check_budget(lw, layout, target, ram_budget=ram_budget, psram_budget=psram_budget,
                          flash_budget=flash_budget)
    ctx = codegen.build_context(lw, layout, target, model_name=model_name,
                                source_name=source_name, arch=arch, prefix=prefix)
    ctx["placement"] = {"arena_in_psram": int(budget.arena_in_psram)}
    files = codegen.render(ctx)
    return Conversion(lowered=lw, layout=layout, target=target, budget=budget, files=files,
                      arch=arch or target.arch)


def runtime_sources_used(lw: Lowered) -> list[str]:
    """The runtime files (relative to firmware/src) the generated model links against: the
    executor, each node's adapter and each layer's kernel variant."""
    from .codegen import node_op

    files = set(kernels.RUNTIME_CORE)
    for s in lw.steps:
        files.update(kernels.NODE_ADAPTERS[node_op(s)][1])
        if isinstance(s, ConvStep):
            files.update(kernels.conv_kernel(s.kernel).sources)
        elif isinstance(s, PoolStep):
            files.update(kernels.pool_kernel(s.kernel).sources)
    return sorted(files)


def write(conv: Conversion, buf: bytes, out_dir: Path, extra: dict[str, bytes] | None = None
          ) -> None:
    meta = {
        "model_sha256": conv.lowered.graph.sha256,
        "target": conv.target.name,
        "arena_bytes": conv.layout.arena_bytes,
        "arch": conv.arch,
        "stream": conv.layout.schedule.mode,
        "runtime_sources": runtime_sources_used(conv.lowered),
    }
    payload = {"model.tflite": buf,
               "sqz.json": (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode()}
    payload.update(extra or {})
    codegen.write_outputs(conv.files, payload, Path(out_dir))
