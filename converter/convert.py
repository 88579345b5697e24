"""The conversion pipeline: .tflite bytes -> IR -> lowered schedule -> passes -> C sources.

Each stage lives in its own module; this one only strings them together and writes the output
directory (all files or none, see converter/atomic.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from . import arch, atomic, codegen, passes
from .arch import portable
from .errors import BudgetError, UsageError
from .frontend import tflite_reader
from .frontend.camera import Camera, CameraParams, camera_params
from .frontend.preprocess import Preprocessing
from .ir.lower import lower
from .ir.steps import ConvStep, Dims, InputStep, Lowered, PoolStep
from .passes.budget import Budget, arena_room, check_budget
from .passes.memory import Layout
from .targets import Target


@dataclass(frozen=True)
class Conversion:
    lowered: Lowered
    layout: Layout
    target: Target
    budget: Budget
    files: dict[str, str]
    arch: str
    packing: str = "auto"  # passes.PACKING_MODES
    # --packing auto's bound on the arena (budget.arena_room; 0 for the other modes), in
    # sqz.json so that converter/export.py plans the same filters packed.
    packing_room: int = 0
    model_name: str = ""
    source_name: str = ""
    stream: str = "auto"  # the --stream option (layout.schedule.mode is what it chose)
    input_mode: str = "ring"  # the --input option (passes.INPUT_MODES)
    scratch: str = "full"  # the scratch the convs got: full or least (--scratch auto chooses)
    camera: Camera | None = None  # --camera: the frames the device makes its input from
    preprocessing: Preprocessing | None = None  # what the camera path normalizes with

    def render(self, prefix: str) -> dict[str, str]:
        """The generated files again with another symbol prefix (codegen.symbols): the same
        schedule and weights under other names, for a library that shares a firmware with
        other models (converter/export.py)."""
        return render_files(self.lowered, self.layout, self.target, arch=self.arch,
                            model_name=self.model_name, source_name=self.source_name,
                            arena_in_psram=self.budget.arena_in_psram, prefix=prefix)


def render_files(lw: Lowered, layout: Layout, target: Target, *, arch: str, model_name: str,
                 source_name: str, arena_in_psram: bool,
                 prefix: str = codegen.DEFAULT_PREFIX) -> dict[str, str]:
    ctx = codegen.build_context(lw, layout, target, model_name=model_name,
                                source_name=source_name, arch=arch, prefix=prefix)
    ctx["placement"] = {"arena_in_psram": int(arena_in_psram)}
    return codegen.render(ctx)


def convert_tflite(buf: bytes, target: Target, *, model_name: str, source_name: str,
                   stream: str = "auto", in_place: bool = True, arch: str | None = None,
                   prefix: str = codegen.DEFAULT_PREFIX, packing: str = "auto",
                   ram_budget: int | None = None, psram_budget: int | None = None,
                   flash_budget: int | None = None, input_size_option: bool = True,
                   rows_per_call: int | None = None, decode_block: int | None = None,
                   input_mode: str = "ring", camera: Camera | None = None,
                   preprocessing: Preprocessing | None = None, scratch: str = "auto",
                   plan_ram_budget: int | None = None) -> Conversion:
    """Everything up to the rendered files; raises BudgetError before rendering anything.
    `arch` overrides the target's kernel architecture (tests run variants on the host);
    `prefix` names the model's global symbols and files (codegen.symbols); `packing`: which
    filters are stored packed (passes.PACKING_MODES; 'auto' packs while the whole firmware's
    RAM fits the board's internal SRAM, or `ram_budget`; 'off' measures what decoding costs);
    `input_mode`: the input arrives row by row into a ring ('ring') or whole ('whole');
    `camera`: the input is made on the device from camera frames, normalized as
    `preprocessing` says (converter.frontend.camera);
    `scratch`: passes.SCRATCH_MODES; 'auto' gives the convs their full scratch, or the least
    they run with when the full plan does not fit the board (the budget check);
    `rows_per_call` and `decode_block` fix the rows per call and decoded blocks of the packed
    convs instead of choosing them (tests); `plan_ram_budget`: the internal RAM --packing
    auto plans for, if not `ram_budget` (sqz-bench checks no budget but plans as sqz-convert
    does).
    input_size_option: --input-size can change the model (a builtin), for the budget advice."""
    graph = tflite_reader.read_model_bytes(buf, source=source_name)
    lowered = lower(graph)
    cam_params = camera_device_params(lowered, camera, preprocessing, input_mode)
    if scratch not in passes.SCRATCH_MODES:
        raise UsageError(f"--scratch must be one of {', '.join(passes.SCRATCH_MODES)}, not "
                         f"'{scratch}'")
    modes = ("full", "least") if scratch == "auto" else (scratch,)

    def room(lw: Lowered) -> int:
        return arena_room(target, lw, plan_ram_budget if plan_ram_budget is not None
                          else ram_budget)

    for n, mode in enumerate(modes, 1):
        lw, layout = passes.run_passes(lowered, arch=arch or target.arch, stream_mode=stream,
                                       in_place=in_place, packing_mode=packing,
                                       input_mode=input_mode, camera=cam_params,
                                       scratch=mode, packing_room=room,
                                       rows_per_call=rows_per_call, decode_block=decode_block)
        try:
            budget = check_budget(lw, layout, target, ram_budget=ram_budget,
                                  psram_budget=psram_budget, flash_budget=flash_budget,
                                  input_size_option=input_size_option, packing=packing)
            break
        except BudgetError:
            if n == len(modes):
                raise
    files = render_files(lw, layout, target, arch=arch or target.arch, model_name=model_name,
                         source_name=source_name, arena_in_psram=budget.arena_in_psram,
                         prefix=prefix)
    return Conversion(lowered=lw, layout=layout, target=target, budget=budget, files=files,
                      arch=arch or target.arch, packing=packing,
                      # The passes keep the steps they packed against, so this is their room.
                      packing_room=room(lw) if packing == "auto" else 0, model_name=model_name,
                      source_name=source_name, stream=stream, input_mode=input_mode,
                      scratch=mode, camera=camera, preprocessing=preprocessing)


def camera_device_params(lw: Lowered, camera: Camera | None, pre: Preprocessing | None,
                   input_mode: str) -> CameraParams | None:
    """The device's constants for --camera, from the model's input quantization."""
    if camera is None:
        return None
    if input_mode != "ring":
        raise UsageError("--camera makes the input from frame rows as they arrive: it needs "
                         "--input ring (the default), not --input whole")
    if pre is None:
        raise UsageError("--camera: the model records no preprocessing, so the device cannot "
                         "normalize frames as the host does; give --preprocess imagenet, "
                         "simple or a preprocessing JSON file")
    t = lw.graph.tensor(lw.input)
    if t.quant is None:
        raise UsageError("--camera: the model's input is not int8; convert a full-integer "
                         "model")
    scale, zp = t.quant.single()
    d = Dims.of(t.shape)
    if d.n != 1:
        raise UsageError(f"--camera: the model takes a batch of {d.n}; camera frames feed a "
                         "batch of 1")
    return camera_params(camera, pre, scale, zp, d.h, d.w, d.c)


def runtime_sources_used(lw: Lowered) -> list[str]:
    """The runtime files (relative to firmware/src) the generated model links against: the
    executor, each node's adapter and each layer's kernel variant."""
    from .codegen import node_op

    files = set(portable.RUNTIME_CORE)
    for s in lw.steps:
        files.update(portable.NODE_ADAPTERS[node_op(s)][1])
        if isinstance(s, InputStep) and s.camera is not None:
            files.add("runtime/camera_s8.c")
        if isinstance(s, ConvStep):
            files.update(arch.conv_kernel(s.kernel).sources)
        elif isinstance(s, PoolStep):
            files.update(arch.pool_kernel(s.kernel).sources)
    return sorted(files)


# Names sqz-convert wrote before output directories carried a manifest (and the temporaries
# of that time), so that such a directory is recognised as sqz's own and replaced.
LEGACY_OUTPUTS = (*codegen.OUTPUTS, "model.tflite", "sqz.json", "classes.json",
                  "preprocess.json", "camera.json", "float_model.keras", "report.md",
                  "report.json",
                  "report.png", "bench")
LEGACY_NAMES = (*LEGACY_OUTPUTS, *(f".{n}.tmp" for n in LEGACY_OUTPUTS),
                *(f"host/{n}" for n in LEGACY_OUTPUTS))  # sqz-bench's host build


def output_directory(out_dir: Path, what: str = "--out"):
    """atomic.output_directory for a conversion's directory (see converter/atomic.py)."""
    return atomic.output_directory(out_dir, what=what, legacy_marker="sqz.json",
                                   legacy_names=LEGACY_NAMES)


def write(conv: Conversion, buf: bytes, out: Path | atomic.Staging,
          extra: dict[str, bytes] | None = None) -> None:
    """The generated sources, the .tflite and sqz.json (plus ``extra`` files) into a staging
    directory, or, given a path, into that directory as one atomic replacement."""
    if not isinstance(out, atomic.Staging):
        with output_directory(Path(out)) as stage:
            write(conv, buf, stage, extra)
        return
    meta = {
        "model_sha256": conv.lowered.graph.sha256,
        "target": conv.target.name,
        "arena_bytes": conv.layout.arena_bytes,
        "arch": conv.arch,
        "stream": conv.layout.schedule.mode,
        # What converting again needs to give the same code (converter/export.py re-renders
        # it under the library's own names).
        "packing": conv.packing,
        "packing_room": conv.packing_room,
        "stream_option": conv.stream,
        "input": conv.input_mode,
        "scratch": conv.scratch,
        "model_name": conv.model_name,
        "source_name": conv.source_name,
        "runtime_sources": runtime_sources_used(conv.lowered),
    }
    payload = {**{name: text.encode() for name, text in conv.files.items()},
               "model.tflite": buf,
               "sqz.json": (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode()}
    if conv.camera is not None:
        payload["camera.json"] = (json.dumps(conv.camera.to_dict(), indent=2, sort_keys=True)
                                  + "\n").encode()
    payload.update(extra or {})
    for name, data in payload.items():
        out.write_bytes(name, data)
