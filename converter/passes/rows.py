"""Rows per call and decoded blocks of the packed convs (`choose_rows`): fewer calls decode the
filter fewer times, larger blocks re-widen the input less; both take arena, so only where the
schedule's peak leaves room."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ..arch import conv_kernel
from ..arch.portable import max_rows_per_call
from ..ir.steps import ConvStep, Lowered, Step
from . import stream
from .memory import Layout
from .pack import Schedules, with_step

# choose_rows_among: schedules tried at most, plans of each one's short choose_rows, and how
# many of the most promising get a full one.
MAX_TIES = 40
TIE_QUICK_PLANS = 20
TIE_FULL = 3


def choose_rows_among(lw: Lowered, schedules: Schedules,
                      room: int = 0) -> tuple[Lowered, Layout]:
    """choose_rows on the schedule, of several with the same arena (after pack_within: within
    its bound, plain filters' arena or --packing auto's room), that leaves the packed layers
    the most room: their segments differ, and so does what coexists with a ring when it grows
    (SqueezeNet 1.1 at 224, compressed: 35 such schedules, whose modelled decoding overhead
    after choose_rows ranges from 92 M to 205 M). Each gets a short choose_rows (its largest
    moves first), the most promising in full; the first schedule wins ties. `room`: the
    arena the moves may grow to (--packing auto's, what the board's RAM leaves it)."""
    if not any(makes_rows(s) for s in lw.steps) or len(schedules) == 1:
        lay, plan = schedules[0]
        return choose_rows(lw, lay, plan, room=room)

    def overhead(trial: Lowered) -> int:
        return sum(_decode_overhead(trial, s) for s in trial.steps if makes_rows(s))

    quick = [(overhead(choose_rows(lw, lay, plan, max_plans=TIE_QUICK_PLANS, room=room)[0]),
              n)
             for n, (lay, plan) in enumerate(schedules[:MAX_TIES])]
    done = []
    for _, n in sorted(quick)[:TIE_FULL]:
        lay, plan = schedules[n]
        chosen, chosen_lay = choose_rows(lw, lay, plan, room=room)
        done.append((overhead(chosen), n, chosen, chosen_lay))
    _, _, chosen, chosen_lay = min(done, key=lambda d: d[:2])
    return chosen, chosen_lay


def makes_rows(s: Step) -> bool:
    return (isinstance(s, ConvStep) and stream.is_row_wise(s)
            and conv_kernel(s.kernel).rows_symbol is not None)


def _rows_candidates(s: ConvStep) -> list[int]:
    """Rows per call worth trying: one per distinct number of calls."""
    top = max_rows_per_call(s)
    h = s.output_dims.h
    out = {min(top, -(-h // c)) for c in (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)}
    return sorted((r for r in out if r > 1), reverse=True)


def _decode_overhead(lw: Lowered, s: ConvStep) -> int:
    """Modelled instructions a packed conv spends besides its MACs: the whole filter decoded
    once per call, and every output row's receptive fields re-widened once per block."""
    k = conv_kernel(s.kernel)
    block = s.decode_block or (k.least_block(s) if k.least_block else s.filter_dims.n)
    blocks = -(-s.filter_dims.n // block)
    f = s.filter_dims
    widened = s.output_dims.n * s.output_dims.h * s.output_dims.w * f.h * f.w * f.c
    decode, widen = k.costs
    return decode * f.size * stream.calls(lw, s) + widen * widened * blocks


def choose_rows(lw: Lowered, best: Layout, plan: Callable[[Lowered], Layout],
                max_plans: int | None = None, room: int = 0) -> tuple[Lowered, Layout]:
    """Rows per call for the kernels that can make several (the packed convs: each call
    decodes the whole filter once, so fewer calls decode less) and larger decoded blocks
    (each block re-widens the input rows). Both take arena, and the schedule's peak leaves only
    so much room, so this is a greedy over moves (one layer to any larger rows per call, or
    any larger block): of the moves not yet refused, the one with the largest modelled saving
    (_decode_overhead, with the kernel's `costs`) is tried, and taken when the arena stays no
    larger than `best`'s, or than `room` where that is larger (--packing auto: RAM the board
    does not use buys back decoding time); a refused move is not tried again (more rows or
    blocks elsewhere only take more room). Same segments, same cuts. Taking moves one step at
    a time, or the layers in a fixed order, measured worse."""
    todo = [i for i, s in enumerate(lw.steps) if makes_rows(s)]
    limit = max(best.arena_bytes, room)
    stuck: set[tuple[int, str, int]] = set()

    def ladder(s: ConvStep, field: str) -> list[int]:
        if field == "rows_per_call":
            return sorted(_rows_candidates(s))
        blocks = conv_kernel(s.kernel).blocks
        return sorted(blocks(s)) if blocks else []

    plans = 0
    while max_plans is None or plans < max_plans:
        moves = []
        for i in todo:
            s = lw.steps[i]
            for field in ("rows_per_call", "decode_block"):
                for v in ladder(s, field):
                    if v > getattr(s, field) and (i, field, v) not in stuck:
                        after = dataclasses.replace(s, **{field: v})
                        saving = _decode_overhead(lw, s) - _decode_overhead(lw, after)
                        moves.append((saving, -i, field, after))
        if not moves:
            return lw, best
        for _, neg_i, field, after in sorted(moves, key=lambda m: (m[0], m[1], m[2],
                                                                   getattr(m[3], m[2])),
                                             reverse=True):
            trial = with_step(lw, -neg_i, after)
            lay = plan(trial)
            plans += 1
            if lay.arena_bytes <= limit:
                lw, best = trial, lay
                break
            stuck.add((-neg_i, field, getattr(after, field)))
            if max_plans is not None and plans >= max_plans:
                break
    return lw, best
