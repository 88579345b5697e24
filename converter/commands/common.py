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

from rich.console import Console

from ..errors import INTERNAL_ERROR, INTERRUPTED, SqzError, UsageError

# Where the output is not a terminal (a log, a pipe, CI), lines are never wrapped: rich would
# cut them at 80 columns, in the middle of a path or of a command to copy. Tables get this
# width to lay themselves out in.
UNWRAPPED_WIDTH = 400


def _console(stream, **kw) -> Console:
    terminal = hasattr(stream, "isatty") and stream.isatty()
    return Console(file=stream, highlight=False, soft_wrap=True,
                   width=None if terminal else UNWRAPPED_WIDTH, **kw)


def consoles(quiet: bool) -> tuple[Console, Console]:
    # Bound to the streams of this call, so the tools' own output survives when TensorFlow's
    # chatter is redirected away during quantization.
    return _console(sys.stdout, quiet=quiet), _console(sys.stderr)


def shell_word(path: object) -> str:
    """A path as one word of a shell command the user can paste (quoted if it has spaces or
    other special characters), escaped for rich markup."""
    import shlex

    from rich.markup import escape

    return escape(shlex.quote(str(path)))


def quiet_tensorflow() -> None:
    """Imports TensorFlow and Keras with file descriptor 2 captured: their C++ start-up lines
    ("All log messages before absl::InitializeLog() ...", "Could not find cuda drivers ...")
    come before any Python setting can silence them, and mean nothing to sqz's users."""
    from ..frontend.quantize import _quiet_tensorflow, captured_output

    with captured_output():
        _quiet_tensorflow()
        import keras  # noqa: F401


class _SigintSeen:
    """Ctrl-C raises KeyboardInterrupt as usual, and is remembered: an interrupt that lands in
    a C extension's import comes out as another exception ("ImportError: initialization
    failed"), and one inside a library may be turned into an error about its file; either is
    then reported as the interruption it was (exit 130)."""

    def __init__(self) -> None:
        self.seen = False
        self.previous = None

    def __call__(self, signum, frame):
        from .. import atomic

        self.seen = True
        atomic.interrupt_seen = True  # no output is replaced after this (atomic.py)
        raise KeyboardInterrupt

    def __enter__(self) -> _SigintSeen:
        from .. import _interrupted_while_starting, atomic

        atomic.interrupt_seen = False  # a new run (tests run several in one process)

        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) in (signal.default_int_handler,
                                                        _interrupted_while_starting)):
            self.previous = signal.signal(signal.SIGINT, self)
        return self

    def __exit__(self, *exc) -> None:
        from .. import atomic

        atomic.interrupt_seen = False
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def run_cli(fn: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None) -> int:
    """Runs one tool and maps its errors to messages and exit codes. ``argv`` None means the
    process is the tool (a console script): an interrupted one then ends without the
    interpreter's shutdown, since Ctrl-C in a C extension's initialisation can leave it half
    set up, and some then crash at shutdown ("Fatal Python error: ... finalizing", SIGABRT,
    seen once in 176 interruptions at random moments). Everything sqz cleans up is done by
    then: the with-blocks have run."""
    late: list[int] = []
    rc = _run_cli(fn, argv, late)
    if sum(late) and rc != INTERRUPTED:
        # The swap held Ctrl-C back and then let the run finish: its output is whole and new.
        print("sqz: Ctrl-C came when the new output was already in place; it is complete, so "
              "the run finished normally", file=sys.stderr)
    if argv is None and rc != INTERRUPTED:
        # The work is done and reported: a Ctrl-C during the interpreter's shutdown must not
        # turn that into "interrupted" (exit 130) or kill it without a word.
        with contextlib.suppress(ValueError, OSError):
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    if rc == INTERRUPTED and argv is None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(rc)
    return rc


def _run_cli(fn: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None,
             late: list[int]) -> int:
    from .. import atomic

    with _SigintSeen() as sigint:
        try:
            try:
                return fn(argv)
            finally:  # before _SigintSeen puts its predecessor back
                late.append(atomic.end_of_run())
        except SqzError as exc:
            if sigint.seen:  # e.g. a load that Ctrl-C broke, reported as a bad file
                print("sqz: interrupted", file=sys.stderr)
                return INTERRUPTED
            err = _console(sys.stderr)
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


class Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of printing and exiting by itself."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(f"{message} (see {self.prog} --help)")


# Far beyond any board's memory already, and small enough that building the float model (which
# happens before the budget check) cannot exhaust the host's memory (MemoryError, exit 70).
MAX_INPUT_SIDE = 1024


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
    if max(parts) > MAX_INPUT_SIDE:
        raise UsageError(f"--input-size '{text}': at most {MAX_INPUT_SIDE} pixels a side: "
                         "already at 1024 the first layer's activations of a SqueezeNet are many "
                         "megabytes, more than a microcontroller holds; give e.g. 96 or 224")
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
