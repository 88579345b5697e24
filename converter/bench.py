"""sqz-bench: what a model costs, measured rather than estimated.

* Peak arena bytes: the memory plan of the conversion (the input a ring filled row by row), and
  what it is with the input stored whole (--input whole) beside it.
* Flash: the weights (exact bytes of model_data.c's arrays) and the code, from the size of an
  -Os build of the firmware for the emulated board (runtime, protocol application, port and
  schedule, linked with --gc-sections).
* Instructions per inference of the host -O2 build (portable kernels), counted by valgrind's
  callgrind, which counts executed instructions deterministically (the same binary and input
  give the same count on any x86-64 machine and under any load), per layer and in total.
* Instructions per inference on the emulated board (`--target`: QEMU mps2-an386, a Cortex-M4,
  by default; mps3-an547, a Cortex-M55 with Helium; esp32s3-qemu), with the kernel variants of
  the board's architecture: the firmware's own counter, exact executed instructions (not
  cycles), in total and per layer.
* With `--camera`: the model converted to take raw camera frames, a seeded frame fed on the host
  and on the board, and the input step's cost (the frame rows converted to the model's input:
  decode, resize, normalize, quantize) reported on its own, with its share of the inference.
* Estimated cycles on Cortex-M boards: one more run, traced instruction by instruction
  (device/cycles.py), costed with the timing tables of targets/cycles/ (Cortex-M4, M7, M55;
  optimistic, base and pessimistic assumptions), in total and per layer. An estimate: a static
  model from the cores' manuals, zero wait states.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from . import convert, targets
from .atomic import Staging
from .device import cycles
from .device.build import FIRMWARE, compile_c, runtime_sources
from .errors import BuildError, DeviceError, UsageError
from .frontend.camera import Camera, frame_gradient
from .frontend.preprocess import Preprocessing
from .frontend.tflite_reader import read_model_bytes
from .ir.lower import lower
from .ir.steps import InputStep
from .passes import run_passes
from .paths import TARGETS

BENCH_TARGET = "mps2-an386"
BENCH_CFLAGS = ("-std=gnu99", "-Wall", "-Wextra", "-Werror")  # callgrind.h needs GNU C
BENCH_SEED = 0
FRAMES = ("random", "gradient")  # --frame: seeded random bytes, or camera.frame_gradient
INPUT_LAYER = "input"
CAMERA_INPUT_LAYER = "input (camera preprocessing)"


@dataclass(frozen=True)
class LayerCost:
    index: int
    name: str
    macs: int
    instructions: int  # host, callgrind
    board_instructions: int | None = None  # the emulated board's counter
    kernel: str = ""  # the board's kernel variant
    weights: str = ""  # int8, or packed/sparse codebook indices
    weight_bytes: int = 0  # flash: filter as stored, biases, requantization constants
    # With packed weights: the same layer with its filter stored as plain int8, so the
    # difference is what decoding costs.
    unpacked_instructions: int | None = None
    unpacked_board_instructions: int | None = None
    # Estimated cycles of the board's core per assumption (optimistic, base, pessimistic).
    board_cycles: dict[str, float] | None = None


@dataclass(frozen=True)
class BenchResult:
    model: str
    input_shape: list[int]
    macs: int
    arena_bytes: int
    weight_bytes: int
    instructions: int
    layers: list[LayerCost]
    host_build: str
    cm4_flash_bytes: int | None
    cm4_code_bytes: int | None
    cm4_ram_bytes: int | None
    cm4_note: str
    board: str = ""
    arch: str = ""
    board_instructions: int | None = None
    board_note: str = ""
    # The same model with plain int8 filters, one whole inference on the board (packed models).
    unpacked_board_instructions: int | None = None
    stream: str = ""
    # --packing; the host and the board conversions each keep plain the filters whose decoded
    # block would raise their own arena (their kernels' scratch differs).
    packing: str = ""
    arena_input_whole_bytes: int | None = None  # the same model with --input whole
    # Estimated cycles per core ("cortex-m4", ...): {"core", "reference", "traced_instructions",
    # "optimistic", "base", "pessimistic"}; the board's own core first.
    cycles: dict[str, dict] | None = None
    cycles_note: str = ""
    input_mode: str = "ring"  # --input
    scratch: str = ""  # the conversion's conv scratch: full or least
    # --camera: the spec, the frame fed (FRAMES), its bytes, and the ring of frame rows the
    # firmware keeps outside the arena.
    camera: str | None = None
    frame: str = ""
    frame_bytes: int | None = None
    frame_ring_bytes: int | None = None
    # The input step: with --camera the preprocessing, else the copies of the input's rows.
    # Host: callgrind; board: the per-layer run (its total is the layers' sum).
    input_instructions: int | None = None
    input_share: float | None = None
    board_input_instructions: int | None = None
    board_input_share: float | None = None

    @property
    def instructions_per_mac(self) -> float:
        return self.instructions / self.macs if self.macs else 0.0

    @property
    def board_instructions_per_mac(self) -> float | None:
        if self.board_instructions is None or not self.macs:
            return None
        return self.board_instructions / self.macs


def _callgrind_counts(exe: Path, input_bytes: bytes, n_dumps: int) -> list[int]:
    if shutil.which("valgrind") is None:
        raise BuildError("valgrind is not installed; sqz-bench counts instructions with "
                         "callgrind: apt-get install valgrind")
    with tempfile.TemporaryDirectory(prefix="sqz-bench-") as tmp:
        out = Path(tmp) / "cg.out"
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", "--collect-atstart=no", "--dump-instr=no",
             f"--callgrind-out-file={out}", str(exe)],
            input=input_bytes, capture_output=True, timeout=3600,
        )
        if proc.returncode != 0:
            raise BuildError(f"the benchmark run failed: {proc.stderr.decode()[-2000:]}")
        counts = []
        for i in range(1, n_dumps + 1):
            text = Path(f"{out}.{i}").read_text()
            m = re.search(r"^totals:\s+(\d+)", text, re.M) or re.search(
                r"^summary:\s+(\d+)", text, re.M)
            counts.append(int(m.group(1)) if m else 0)
        return counts


def _board_size(model_dir: Path, weight_bytes: int) -> tuple[int | None, int | None,
                                                             int | None, str]:
    """Flash and RAM of an -Os build of the board's firmware."""
    from .device.qemu import build_qemu_firmware, image_size

    try:
        with tempfile.TemporaryDirectory(prefix="sqz-size-") as tmp:
            size = image_size(build_qemu_firmware(model_dir, Path(tmp), opt="-Os"))
    except BuildError as exc:
        return None, None, None, f"skipped: {str(exc).splitlines()[0]}"
    flash = size["flash"]
    return flash, flash - weight_bytes, size["ram"], "-Os, linked with --gc-sections"


@dataclass(frozen=True)
class Feed:
    """What one inference is fed: the model's int8 input, or (`frame`) a camera frame the
    device converts to it."""

    data: bytes
    frame: bool = False


def _board_counts(model_dir: Path, feed: Feed) -> tuple[int, list[int]]:
    """One inference on the emulated board: the exact total, then the per-layer split (a
    second run: the per-layer hook costs a few instructions per call of its own)."""
    from .device.client import DeviceClient
    from .device.qemu import start_qemu_firmware

    with start_qemu_firmware(model_dir) as fw:
        dev = DeviceClient(fw.port, run_timeout=3600)
        dev.hello()
        total = dev.infer(feed.data, frame=feed.frame).run.total_count
        layers = dev.infer(feed.data, per_layer=True, frame=feed.frame).layer_counts or []
    return total, layers


def _core_of(cpu: str) -> str:
    """The timing table of a board's CPU ("Cortex-M4" -> "cortex-m4"), or '' if none."""
    key = cpu.lower()
    return key if key in cycles.CORES else ""


def trace_profile(model_dir: Path, x: np.ndarray | Feed, timeout: float = 3600.0,
                  per_layer: bool = True) -> cycles.TraceProfile:
    """One inference on the emulated Cortex-M board with per-layer counts, QEMU logging every
    translation block and every execution of one (``-d in_asm,exec,nochain``) into a FIFO that
    a thread reads as it is written (the log of a SqueezeNet run is gigabytes)."""
    from .device import DeviceClient
    from .device.qemu import QemuFirmware, board_for_model, build_qemu_firmware

    board = board_for_model(model_dir)
    if board.qemu != "qemu-system-arm":
        raise UsageError(f"cycle estimates need a Cortex-M board; {board.target} is not one")
    elf = build_qemu_firmware(model_dir)
    with tempfile.TemporaryDirectory(prefix="sqz-trace-") as tmp:
        fifo = Path(tmp) / "trace.log"
        os.mkfifo(fifo)

        class Traced(QemuFirmware):
            def command(self) -> list[str]:
                cmd = super().command()
                i = cmd.index("-kernel")
                return [*cmd[:i], *cycles.TRACE_OPTIONS, "-D", str(fifo), *cmd[i:]]

        done: dict[str, object] = {}

        def read() -> None:
            try:
                with open(fifo, errors="replace", buffering=1 << 20) as f:
                    done["profile"] = cycles.read_trace(f)
            except BaseException as exc:  # handed to the caller below
                done["error"] = exc

        reader = threading.Thread(target=read, name="sqz-trace-reader", daemon=True)
        reader.start()
        q = Traced(elf, board=board, start_timeout=120.0)
        try:
            q.start()
            dev = DeviceClient(q.port, run_timeout=timeout)
            dev.hello()
            feed = x if isinstance(x, Feed) else Feed(x.tobytes())
            dev.infer(feed.data, per_layer=per_layer, frame=feed.frame)
        finally:
            q.close()
            if reader.is_alive():
                # QEMU never opened the log (it failed to start): open the FIFO's write end
                # once so that the reader's open returns and it sees the end of the file.
                with contextlib.suppress(OSError):
                    os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            reader.join(timeout=600)
    if "error" in done:
        raise BuildError(f"reading QEMU's trace failed: {done['error']}")
    if "profile" not in done:
        raise BuildError("QEMU's trace was not read to its end")
    return done["profile"]  # type: ignore[return-value]


def _board_cycles(model_dir: Path, x: Feed, ticks: Sequence[int], n_steps: int,
                  cpu: str) -> tuple[dict[str, dict], list[dict[str, float]]]:
    """Estimated cycles per core for the whole run, and per step for the board's own core."""
    prof = trace_profile(model_dir, x)
    own = _core_of(cpu)
    order = [own, *(c for c in cycles.CORES if c != own)] if own else list(cycles.CORES)
    out: dict[str, dict] = {}
    per_step: list[dict[str, float]] = []
    for key in order:
        est = cycles.estimate(prof, cycles.load_timing(key, TARGETS / "cycles"))
        out[key] = {"core": est.core, "reference": est.reference,
                    "traced_instructions": est.instructions, **est.cycles,
                    "top_base": [list(t) for t in est.top]}
        if key == order[0]:
            _, per_step = est.per_step(ticks, n_steps)
    return out, per_step


@dataclass(frozen=True)
class ConvertOptions:
    """The conversion options every conversion of one benchmark shares (sqz-convert's)."""

    stream: str = "auto"
    input_mode: str = "ring"
    scratch: str = "auto"
    camera: Camera | None = None
    preprocessing: Preprocessing | None = None

    def kwargs(self) -> dict:
        return {"stream": self.stream, "input_mode": self.input_mode, "scratch": self.scratch,
                "camera": self.camera, "preprocessing": self.preprocessing}


def _host_counts(tflite: bytes, name: str, out_dir: Path, console: Console,
                 opts: ConvertOptions, feed: Feed, packing: str = "auto") -> list[int]:
    """callgrind instructions per layer of the host build with the portable kernels."""
    conv = convert.convert_tflite(tflite, targets.load("host"), model_name=name,
                                  source_name=name, flash_budget=2**31, packing=packing,
                                  **opts.kwargs())
    host_dir = out_dir / ("host-unpacked" if packing == "off" else "host")
    convert.write(conv, tflite, host_dir)
    with console.status("Building the host benchmark (-O2)..."):
        exe = compile_c([*runtime_sources(), host_dir / "model.c", host_dir / "model_data.c",
                         FIRMWARE / "tools" / "bench.c"], host_dir / "bench", opt="-O2",
                        includes=[host_dir], warn=BENCH_CFLAGS)
    ticks = conv.layout.schedule.ticks
    with console.status("Counting instructions with callgrind..."):
        per_call = _callgrind_counts(exe, feed.data, len(ticks))
    # bench.c dumps after every kernel call; a streamed layer is the sum of its calls.
    counts = [0] * len(conv.lowered.steps)
    for step, c in zip(ticks, per_call, strict=True):
        counts[step] += c
    return counts


def _weights_text(s) -> str:
    e = getattr(s, "packed", None)
    if e is None:
        return "int8" if s.weight_bytes else ""
    return f"{e.kind} {e.bits}-bit"


def _feed(shape: Sequence[int], camera: Camera | None, frame: str) -> Feed:
    """The seeded input of every run: the model's int8 input, or a camera frame."""
    if frame not in FRAMES:
        raise UsageError(f"--frame must be one of {', '.join(FRAMES)}, not '{frame}'")
    if camera is not None and frame == "gradient":
        return Feed(frame_gradient(camera, seed=BENCH_SEED), frame=True)
    rng = np.random.default_rng(BENCH_SEED)
    if camera is not None:
        return Feed(rng.integers(0, 256, size=camera.frame_bytes, dtype=np.uint8).tobytes(),
                    frame=True)
    return Feed(rng.integers(-128, 128, size=tuple(shape), dtype=np.int8).tobytes())


def _share(part: int | None, counts: Sequence[int | None] | None) -> float | None:
    """``part``'s share of the run whose layers are ``counts`` (None if not measured)."""
    if part is None or not counts or any(c is None for c in counts):
        return None
    total = sum(counts)  # type: ignore[arg-type]
    return part / total if total else None


def bench_model(tflite: bytes, name: str, out: Path | Staging, console: Console, *,
                stream: str = "auto", packing: str = "auto", target: str = BENCH_TARGET,
                board_counts: bool = True, board_cycles: bool = True,
                input_mode: str = "ring", scratch: str = "auto", camera: Camera | None = None,
                preprocessing: Preprocessing | None = None, frame: str = "random"
                ) -> BenchResult:
    """Converts, builds and measures in ``out``: a staging directory, or a path that is then
    written as a whole when the measurement succeeded (converter/atomic.py). `input_mode`,
    `scratch`, `camera` and `preprocessing` are sqz-convert's; with a camera every run is fed
    one seeded frame (`frame`: FRAMES)."""
    if not isinstance(out, Staging):
        with convert.output_directory(Path(out)) as stage:
            return bench_model(tflite, name, stage, console, stream=stream, packing=packing,
                               target=target, board_counts=board_counts,
                               board_cycles=board_cycles, input_mode=input_mode,
                               scratch=scratch, camera=camera, preprocessing=preprocessing,
                               frame=frame)
    out_dir = out.path
    board = targets.load(target)
    if board.counter_unit != "instructions":
        from .device.qemu import BOARDS

        raise UsageError(f"--target {target}: sqz-bench runs on an emulated board that counts "
                         f"instructions; choose {', '.join(sorted(BOARDS))}")
    if frame not in FRAMES:
        raise UsageError(f"--frame must be one of {', '.join(FRAMES)}, not '{frame}'")
    opts = ConvertOptions(stream=stream, input_mode=input_mode, scratch=scratch, camera=camera,
                          preprocessing=preprocessing)
    with console.status("Converting..."):
        conv = convert.convert_tflite(tflite, board, model_name=name, source_name=name,
                                      packing=packing, ram_budget=2**31, psram_budget=0,
                                      plan_ram_budget=board.sram_bytes,
                                      flash_budget=2**31, **opts.kwargs())
        convert.write(conv, tflite, out)
        whole_in = None
        if input_mode != "whole":
            # The same model with its int8 input stored whole (and no camera: a frame only
            # arrives row by row), the conv scratch as chosen above.
            _, whole_in = run_passes(lower(read_model_bytes(tflite)), arch=conv.arch,
                                     stream_mode=stream, input_mode="whole",
                                     packing_mode=packing, scratch=conv.scratch)
    lw = conv.lowered
    g = lw.graph
    shape = g.tensor(lw.input).shape
    feed = _feed(shape, camera, frame)
    counts = _host_counts(tflite, name, out_dir, console, opts, feed, packing)
    board_total, board_layers, note = None, None, ""
    if board_counts:
        try:
            with console.status(f"Running on the emulated {board.name}..."):
                board_total, board_layers = _board_counts(out_dir, feed)
        except (BuildError, DeviceError) as exc:
            note = f"not run: {str(exc).splitlines()[0]}"
    est_cycles, step_cycles, cycles_note = None, None, ""
    from .device.qemu import board_for_target

    emulated = board_for_target(board.name)
    if not (board_counts and board_cycles):
        cycles_note = "not estimated (--no-board or --no-cycles)"
    elif emulated is None or not _core_of(emulated.cpu):
        cycles_note = f"not estimated: {board.name} is not a Cortex-M board"
    elif board_total is None:
        cycles_note = "not estimated: the board did not run"
    else:
        try:
            with console.status(f"Tracing one inference on the emulated {board.name} "
                                "for the cycle estimate..."):
                est_cycles, step_cycles = _board_cycles(
                    out_dir, feed, conv.layout.schedule.ticks, len(lw.steps), emulated.cpu)
        except (BuildError, DeviceError) as exc:
            cycles_note = f"not estimated: {str(exc).splitlines()[0]}"
    with console.status(f"Building for {board.name} (-Os) to measure flash..."):
        flash, code, ram, size_note = _board_size(out_dir, conv.budget.weight_bytes)
    unpacked_host: list[int] | None = None
    unpacked_board: list[int] | None = None
    unpacked_board_total: int | None = None
    if lw.any_packed:
        # What decoding costs: the same model with every filter plain int8.
        unpacked_host = _host_counts(tflite, name, out_dir, console, opts, feed, "off")
        if board_layers:
            plain = convert.convert_tflite(tflite, board, model_name=name, source_name=name,
                                           ram_budget=2**31, psram_budget=0,
                                           flash_budget=2**31, packing="off", **opts.kwargs())
            plain_dir = out_dir / "unpacked"
            convert.write(plain, tflite, plain_dir)
            with console.status(f"Running the unpacked model on the emulated {board.name}..."):
                unpacked_board_total, unpacked_board = _board_counts(plain_dir, feed)

    def at(values: list[int] | None, i: int) -> int | None:
        return values[i] if values and i < len(values) else None

    layers = [LayerCost(i, s.name, s.macs, c, at(board_layers, i), getattr(s, "kernel", ""),
                        _weights_text(s), s.weight_bytes, at(unpacked_host, i),
                        at(unpacked_board, i), at(step_cycles, i))
              for i, (s, c) in enumerate(zip(lw.steps, counts, strict=True))]
    # The input step (ring input): the copies of its rows, or a camera's preprocessing.
    first = next((i for i, s in enumerate(lw.steps) if isinstance(s, InputStep)), None)
    cam = lw.steps[first].camera if first is not None else None
    host_in = counts[first] if first is not None else None
    board_in = at(board_layers, first) if first is not None else None
    return BenchResult(
        model=name, input_shape=list(shape), macs=sum(s.macs for s in lw.steps),
        arena_bytes=conv.layout.arena_bytes, weight_bytes=conv.budget.weight_bytes,
        instructions=sum(counts), layers=layers, host_build="gcc -O2, x86-64, portable",
        cm4_flash_bytes=flash, cm4_code_bytes=code, cm4_ram_bytes=ram,
        cm4_note=f"{board.name} {size_note}", board=board.name, arch=conv.arch,
        board_instructions=board_total, board_note=note, stream=conv.layout.schedule.mode,
        packing=packing,
        unpacked_board_instructions=unpacked_board_total,
        arena_input_whole_bytes=whole_in.arena_bytes if whole_in is not None else None,
        cycles=est_cycles, cycles_note=cycles_note,
        input_mode=input_mode, scratch=conv.scratch,
        camera=str(camera) if camera is not None else None,
        frame=frame if camera is not None else "",
        frame_bytes=camera.frame_bytes if camera is not None else None,
        frame_ring_bytes=cam.ring_rows * cam.row_bytes if cam is not None else None,
        input_instructions=host_in, input_share=_share(host_in, counts),
        board_input_instructions=board_in, board_input_share=_share(board_in, board_layers),
    )


def _per_mac(n: int | None, macs: int) -> str:
    return f"{n / macs:.2f}" if n is not None and macs else "-"


def _extra(packed: int | None, plain: int | None) -> str:
    """Instructions packed weights add over the same layer with plain int8 filters."""
    if packed is None or plain is None or packed == plain:
        return "-"
    return f"{packed - plain:+,} ({packed / plain:.2f}x)"


def _layer_name(r: BenchResult, layer: LayerCost) -> str:
    if r.camera and layer.name == INPUT_LAYER and layer.index == 0:
        return CAMERA_INPUT_LAYER
    return layer.name


def _share_text(n: int | None, share: float | None, missing: str = "not measured") -> str:
    if n is None or share is None:
        return missing
    return f"{n:,} instructions, {100 * share:.2f}% of the inference"


def print_result(r: BenchResult, out: Console, per_layer: bool = True) -> None:
    if per_layer:
        t = Table(title=f"{r.model}: instructions per layer (host: callgrind, {r.host_build}; "
                        f"{r.board}: exact count, {r.arch} kernels)")
        t.add_column("#", justify="right")
        t.add_column("layer")
        t.add_column("MACs", justify="right")
        t.add_column("host", justify="right")
        t.add_column("per MAC", justify="right")
        t.add_column(r.board, justify="right")
        t.add_column("per MAC", justify="right")
        t.add_column("kernel")
        packed = any(layer.unpacked_instructions is not None for layer in r.layers)
        est = any(layer.board_cycles for layer in r.layers)
        core = next(iter(r.cycles.values()))["core"] if r.cycles else ""
        if est:
            t.add_column(f"{core} cycles (estimate, base)", justify="right")
            t.add_column("per MAC", justify="right")
        t.add_column("flash B", justify="right")
        if packed:
            t.add_column("weights")
            t.add_column("decoding (host)", justify="right")
            t.add_column(f"decoding ({r.board})", justify="right")
        for layer in r.layers:
            board = "-" if layer.board_instructions is None else f"{layer.board_instructions:,}"
            row = [str(layer.index), _layer_name(r, layer), f"{layer.macs:,}",
                   f"{layer.instructions:,}",
                   _per_mac(layer.instructions, layer.macs), board,
                   _per_mac(layer.board_instructions, layer.macs), layer.kernel]
            if est:
                c = layer.board_cycles["base"] if layer.board_cycles else None
                row += ["-" if c is None else f"{round(c):,}",
                        _per_mac(None if c is None else round(c), layer.macs)]
            row.append(f"{layer.weight_bytes:,}")
            if packed:
                row += [layer.weights, _extra(layer.instructions, layer.unpacked_instructions),
                        _extra(layer.board_instructions, layer.unpacked_board_instructions)]
            t.add_row(*row)
        out.print(t)
    s = Table(title=f"sqz-bench {r.model} ({'x'.join(map(str, r.input_shape))})",
              show_header=False)
    s.add_row("MACs per inference", f"{r.macs:,}")
    how = ("input made from camera frame rows" if r.camera else
           "input a ring of rows" if r.input_mode == "ring" else "input stored whole")
    s.add_row("peak arena", f"{r.arena_bytes:,} B ({how}, row streaming: {r.stream}, "
              f"scratch: {r.scratch}, packing: {r.packing})")
    if r.arena_input_whole_bytes is not None:
        s.add_row("peak arena, input stored whole", f"{r.arena_input_whole_bytes:,} B "
                  "(--input whole" + (", the int8 input, no camera)" if r.camera else ")"))
    if r.camera:
        s.add_row("camera", f"{r.camera}: a {r.frame} frame of {r.frame_bytes:,} B fed; the "
                  f"firmware keeps {r.frame_ring_bytes:,} B of its rows (outside the arena)")
    s.add_row("flash: weights", f"{r.weight_bytes:,} B")
    if r.cm4_code_bytes is not None:
        s.add_row("flash: code", f"{r.cm4_code_bytes:,} B ({r.cm4_note})")
        s.add_row("flash: total", f"{r.cm4_flash_bytes:,} B")
    else:
        s.add_row("flash: code", r.cm4_note)
    s.add_row("instructions per inference (host)",
              f"{r.instructions:,} ({r.host_build}, callgrind)")
    s.add_row("instructions per MAC (host)", f"{r.instructions_per_mac:.2f}")
    plain_host = sum(layer.unpacked_instructions or 0 for layer in r.layers)
    if plain_host:
        s.add_row("the same with plain int8 filters (host)",
                  f"{plain_host:,} (packed weights cost {r.instructions / plain_host:.3f}x)")
    if r.unpacked_board_instructions and r.board_instructions:
        s.add_row(f"the same with plain int8 filters ({r.board})",
                  f"{r.unpacked_board_instructions:,} (packed weights cost "
                  f"{r.board_instructions / r.unpacked_board_instructions:.3f}x)")
    if r.board_instructions is not None:
        s.add_row(f"instructions per inference ({r.board})",
                  f"{r.board_instructions:,} (QEMU, exact count, {r.arch} kernels)")
        s.add_row(f"instructions per MAC ({r.board})", f"{r.board_instructions_per_mac:.2f}")
    else:
        s.add_row(f"instructions per inference ({r.board})", r.board_note or "not run")
    if r.camera:
        s.add_row("preprocessing (host)", _share_text(r.input_instructions, r.input_share))
        s.add_row(f"preprocessing ({r.board})",
                  _share_text(r.board_input_instructions, r.board_input_share,
                              r.board_note or "not run"))
    for i, c in enumerate((r.cycles or {}).values()):
        what = ("the same instructions timed as" if i else
                f"ESTIMATED cycles per inference ({r.board}:")
        s.add_row(f"{what} {c['core']})" if not i else f"{what} a {c['core']}",
                  f"{round(c['base']):,} base ({_per_mac(round(c['base']), r.macs)} per MAC); "
                  f"optimistic {round(c['optimistic']):,}, pessimistic "
                  f"{round(c['pessimistic']):,}")
    if r.cycles:
        first = next(iter(r.cycles.values()))
        s.add_row("cycle estimate", f"an estimate, not a measurement: the traced run's "
                  f"{first['traced_instructions']:,} instructions costed with a static timing "
                  f"table per core (targets/cycles/; {first['reference']}), zero wait states")
    elif r.cycles_note:
        s.add_row("estimated cycles", r.cycles_note)
    out.print(s)
