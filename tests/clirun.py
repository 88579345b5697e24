"""Helpers the emulated-board tests share: the CLI as installed (or as a module when the
scripts are not on PATH), and a model directory whose arena claims more than a board holds."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path


def default_sigint() -> None:
    """preexec_fn for a child a test interrupts: SIGINT back to its default. A shell starts a
    background job (`pytest ... &`, nohup) with SIGINT ignored, the child inherits that, and
    Python then installs no KeyboardInterrupt handler, so the test's Ctrl-C would do nothing."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli(name: str) -> list[str]:
    script = Path(sys.executable).with_name(name)
    if script.is_file():
        return [str(script)]
    command = name.removeprefix("sqz-")
    return [sys.executable, "-m", f"converter.commands.{command}"]


def with_arena(model_dir: Path, dest: Path, arena_bytes: int) -> Path:
    """A copy of `model_dir` whose model.h asks for `arena_bytes` of arena."""
    shutil.copytree(model_dir, dest)
    header = dest / "model.h"
    header.write_text(re.sub(r"(#define SQZ_MODEL_ARENA_BYTES )\d+u",
                             rf"\g<1>{arena_bytes}u", header.read_text()))
    return dest
