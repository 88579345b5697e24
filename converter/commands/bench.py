"""sqz-bench: the command; the measurements are in converter.bench."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from .. import __version__, atomic, convert
from ..bench import BENCH_TARGET, FRAMES, bench_model, print_result
from ..errors import UsageError
from ..frontend import sources
from ..passes import PACKING_MODES
from .common import Parser, consoles, parse_size, positive_int, run_cli


def _parser() -> argparse.ArgumentParser:
    p = Parser(prog="sqz-bench", description="Measure a model's arena, flash and "
                "instructions per inference: on the host (callgrind) and on an emulated board "
                "(QEMU's exact instruction count).")
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
    p.add_argument("--stream", choices=["auto", "off", "full"], default="auto",
                   help="row streaming, as sqz-convert --stream")
    p.add_argument("--packing", choices=list(PACKING_MODES), default="auto",
                   help="which filters are stored packed, as sqz-convert --packing")
    p.add_argument("--input", choices=["ring", "whole"], default="ring",
                   help="the input arrives row by row into a ring (default) or is stored "
                        "whole, as sqz-convert --input")
    p.add_argument("--scratch", choices=["auto", "full", "least"], default="auto",
                   help="conv scratch, as sqz-convert --scratch (auto: full here, the "
                        "benchmark has no RAM budget)")
    p.add_argument("--camera", metavar="FORMAT:WxH[:RESIZE][:FIT]",
                   help="the model takes camera frames, converted on the device row by row, "
                        "as sqz-convert --camera (e.g. rgb565le:320x240); a frame is fed and "
                        "the preprocessing reported on its own")
    p.add_argument("--preprocess", help="with --camera: imagenet, simple or a preprocessing "
                   "JSON file (default: the model's own, as sqz-convert)")
    p.add_argument("--frame", choices=list(FRAMES), default="random",
                   help="with --camera, the frame fed: seeded random bytes (default) or the "
                        "synthetic gradient (sqz_camera_gradient_byte)")
    p.add_argument("--target", default=BENCH_TARGET,
                   help=f"the emulated board to count on (default {BENCH_TARGET})")
    p.add_argument("--no-board", action="store_true",
                   help="skip the run on the emulated board (host figures and flash only)")
    p.add_argument("--no-cycles", action="store_true",
                   help="skip the traced run that estimates Cortex-M cycles")
    p.add_argument("-V", "--version", action="version", version=f"sqz {__version__}")
    return p


def _bench(argv: Sequence[str] | None) -> int:
    from ..frontend.quantize import captured_output

    args = _parser().parse_args(argv)
    out, err = consoles(False)
    if not out.is_terminal:
        out.width = max(out.width, 150)  # the per-layer table, whole, in logs and files
    if args.json:
        atomic.check_writable_file(args.json, "--json")  # before minutes of measuring
    camera = None
    if args.camera is not None:
        from ..frontend.camera import Camera

        camera = Camera.parse(args.camera)  # a bad spec fails before the slow work
        if args.input == "whole":
            raise UsageError("--camera makes the input from frame rows as they arrive: it "
                             "needs --input ring (the default), not --input whole")
    elif args.preprocess is not None or args.frame != "random":
        raise UsageError("--preprocess and --frame go with --camera")
    # The default work directory is named after the model, known only once it is loaded.
    with contextlib.ExitStack() as stack:
        stage = stack.enter_context(convert.output_directory(args.out)) if args.out else None
        with out.status("Loading and quantizing the model (TensorFlow)..."), captured_output():
            src = sources.resolve(args.model, weights=args.weights,
                                  input_size=args.input_size, channels=args.channels,
                                  classes=args.classes, calib=args.calib, calib_samples=16,
                                  preprocess=args.preprocess)
        work = stage or Path("build") / "bench" / src.name
        result = bench_model(src.tflite, src.name, work, out, stream=args.stream,
                             packing=args.packing, target=args.target,
                             board_counts=not args.no_board,
                             board_cycles=not args.no_cycles, input_mode=args.input,
                             scratch=args.scratch, camera=camera,
                             preprocessing=src.preprocessing if camera else None,
                             frame=args.frame)
    print_result(result, out, per_layer=not args.no_layers)
    if args.json:
        data = asdict(result)
        data["instructions_per_mac"] = result.instructions_per_mac
        data["board_instructions_per_mac"] = result.board_instructions_per_mac
        atomic.write_text(args.json, json.dumps(data, indent=2) + "\n")
    return 0


def bench_main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_bench, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(bench_main())
