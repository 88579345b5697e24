"""Kernel architectures: the registry of kernel variants, and the firmware sources each needs.

The converter mirrors firmware/src/arch/ here, one module per architecture: portable.py (the
portable C kernels of firmware/src/runtime/, the reference and the fallback, always built) and
one module per folder firmware/src/arch/<arch>/ (armv7em.py, esp32s3.py, ...). Each module
declares `ARCH`, `HOST_RUNNABLE` and its kernels in `KERNELS` (converter.arch.kernel); adding an
architecture adds a folder on the C side and a module here, and touches nothing else. This
registry finds the modules by listing the package, so it imports no variant by name.

The board profile (targets/<board>.toml, key `arch`) names the architecture; the converter picks,
per layer, the first kernel of that architecture that supports the layer, else the portable one,
and every build of a firmware (host, QEMU, PlatformIO, export) takes its source list from here,
so they cannot disagree.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path
from types import ModuleType

from ..errors import InputFileError
from ..paths import FIRMWARE
from .kernel import ConvKernel, ConvLayer, PoolKernel, PoolLayer

PORTABLE = "portable"
ARCH_DIR = FIRMWARE / "src" / "arch"
SOURCE_SUFFIXES = (".c", ".S")
_NOT_VARIANTS = {"kernel"}


def _discover() -> dict[str, ModuleType]:
    found = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name in _NOT_VARIANTS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found[module.ARCH] = module
    return found


VARIANTS: dict[str, ModuleType] = _discover()
# Every kernel by its C symbol: the IR names a layer's kernel by symbol (ir.steps).
_CONV = {k.symbol: k for m in VARIANTS.values() for k in m.KERNELS if isinstance(k, ConvKernel)}
_POOL = {k.symbol: k for m in VARIANTS.values() for k in m.KERNELS if isinstance(k, PoolKernel)}


def available() -> list[str]:
    """Every architecture sqz knows: portable first, then the variants in name order."""
    return [PORTABLE, *sorted(a for a in VARIANTS if a != PORTABLE)]


def check(arch: str, where: str) -> str:
    if arch not in available():
        raise InputFileError(f"{where}: unknown arch '{arch}'; available: "
                             f"{', '.join(available())}")
    return arch


def runs_on_host(arch: str) -> bool:
    """Whether the architecture's variants also build and run on the host, computing in plain
    C what their instructions compute (armv7em: dsp.h; esp32s3: C twins of the PIE loops), so
    that the host tests cover them too."""
    return bool(VARIANTS[arch].HOST_RUNNABLE) if arch in VARIANTS else False


def conv_kernel(symbol: str) -> ConvKernel:
    return _CONV[symbol]


def pool_kernel(symbol: str) -> PoolKernel:
    return _POOL[symbol]


def _kernels(arch: str, kind: type) -> list:
    module = VARIANTS.get(arch)
    return [k for k in (module.KERNELS if module else ()) if isinstance(k, kind)]


def select_conv(s: ConvLayer, arch: str) -> ConvKernel:
    """The first kernel of `arch` that takes the layer, else the portable one; packed filters
    take a packed kernel, dense ones a dense kernel, grouped layers a grouped kernel."""
    packed = s.packed is not None
    for k in (*_kernels(arch, ConvKernel), *_kernels(PORTABLE, ConvKernel)):
        if k.packed == packed and k.grouped == s.grouped and k.supports(s):
            return k
    raise AssertionError(f"no conv kernel for {s.name}")


def select_pool(s: PoolLayer, arch: str) -> PoolKernel:
    """Max pools take the push form (streaming needs no ring of window rows before them)."""
    for k in (*_kernels(arch, PoolKernel), *_kernels(PORTABLE, PoolKernel)):
        if k.kind == s.kind and k.push == (s.kind == "max") and k.supports(s):
            return k
    raise AssertionError(f"no pool kernel for {s.name}")


def fallback_reason(s: ConvLayer | PoolLayer, arch: str) -> str | None:
    """Why a layer converted for `arch` runs a portable kernel: each kernel of the architecture
    that would take a layer of its kind, with the reason it refused ("sqz_conv_s8_pie_row:
    dilated filter"), or None when the layer runs a variant or `arch` has none of its kind."""
    if arch == PORTABLE or not hasattr(s, "kernel"):
        return None
    if s.kernel in _CONV:
        if conv_kernel(s.kernel).arch != PORTABLE:
            return None
        mine = [k for k in _kernels(arch, ConvKernel)
                if k.packed == (s.packed is not None) and k.grouped == s.grouped]
    elif s.kernel in _POOL:
        if pool_kernel(s.kernel).arch != PORTABLE:
            return None
        mine = [k for k in _kernels(arch, PoolKernel)
                if k.kind == s.kind and k.push == (s.kind == "max")]
    else:
        return None
    reasons = [f"{k.symbol}: {k.refuses(s)}" for k in mine if k.refuses(s) is not None]
    return "; ".join(reasons) or None


def arch_dir(arch: str) -> Path | None:
    return None if arch == PORTABLE else ARCH_DIR / arch


def sources(arch: str) -> list[Path]:
    """The variant sources of `arch` (none for portable), sorted."""
    d = arch_dir(arch)
    if d is None:
        return []
    return sorted(p for p in d.iterdir() if p.suffix in SOURCE_SUFFIXES)


def headers(arch: str) -> list[Path]:
    d = arch_dir(arch)
    return [] if d is None else sorted(d.glob("*.h"))


def of_model_dir(model_dir: Path) -> str:
    """The architecture a generated model directory was converted for (its sqz_target.h)."""
    header = Path(model_dir) / "sqz_target.h"
    m = re.search(r'#define\s+SQZ_ARCH\s+"([^"]*)"', header.read_text(errors="replace"))
    if m is None:
        raise InputFileError(f"{header} names no SQZ_ARCH: it was generated by an older sqz; "
                             "convert the model again")
    return check(m.group(1), str(header))
