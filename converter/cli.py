"""Command-line entry points. One top-level handler turns every SqzError into its message and
exit code; no traceback reaches the user unless SQZ_DEBUG=1 is set."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console

from . import __version__, arch
from .errors import SqzError, UsageError

INTERNAL_ERROR = 70  # EX_SOFTWARE
INTERRUPTED = 130



def _consoles(quiet: bool) -> tuple[Console, Console]:
    # Bound to the streams of this call, so the tools' own output survives when TensorFlow's
    # chatter is redirected away during quantization.
    return (Console(file=sys.stdout, highlight=False, quiet=quiet),
            Console(file=sys.stderr, highlight=False))


class _SigintSeen:
    """Ctrl-C raises KeyboardInterrupt as usual, and is remembered: an interrupt that lands in
    a C extension's import comes out as another exception ("ImportError: initialization
    failed"), and one inside a library may be turned into an error about its file; either is
    then reported as the interruption it was (exit 130)."""

    def __init__(self) -> None:
        self.seen = False
        self.previous = None

    def __call__(self, signum, frame):
        self.seen = True
        raise KeyboardInterrupt

    def __enter__(self) -> _SigintSeen:
        from . import _interrupted_while_starting

        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) in (signal.default_int_handler,
                                                        _interrupted_while_starting)):
            self.previous = signal.signal(signal.SIGINT, self)
        return self

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def run_cli(fn: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None) -> int:
    """Runs one tool and maps its errors to messages and exit codes. ``argv`` None means the
    process is the tool (a console script): an interrupted one then ends without the
    interpreter's shutdown, since Ctrl-C in a C extension's initialisation can leave it half
    set up, and some then crash at shutdown ("Fatal Python error: ... finalizing", SIGABRT,
    seen once in 176 interruptions at random moments). Everything sqz cleans up is done by
    then: the with-blocks have run."""
    rc = _run_cli(fn, argv)
    if rc == INTERRUPTED and argv is None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(rc)
    return rc


def _run_cli(fn: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None) -> int:
    with _SigintSeen() as sigint:
        try:
            return fn(argv)
        except SqzError as exc:
            if sigint.seen:  # e.g. a load that Ctrl-C broke, reported as a bad file
                print("sqz: interrupted", file=sys.stderr)
                return INTERRUPTED
            err = Console(file=sys.stderr, highlight=False)
            err.print(f"[bold red]sqz: {exc.label}:[/] {exc}", markup=True, soft_wrap=True)
            return exc.exit_code
        except KeyboardInterrupt:
            print("sqz: interrupted", file=sys.stderr)
            return INTERRUPTED
        except Exception as exc:  # the last line of defence: report, never a traceback
            if sigint.seen:
                print("sqz: interrupted", file=sys.stderr)
                return INTERRUPTED
            if os.environ.get("SQZ_DEBUG"):
                raise
            print(f"sqz: internal error: {type(exc).__name__}: {exc}\n"
                  "Please report this with the command line (set SQZ_DEBUG=1 for a "
                  "traceback).", file=sys.stderr)
            return INTERNAL_ERROR


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of printing and exiting by itself."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(f"{message} (see {self.prog} --help)")


def parse_size(text: str) -> tuple[int, int]:
    """'96' or '96x128' (height x width)."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise UsageError(f"--input-size '{text}': give N or HxW, e.g. 96 or 96x128") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 1:
        raise UsageError(f"--input-size '{text}': give N or HxW with positive numbers")
    return parts[0], parts[1]


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1 (0 is refused, never taken as 'unset')."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not allowed: give 1 or more")
    return value


def positive_seconds(text: str) -> float:
    """argparse type: a duration in seconds greater than 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not allowed: give a number of seconds "
                                         "above 0, e.g. 30")
    return value


def parse_bytes(text: str) -> int:
    """'256K', '1M', '1.5M' or a plain number of bytes."""
    t = text.strip().upper().removesuffix("B")
    mult = {"K": 1024, "M": 1024 * 1024, "G": 1024**3}.get(t[-1:], 1)
    num = t[:-1] if mult != 1 else t
    try:
        value = float(num)
    except ValueError:
        raise UsageError(f"'{text}' is not a size; write e.g. 256K, 1M or 300000") from None
    if value <= 0:
        raise UsageError(f"'{text}': a budget must be positive")
    return int(value * mult)


def parse_bytes_or_zero(text: str) -> int:
    return 0 if text.strip() == "0" else parse_bytes(text)


# --- sqz-convert -------------------------------------------------------------------------------

def _convert_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="sqz-convert",
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
    p.add_argument("--weights", help="load weights from an .npz (see README)")
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
    p.add_argument("--packing", choices=["ram", "flash", "off"], default="ram",
                   help="filters with few distinct values (sqz-compress) stored as codebook "
                        "indices: ram (where the peak arena stays that of plain int8 filters, "
                        "default), flash (every one packing shrinks, even if the arena grows), "
                        "off (plain int8)")
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
    p.add_argument("--version", action="version", version=f"sqz {__version__}")
    return p


def _convert(argv: Sequence[str] | None) -> int:
    from .pipeline import convert_command

    args = _convert_parser().parse_args(argv)
    return convert_command(args, *_consoles(args.quiet))


def convert_main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_convert, argv)


# --- sqz-validate ------------------------------------------------------------------------------

def _validate_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="sqz-validate",
                description="Run inputs on a device (or simulator) and compare its int8 "
                            "outputs bit for bit with LiteRT's reference kernels.")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--sim", choices=["host", "qemu"],
                       help="build the firmware and run it on a simulated device")
    where.add_argument("--port", help="serial port or pyserial URL of a board (/dev/ttyACM0, "
                       "COM3, socket://host:port, loop://)")
    p.add_argument("--model", type=Path, default=None,
                   help="directory written by sqz-convert (default build/<target>)")
    p.add_argument("-n", type=int, default=None,
                   help="number of inputs (default 10 random, or all given inputs)")
    p.add_argument("--inputs", help="a .npy array (float, preprocessed; or int8) or an image "
                   "folder (preprocessed as at conversion; subfolders = labels)")
    p.add_argument("--tflite", type=Path, help="reference model (default MODEL/model.tflite)")
    p.add_argument("--keras", type=Path, help="float Keras model to compare against as well")
    p.add_argument("--report", type=Path, help="write a JSON report here")
    p.add_argument("--junit", type=Path, help="write JUnit XML here (for hardware CI)")
    p.add_argument("--baud", type=int, default=921600, help="serial baud rate (default 921600)")
    p.add_argument("--timeout", type=positive_seconds, default=None,
                   help="seconds to wait for one inference (default: from the model's MACs)")
    p.add_argument("--per-layer", action="store_true", help="print per-layer counts")
    p.add_argument("--seed", type=int, default=0, help="seed for random inputs (default 0)")
    p.add_argument("-q", "--quiet", action="store_true", help="print the verdict only")
    p.add_argument("--version", action="version", version=f"sqz {__version__}")
    return p


def _validate(argv: Sequence[str] | None) -> int:
    from .validate import validate_command

    args = _validate_parser().parse_args(argv)
    return validate_command(args, *_consoles(args.quiet))


def validate_main(argv: Sequence[str] | None = None) -> int:
    return run_cli(_validate, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(convert_main())
