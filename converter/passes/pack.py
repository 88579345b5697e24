"""Packed weights (converter.ir.packing): which filters are stored packed. `pack_weights` packs
every filter packing shrinks; `pack_within` only those that keep the peak arena within a bound:
that of plain filters (--packing ram), or what the board's RAM leaves the arena (--packing
auto, the default: flash is what a compressed model is for, and RAM the board does not use
saves nothing)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from ..ir import packing
from ..ir.steps import ConvStep, KeptPlain, Lowered, Step
from .memory import Layout
from .select import select_kernels

# Streaming schedules planned at the same arena, each with its planner (for changed steps).
Schedules = list[tuple[Layout, Callable[[Lowered], Layout]]]

# --packing: which filters are stored packed (converter.packing). auto: every filter packing
# shrinks while the whole firmware's RAM fits the board's internal SRAM; ram: only where the
# peak arena stays that of plain filters; flash: all of them; off: none.
PACKING_MODES = ("auto", "ram", "flash", "off")


def encodings(lw: Lowered) -> dict[int, packing.Encoding]:
    """Step index -> the smallest packed encoding of each filter that has one."""
    out = {}
    for i, s in enumerate(lw.steps):
        # No packed kernel takes grouped layers (their filters are small anyway).
        if isinstance(s, ConvStep) and not s.grouped:
            f = s.filter_dims
            enc = packing.encode(np.frombuffer(s.filter, np.int8).reshape(f.n, -1))
            if enc.kind != packing.DENSE:
                out[i] = enc
    return out


def pack_weights(lw: Lowered) -> Lowered:
    """Filters with few distinct values (pruned, weight-shared) get their smallest packed
    encoding (converter.packing); the kernels decode them a block of channels at a time."""
    steps = list(lw.steps)
    for i, enc in encodings(lw).items():
        steps[i] = dataclasses.replace(steps[i], packed=enc)
    return dataclasses.replace(lw, steps=tuple(steps))


def pack_within(lw: Lowered, arch: str, schedules: Schedules,
                force: Callable[[Step], Step] = lambda s: s,
                room: int | None = None) -> tuple[Lowered, Schedules]:
    """Packs filters (as pack_weights) only where the peak arena stays within a bound: that of
    `schedules`, planned with plain filters, or `room` when that is larger (what the board's
    RAM leaves the arena). A packed kernel's decoded block is scratch the plain kernel does
    not need, and at the peak step there may be no room for it. A greedy, the largest flash
    saving first, each filter kept packed when re-planning the first schedule leaves the arena
    within the bound; the others stay int8 (ConvStep.kept_plain, in the report). `force` sets
    what a packed step is tried with (run_passes' fixed rows per call and block). Of the other
    schedules, those still within the bound stay candidates for choose_rows. The result
    records the plain filters' arena (Lowered.plain_arena), so the report can say what
    packing added."""
    lay0, plan0 = schedules[0]
    plain = lay0.arena_bytes
    bound = max(plain, room or 0)
    every = select_kernels(pack_weights(lw), arch)
    packed = {i: force(s) for i, s in enumerate(every.steps)
              if getattr(s, "packed", None) is not None}

    def saving(i: int) -> int:
        return lw.steps[i].weight_bytes - packed[i].weight_bytes

    for i in sorted(packed, key=lambda i: (-saving(i), i)):
        trial = with_step(lw, i, packed[i])
        lay = plan0(trial)
        if lay.arena_bytes <= bound:
            lw, lay0 = trial, lay
        else:
            kept = KeptPlain(encoding=every.steps[i].packed, flash_saving=saving(i),
                             arena_growth=lay.arena_bytes - lay0.arena_bytes,
                             arena_bound=bound)
            lw = with_step(lw, i, dataclasses.replace(lw.steps[i], kept_plain=kept))
    lw = dataclasses.replace(lw, plain_arena=plain)
    if not lw.any_packed:
        return lw, schedules
    out = [(lay0, plan0)]
    for _, plan in schedules[1:]:
        lay = plan(lw)
        if lay.arena_bytes <= bound:
            out.append((lay, plan))
    return lw, out


def with_step(lw: Lowered, i: int, s: Step) -> Lowered:
    steps = list(lw.steps)
    steps[i] = s
    return dataclasses.replace(lw, steps=tuple(steps))
