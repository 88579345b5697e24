"""Board profiles: one TOML file per board in targets/, rendered into the port header."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from .errors import InputFileError, UsageError
from .paths import TARGETS


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    port: str  # firmware/ports/<port>/
    cpu_hz: int
    counter_unit: str
    counter_hz: int
    max_frame_payload: int
    sram_bytes: int
    psram_bytes: int
    flash_bytes: int
    arena_attr: str
    weights_attr: str
    pio_env: str | None = None
    # Kernel variants the firmware compiles beside the portable C (converter.arch).
    arch: str = "portable"
    # What sram_bytes must also hold besides the arena and the protocol's buffers (the whole
    # firmware's RAM, passes.budget.app_ram_bytes): the stack the port reserves in it (its
    # linker script's; 0 where the framework keeps the stack in its own share, outside
    # sram_bytes) and the rest of the firmware's .data + .bss (the application's state, the
    # port's variables, the C library's, alignment), an estimate each profile documents.
    stack_bytes: int = 0
    static_bytes: int = 256


def available() -> list[str]:
    return sorted(p.stem for p in TARGETS.glob("*.toml"))


def load(name: str) -> Target:
    path = TARGETS / f"{name}.toml"
    if not path.is_file():
        raise UsageError(f"unknown target '{name}'; available: {', '.join(available())}")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise InputFileError(f"{path}: not valid TOML ({exc})") from None
    fields = set(Target.__dataclass_fields__)
    unknown = set(data) - fields
    missing = {f for f in fields if Target.__dataclass_fields__[f].default is not None} - set(data)
    missing -= {"pio_env", "arch", "stack_bytes", "static_bytes"}
    if unknown or missing:
        raise InputFileError(
            f"{path}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}"
        )
    if data["counter_unit"] not in ("cycles", "instructions", "ns"):
        raise InputFileError(f"{path}: counter_unit must be cycles, instructions or ns")
    for key in ("stack_bytes", "static_bytes"):
        if not isinstance(data.get(key, 0), int) or data.get(key, 0) < 0:
            raise InputFileError(f"{path}: {key} must be a whole number of bytes, 0 or more")
    from .arch import check

    check(data.get("arch", "portable"), str(path))
    return Target(**data)


def profile_path(name: str) -> Path:
    return TARGETS / f"{name}.toml"
