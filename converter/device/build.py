"""Compile the C runtime and generated models for the host with the system compiler.

All host builds share these flags; `-Werror` keeps the runtime warning-free as the project
promises, and sanitizer builds add ASan and UBSan with recovery disabled so any finding fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from .. import arch
from ..errors import BuildError
from ..paths import FIRMWARE, require

WARN_FLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic")
SANITIZE_FLAGS = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                  "-fno-omit-frame-pointer")


def compiler() -> str:
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        raise BuildError(f"C compiler '{cc}' not found; install gcc (or set CC)")
    return cc


def runtime_sources() -> list[Path]:
    return sorted(require(FIRMWARE / "src" / "runtime").glob("*.c"))


def model_runtime_sources(model_dir: Path) -> list[Path]:
    """The runtime C and assembly the model in `model_dir` links against: the executor, its
    nodes' adapters and the kernel variants its layers use, as the conversion recorded them in
    sqz.json (an older model directory without that list gets every portable kernel and every
    variant of its architecture)."""
    meta = Path(model_dir) / "sqz.json"
    try:
        used = json.loads(meta.read_text()).get("runtime_sources")
    except (OSError, ValueError):
        used = None
    if used:
        return [require(FIRMWARE / "src" / f) for f in used]
    return [*runtime_sources(), *arch.sources(arch.of_model_dir(model_dir))]


def include_dirs() -> list[Path]:
    return [FIRMWARE / "include"]


def compile_c(sources: Sequence[Path], out: Path, *, includes: Sequence[Path] = (),
              opt: str = "-O2", sanitize: bool = False, extra: Sequence[str] = (),
              warn: Sequence[str] = WARN_FLAGS) -> Path:
    """Compile and link `sources` into the executable `out`; raises BuildError with the log."""
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [compiler(), *warn, opt]
    if sanitize:
        cmd += [*SANITIZE_FLAGS, "-g"]
    for inc in [*include_dirs(), *includes]:
        cmd += ["-I", str(inc)]
    cmd += [*extra, *(str(s) for s in sources), "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        log = (proc.stderr or proc.stdout).strip()
        raise BuildError(f"compiling {out.name} failed:\n{log[-4000:]}")
    return out


def firmware_headers(model_dir: Path) -> list[Path]:
    """Every header a firmware build reads: the runtime's, the app's and the model's."""
    return [*sorted((FIRMWARE / "include").rglob("*.h")),
            *sorted((FIRMWARE / "src").rglob("*.h")), model_dir / "model.h",
            model_dir / "sqz_target.h"]


def content_digest(flags: object, files: Sequence[Path]) -> str:
    """A short hash of the build flags and of every input file's name and bytes: the cache key
    of a firmware build, so an unchanged firmware is never rebuilt and a changed one always
    is."""
    h = hashlib.sha256()
    h.update(repr(flags).encode())
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def build_runtime_objects(out_dir: Path, *, opt: str = "-O2", sanitize: bool = False
                          ) -> list[Path]:
    """Compile the runtime once into objects that many model builds can link against."""
    out_dir.mkdir(parents=True, exist_ok=True)
    objs = []
    for src in runtime_sources():
        obj = out_dir / (src.stem + ".o")
        compile_c([src], obj, opt=opt, sanitize=sanitize, extra=("-c",))
        objs.append(obj)
    return objs


def build_runner(model_dir: Path, out: Path, *, opt: str = "-O2", sanitize: bool = False,
                 runtime_objects: Sequence[Path] | None = None) -> Path:
    """The batch runner: the generated model plus firmware/tools/runner.c (stdin -> stdout),
    with the kernel variants of the architecture the model was converted for."""
    model_dir = Path(model_dir)
    runtime = list(runtime_objects) if runtime_objects is not None else runtime_sources()
    sources = [*runtime, *arch.sources(arch.of_model_dir(model_dir)), model_dir / "model.c",
               model_dir / "model_data.c", FIRMWARE / "tools" / "runner.c"]
    for s in sources:
        require(s)
    return compile_c(sources, out, includes=[model_dir], opt=opt, sanitize=sanitize)
