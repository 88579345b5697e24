"""The portable firmware (runtime + protocol application) and every architecture's kernel
variants use no float and no heap: checked on the objects the ARM compiler produces, not on the
source text."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest import REPO

from converter import arch
from converter.device.build import runtime_sources

ARM_CC = "arm-none-eabi-gcc"
ARM_NM = "arm-none-eabi-nm"
FLOAT_HELPERS = ("__aeabi_f", "__aeabi_d", "__aeabi_i2f", "__aeabi_i2d", "__aeabi_l2f",
                 "__aeabi_l2d", "__aeabi_ui2", "__aeabi_ul2")
HEAP = {"malloc", "calloc", "realloc", "free", "_sbrk", "_malloc_r"}
# What the firmware may take from the C library.
ALLOWED_LIBC = {"memcpy", "memmove", "memset", "memcmp", "strlen", "__aeabi_memcpy",
                "__aeabi_memmove", "__aeabi_memset", "__aeabi_memclr", "__aeabi_uldivmod",
                "__aeabi_ldivmod",
                "__aeabi_idiv", "__aeabi_uidiv", "__aeabi_idivmod", "__aeabi_uidivmod",
                "__aeabi_llsl", "__aeabi_llsr", "__aeabi_lasr", "__aeabi_lmul"}

pytestmark = pytest.mark.skipif(
    shutil.which(ARM_CC) is None,
    reason=f"{ARM_CC} not installed: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi")


def test_no_float_and_no_heap_in_the_firmware(tmp_path):
    app = sorted((REPO / "firmware" / "src" / "app").glob("*.c"))
    fixture = REPO / "tests" / "fixtures" / "tiny_model"
    undefined: set[str] = set()
    defined: set[str] = set()
    variants = [src for a in arch.available() for src in arch.sources(a)]
    for src in [*runtime_sources(), *app, *variants]:
        obj = tmp_path / (src.stem + ".o")
        subprocess.run([ARM_CC, "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=soft", "-O2",
                        "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic",
                        "-I", str(REPO / "firmware" / "include"), "-I", str(fixture),
                        "-I", str(REPO / "firmware" / "src" / "app"), "-c", str(src), "-o",
                        str(obj)], check=True, capture_output=True)
        for line in subprocess.run([ARM_NM, str(obj)], check=True, capture_output=True,
                                   text=True).stdout.splitlines():
            parts = line.split()
            if parts[-2:-1] == ["U"]:
                undefined.add(parts[-1])
            elif len(parts) == 3:
                defined.add(parts[-1])
    external = undefined - defined
    assert not [s for s in external if s.startswith(FLOAT_HELPERS)], external
    assert not external & HEAP, external
    port_api = {s for s in external if s.startswith(("sqz_port_", "sqz_model_def"))}
    assert external - port_api <= ALLOWED_LIBC, external - port_api - ALLOWED_LIBC
