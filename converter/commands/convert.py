"""sqz-convert: resolve the model, quantize, convert, check the budget, write everything."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from .. import __version__, arch, atomic, convert, passes, targets
from ..errors import UsageError
from ..paths import CHECKOUT
from .common import (
    Parser,
    consoles,
    parse_bytes,
    parse_bytes_or_zero,
    parse_size,
    positive_int,
    run_cli,
    shell_word,
)

PIO_GLUE = CHECKOUT / "build" / "sqz_pio.ini" if CHECKOUT else None


def pio_glue_path() -> Path | None:
    """Where build/sqz_pio.ini goes: the checkout's platformio.ini reads it. An installed sqz
    has no checkout to retarget (None). Tests point it elsewhere (SQZ_PIO_GLUE)."""
    env = os.environ.get("SQZ_PIO_GLUE")
    return Path(env) if env else PIO_GLUE


def _shown(path: Path) -> str:
    """A path as the user would write it: relative to the working directory when inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def default_out(target: str) -> Path:
    return Path("build") / target


def write_pio_glue(target: targets.Target, model_dir: Path) -> Path | None:
    """Point platformio.ini at the model just generated and make its env the default."""
    glue = pio_glue_path()
    if not target.pio_env or glue is None:
        return None
    glue.parent.mkdir(parents=True, exist_ok=True)
    text = (
        "; Written by sqz-convert; platformio.ini includes it through extra_configs.\n"
        "[platformio]\n"
        f"default_envs = {target.pio_env}\n\n"
        "[sqz]\n"
        f"model_dir = {model_dir.resolve()}\n"
    )
    atomic.write_text(glue, text)
    return glue


def measure_image(report, model_dir: Path) -> None:
    """Flash and RAM of the real firmware image, for the boards sqz can build here."""
    from ..device.qemu import board_for_model, build_qemu_firmware, image_size
    from ..errors import BuildError

    try:
        size = image_size(build_qemu_firmware(model_dir))
    except BuildError as exc:
        report.image_note = f"firmware image not measured: {str(exc).splitlines()[0]}"
        return
    report.image = size
    tool = board_for_model(model_dir).size
    report.image_note = (f"firmware image ({tool}, -O2): flash {size['flash']:,} B "
                         f"(text + rodata + data), RAM {size['ram']:,} B (data + bss, arena "
                         "and stack included)")


def convert_command(args, out: Console, err: Console) -> int:
    from ..frontend import sources

    target = targets.load(args.target)
    out_dir: Path = args.out or default_out(target.name)
    if args.calib_samples < 1:
        raise UsageError("--calib-samples must be at least 1")
    export_to = getattr(args, "export", None)
    export_options = ("export_name", "export_image", "export_author", "export_maintainer",
                      "export_url", "export_license")
    authors = None
    if export_to is not None:
        from ..export import Authors, check_options

        authors = Authors(**{k: v for k, v in (
            ("author", args.export_author), ("maintainer", args.export_maintainer),
            ("url", args.export_url), ("license", args.export_license)) if v is not None})
        check_options(export_to, name=args.export_name, version=args.export_version,
                      out_dir=out_dir, image=args.export_image, authors=authors)
        if args.export_image is not None and getattr(args, "camera", None) is not None:
            raise UsageError("--export-image goes with plain models: a camera model's examples "
                             "classify a synthetic frame made on the device; leave out "
                             "--export-image (or convert without --camera)")
        if args.export_image is not None:
            from ..frontend.preprocess import check_image

            check_image(args.export_image, "--export-image")
    elif any(getattr(args, k, None) for k in export_options):
        raise UsageError("--export-name, --export-image, --export-author, --export-maintainer, "
                         "--export-url and --export-license go with --export DIR")
    if args.model is None:
        from ..frontend.example import example_model_args

        model, calib, preprocess = example_model_args()
        args.calib = args.calib or calib
        args.preprocess = args.preprocess or preprocess
        out.print(f"No model given: using the bundled example [bold]{model}[/]")
    else:
        model = args.model

    from ..frontend.quantize import captured_output
    from ..report import build_report, write_reports

    camera = None
    if args.camera is not None:
        from ..frontend.camera import Camera

        camera = Camera.parse(args.camera)  # a bad spec fails before the slow work
    # --out is checked and locked before the slow work, and written as a whole at the end.
    with convert.output_directory(out_dir) as stage:
        # Without an export, nothing but the summary follows the swap: a Ctrl-C during or after
        # it no longer turns a complete new output into "interrupted" (atomic._signals_held).
        stage.last_output = export_to is None
        with out.status("Loading and quantizing the model (TensorFlow)..."), captured_output():
            src = sources.resolve(model, weights=args.weights, input_size=args.input_size,
                                  channels=args.channels, classes=args.classes,
                                  calib=args.calib, calib_samples=args.calib_samples,
                                  preprocess=args.preprocess)
        for w in src.warnings:
            err.print(f"[bold yellow]warning:[/] {w}", soft_wrap=True)

        with out.status("Converting to C..."):
            conv = convert.convert_tflite(src.tflite, target, model_name=src.name,
                                          source_name=src.source_name, stream=args.stream,
                                          packing=args.packing, input_mode=args.input,
                                          scratch=args.scratch, camera=camera,
                                          preprocessing=src.preprocessing,
                                          arch=getattr(args, "arch", None),
                                          ram_budget=args.ram_budget,
                                          psram_budget=args.psram_budget,
                                          flash_budget=args.flash_budget,
                                          input_size_option=src.input_size_option)
        report = build_report(conv, calibration=src.calibration)
        extra: dict[str, bytes] = {}
        if src.class_names is not None:
            extra["classes.json"] = (json.dumps(src.class_names, indent=2) + "\n").encode()
        if src.preprocessing is not None:
            extra["preprocess.json"] = (json.dumps(src.preprocessing.to_dict(), indent=2,
                                                   sort_keys=True) + "\n").encode()
        if src.compression is not None:  # sqz-compress's record: density, bits, codebook
            extra["compress.json"] = (json.dumps(src.compression, indent=2, sort_keys=True)
                                      + "\n").encode()
        convert.write(conv, src.tflite, stage, extra=extra)
        from ..device.qemu import board_for_target

        board = board_for_target(target.name)
        if board is not None:
            with out.status(f"Building the {board.cpu} image to measure it..."):
                measure_image(report, stage.path)
        write_reports(report, conv, stage)
        if src.keras_model is not None:
            # Kept so that sqz-validate can compare the board with the float model too.
            src.keras_model.save(stage.file("float_model.keras"))
            atomic.checkpoint("staged float_model.keras")
        sample = None
        if export_to is not None:
            # Every input of the export is read before --out is swapped: a bad --export-image
            # must leave the previous conversion in place.
            from ..export import pick_sample

            shape = conv.lowered.graph.tensor(conv.lowered.input).shape[1:]
            # A camera model's examples classify a synthetic frame (export_library makes it).
            sample = None if conv.camera is not None else pick_sample(
                args.export_image, args.calib, src.preprocessing, tuple(shape))
    glue = write_pio_glue(target, out_dir)
    lib = None
    if export_to is not None:
        from ..export import export_library

        with out.status("Exporting the library (and running the reference on its sample)..."):
            lib = export_library(out_dir, export_to, name=args.export_name,
                                 version=args.export_version, sample=sample, conv=conv,
                                 authors=authors)

    out.print(report.summary_text())
    from rich.markup import escape

    out.print(f"Wrote [bold]{escape(str(out_dir))}[/]: model.c, model_data.c, model.h, "
              "sqz_target.h, model.tflite, report.md/json/png")
    if lib is not None:
        out.print(f"Exported [bold]{lib.name}[/] {lib.version} to [bold]{lib.path}[/], its "
                  f"runtime to [bold]{_shown(lib.runtime)}[/]: PlatformIO/Arduino libraries, "
                  "ESP-IDF components and CMake libraries, with examples (see its README.md)")
    shown_out = shell_word(out_dir)
    if glue is not None and board is not None:
        # Both build and run the same firmware on QEMU: --sim qemu by itself, PlatformIO with
        # sqz's local platform (firmware/tools/pio_qemu: the upload prints the UART's URL).
        out.print(f"Next: [bold]sqz-validate --sim qemu --model {shown_out}[/]; or with "
                  f"PlatformIO: [bold]pio run -t upload[/] (env {target.pio_env}: starts QEMU "
                  f"and prints its port), then [bold]sqz-validate --port "
                  f"socket://127.0.0.1:PORT --model {shown_out}[/]")
    elif glue is not None:
        out.print(f"Next: [bold]pio run -t upload[/] (env {target.pio_env}), then "
                  f"[bold]sqz-validate --port /dev/ttyACM0 --model {shown_out}[/]")
    elif target.name == "host":
        out.print(f"Next: [bold]sqz-validate --sim host --model {shown_out}[/]")
    elif board is not None:
        out.print(f"Next: [bold]sqz-validate --sim qemu --model {shown_out}[/]")
    elif lib is None:
        out.print("Next: add [bold]--export DIR[/] to get the model as a library for your "
                  "firmware")
    return 0


# --- the command line ---------------------------------------------------------------------------

def _convert_parser() -> argparse.ArgumentParser:
    p = Parser(prog="sqz-convert",
                description="Quantize a SqueezeNet to int8 and generate bit-exact C for a board.")
    p.add_argument("model", nargs="?", default=None,
                   help="a builtin name (squeezenet1_1, ...), a .keras/.h5 model or an int8 "
                        ".tflite; default: the bundled example model")
    p.add_argument("--target", default="esp32s3", help="board profile from targets/ "
                   "(default esp32s3)")
    p.add_argument("--out", type=Path, default=None,
                   help="output directory (default build/<target>)")
    p.add_argument("--calib", help="calibration data: an image folder or a .npy array of "
                   "preprocessed float inputs")
    p.add_argument("--calib-samples", type=int, default=100,
                   help="at most this many calibration samples (default 100)")
    p.add_argument("--weights", help="load weights from an .npz (see docs/models.md)")
    p.add_argument("--input-size", type=parse_size, help="builtin models: N or HxW")
    p.add_argument("--channels", type=positive_int, help="builtin models: input channels")
    p.add_argument("--classes", type=positive_int, help="builtin models: number of classes")
    p.add_argument("--preprocess", help="imagenet, simple, or a preprocessing JSON file")
    p.add_argument("--ram-budget", type=parse_bytes,
                   help="override the board's internal SRAM for data (e.g. 256K)")
    p.add_argument("--psram-budget", type=parse_bytes_or_zero,
                   help="override the board's PSRAM (0: keep the arena out of PSRAM)")
    p.add_argument("--flash-budget", type=parse_bytes, help="override the board's flash budget")
    p.add_argument("--stream", choices=["auto", "off", "full"], default="auto",
                   help="row streaming: auto (where it lowers the peak arena, default), off "
                        "(whole tensors, conv+max-pool fused), full (every row-wise layer)")
    p.add_argument("--input", choices=["ring", "whole"], default="ring",
                   help="ring: the input arrives row by row and is kept only as long as the "
                        "layers still read each row (default); whole: stored whole before the "
                        "run")
    p.add_argument("--camera", metavar="FORMAT:WxH[:RESIZE][:FIT]",
                   help="feed the model from camera frames, converted on the device row by row: "
                        "FORMAT rgb565le, rgb565be, rgb888, gray8 or yuyv; the frame's size; "
                        "RESIZE bilinear (default) or nearest; FIT crop (default), letterbox "
                        "or stretch. E.g. rgb565le:320x240 (docs/camera.md)")
    p.add_argument("--scratch", choices=["auto", "full", "least"], default="auto",
                   help="conv scratch: full (each kernel's fastest blocks), least (the "
                        "smallest blocks the kernel runs with: a smaller arena, a little "
                        "slower), auto (full, or least when full does not fit; default)")
    p.add_argument("--packing", choices=list(passes.PACKING_MODES), default="auto",
                   help="filters with few distinct values (sqz-compress) stored as codebook "
                        "indices: auto (every one packing shrinks while the whole firmware's "
                        "RAM fits the board's SRAM; default), ram (only where the peak arena "
                        "stays that of plain int8 filters), flash (every one packing shrinks, "
                        "even if the arena grows), off (plain int8)")
    p.add_argument("--arch", choices=arch.available(), default=None,
                   help="kernel variants to build in (default: the board profile's, e.g. "
                        "armv7em for mps2-an386; portable: the portable C kernels only)")
    lib = p.add_argument_group("library export (the model in your own firmware)")
    lib.add_argument("--export", type=Path, metavar="DIR",
                     help="also write the model and runtime as a library for your firmware: "
                          "PlatformIO, Arduino, ESP-IDF component and CMake, with examples")
    lib.add_argument("--export-name", metavar="NAME",
                     help="library name (default sqz_<model>)")
    lib.add_argument("--export-version", metavar="X.Y.Z", default="1.0.0",
                     help="library version (default 1.0.0)")
    lib.add_argument("--export-image", metavar="FILE",
                     help="the image the library's examples classify (default: the first "
                          "calibration image)")
    lib.add_argument("--export-author", metavar="TEXT",
                     help="the library's author in library.json and library.properties, e.g. "
                          "'Jane Doe <jane@example.com>' (default sqz-convert)")
    lib.add_argument("--export-maintainer", metavar="TEXT",
                     help="the library's maintainer (default: the author)")
    lib.add_argument("--export-url", metavar="URL",
                     help="the library's homepage (default: sqz's)")
    lib.add_argument("--export-license", metavar="SPDX",
                     help="the library's license as an SPDX identifier, e.g. MIT (default: "
                          "none stated)")
    p.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    p.add_argument("-V", "--version", action="version", version=f"sqz {__version__}")
    return p


def _convert(argv: Sequence[str] | None) -> int:
    args = _convert_parser().parse_args(argv)
    return convert_command(args, *consoles(args.quiet))


def convert_main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_convert, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(convert_main())
