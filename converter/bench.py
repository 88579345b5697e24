"""sqz-bench: what a model costs, measured rather than estimated.

* Peak arena bytes: the memory plan of the conversion.
* Flash: the weights (exact bytes of model_data.c's arrays) and the code, from
  arm-none-eabi-size on a Cortex-M4 -Os build of the firmware for the mps2-an386 board
  (runtime, protocol application, port and schedule, linked with --gc-sections).
* Instructions per inference of the host -O2 build, counted by valgrind's callgrind, which
  counts executed instructions deterministically (the same binary and input give the same
  count on any x86-64 machine and under any load), per layer and in total.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from . import atomic, convert, sources, targets
from .atomic import Staging
from .build import FIRMWARE, compile_c, runtime_sources
from .cli import _consoles, _Parser, parse_size, positive_int, run_cli
from .errors import BuildError

BENCH_TARGET = "mps2-an386"
BENCH_CFLAGS = ("-std=gnu99", "-Wall", "-Wextra", "-Werror")  # callgrind.h needs GNU C
BENCH_SEED = 0


@dataclass(frozen=True)
class LayerCost:
    index: int
    name: str
    macs: int
    instructions: int


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

    @property
    def instructions_per_mac(self) -> float:
        return self.instructions / self.macs if self.macs else 0.0


def _callgrind_counts(exe: Path, input_bytes: bytes, n_steps: int) -> list[int]:
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
        for i in range(1, n_steps + 1):
            text = Path(f"{out}.{i}").read_text()
            m = re.search(r"^totals:\s+(\d+)", text, re.M) or re.search(
                r"^summary:\s+(\d+)", text, re.M)
            counts.append(int(m.group(1)) if m else 0)
        return counts


def _cm4_size(model_dir: Path, weight_bytes: int) -> tuple[int | None, int | None, int | None,
                                                           str]:
    try:
        from .qemu import build_qemu_firmware, image_size
    except ImportError:  # pragma: no cover - the module ships with sqz
        return None, None, None, "the Cortex-M4 build is unavailable"
    if shutil.which("arm-none-eabi-gcc") is None:
        return None, None, None, ("skipped: arm-none-eabi-gcc not installed (apt-get install "
                                  "gcc-arm-none-eabi libnewlib-arm-none-eabi)")
    with tempfile.TemporaryDirectory(prefix="sqz-cm4-") as tmp:
        elf = build_qemu_firmware(model_dir, Path(tmp), opt="-Os")
        size = image_size(elf)
    flash = size["flash"]
    return flash, flash - weight_bytes, size["ram"], "Cortex-M4 -Os, linked with --gc-sections"


def bench_model(tflite: bytes, name: str, out: Path | Staging, console: Console
                ) -> BenchResult:
    """Converts, builds and measures in ``out``: a staging directory, or a path that is then
    written as a whole (converter/atomic.py)."""
    if not isinstance(out, Staging):
        with convert.output_directory(Path(out)) as stage:
            return bench_model(tflite, name, stage, console)
    out_dir = out.path
    target = targets.load(BENCH_TARGET)
    with console.status("Converting..."):
        conv = convert.convert_tflite(tflite, target, model_name=name, source_name=name,
                                      ram_budget=2**31, psram_budget=0,
                                      flash_budget=2**31)
        convert.write(conv, tflite, out)
    lw = conv.lowered
    g = lw.graph
    shape = g.tensor(lw.input).shape
    rng = np.random.default_rng(BENCH_SEED)
    x = rng.integers(-128, 128, size=shape, dtype=np.int8)
    with console.status("Building the host benchmark (-O2)..."):
        exe = compile_c([*runtime_sources(), out_dir / "model.c", out_dir / "model_data.c",
                         FIRMWARE / "tools" / "bench.c"], out_dir / "bench", opt="-O2",
                        includes=[out_dir], warn=BENCH_CFLAGS)
    with console.status("Counting instructions with callgrind..."):
        counts = _callgrind_counts(exe, x.tobytes(), len(lw.steps))
    layers = [LayerCost(i, s.name, s.macs, c) for i, (s, c) in
              enumerate(zip(lw.steps, counts, strict=True))]
    with console.status("Building for Cortex-M4 (-Os) to measure flash..."):
        flash, code, ram, note = _cm4_size(out_dir, conv.budget.weight_bytes)
    return BenchResult(
        model=name, input_shape=list(shape), macs=sum(s.macs for s in lw.steps),
        arena_bytes=conv.layout.arena_bytes, weight_bytes=conv.budget.weight_bytes,
        instructions=sum(counts), layers=layers, host_build="gcc -O2, x86-64",
        cm4_flash_bytes=flash, cm4_code_bytes=code, cm4_ram_bytes=ram, cm4_note=note,
    )


def print_result(r: BenchResult, out: Console, per_layer: bool = True) -> None:
    if per_layer:
        t = Table(title=f"{r.model}: instructions per layer (callgrind, {r.host_build})")
        t.add_column("#", justify="right")
        t.add_column("layer")
        t.add_column("MACs", justify="right")
        t.add_column("instructions", justify="right")
        t.add_column("per MAC", justify="right")
        for layer in r.layers:
            per = f"{layer.instructions / layer.macs:.2f}" if layer.macs else "-"
            t.add_row(str(layer.index), layer.name, f"{layer.macs:,}",
                      f"{layer.instructions:,}", per)
        out.print(t)
    s = Table(title=f"sqz-bench {r.model} ({'x'.join(map(str, r.input_shape))})",
              show_header=False)
    s.add_row("MACs per inference", f"{r.macs:,}")
    s.add_row("peak arena", f"{r.arena_bytes:,} B")
    s.add_row("flash: weights", f"{r.weight_bytes:,} B")
    if r.cm4_code_bytes is not None:
        s.add_row("flash: code", f"{r.cm4_code_bytes:,} B ({r.cm4_note})")
        s.add_row("flash: total", f"{r.cm4_flash_bytes:,} B")
    else:
        s.add_row("flash: code", r.cm4_note)
    s.add_row("instructions per inference", f"{r.instructions:,} ({r.host_build}, callgrind)")
    s.add_row("instructions per MAC", f"{r.instructions_per_mac:.2f}")
    out.print(s)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="sqz-bench", description="Measure a model's arena, flash and "
                "instructions per inference (callgrind).")
    p.add_argument("model", help="builtin name, .keras/.h5 or int8 .tflite")
    p.add_argument("--input-size", type=parse_size, help="builtin models: N or HxW")
    p.add_argument("--channels", type=positive_int, help="builtin models: input channels")
    p.add_argument("--classes", type=positive_int, help="builtin models: number of classes")
    p.add_argument("--weights", help="load weights from an .npz")
    p.add_argument("--calib", help="calibration data (image folder or .npy)")
    p.add_argument("--out", type=Path, default=None,
                   help="work directory (default build/bench/<model>)")
    p.add_argument("--json", type=Path, help="write the figures as JSON here")
    p.add_argument("--no-layers", action="store_true", help="totals only")
    return p


def _bench(argv: Sequence[str] | None) -> int:
    from .quantize import captured_output

    args = _parser().parse_args(argv)
    out, err = _consoles(False)
    if args.json:
        atomic.check_writable_file(args.json, "--json")  # before minutes of measuring
    # The default work directory is named after the model, known only once it is loaded.
    with contextlib.ExitStack() as stack:
        stage = (stack.enter_context(convert.output_directory(args.out)) if args.out else None)
        with out.status("Loading and quantizing the model (TensorFlow)..."), captured_output():
            src = sources.resolve(args.model, weights=args.weights,
                                  input_size=args.input_size, channels=args.channels,
                                  classes=args.classes, calib=args.calib, calib_samples=16)
        work = stage or Path("build") / "bench" / src.name
        result = bench_model(src.tflite, src.name, work, out)
    print_result(result, out, per_layer=not args.no_layers)
    if args.json:
        data = asdict(result)
        data["instructions_per_mac"] = result.instructions_per_mac
        atomic.write_text(args.json, json.dumps(data, indent=2) + "\n")
    return 0


def bench_main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_bench, argv)
