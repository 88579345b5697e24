"""Graph passes on the lowered schedule: kernel selection, concat in place, row streaming,
memory layout.

Each pass takes and returns plain data and can be tested alone:

* `select_kernels`: each conv and pool gets the C row kernel of the board's architecture that
  handles it best (converter.arch), which also fixes its weight layout.
* `concat_in_place`: a conv whose only consumer is a channel concatenation writes straight into
  its channel slice of the concatenated tensor (a larger pixel stride), so the concat costs zero
  copies. Only inputs already at the output's scale qualify; others keep a requantizing copy.
* `split_concats`: what remains of a concatenation becomes one copy step per part.
* `stream.schedule`: segments of layers run row by row, with rings between them.
* `layout`: buffers (whole tensors, rings, scratch) and their lifetimes in calls ("ticks"),
  handed to the standalone planner, then turned back into an arena offset for every tensor.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable

from ..arch import conv_kernel
from ..arch.portable import max_rows_per_call
from ..errors import UsageError
from ..ir.steps import ConvStep, Dims, InputStep, Lowered, Step
from . import stream
from .concat import View, concat_in_place, pinned_tensors, split_concats
from .memory import Layout, layout, root
from .pack import PACKING_MODES, pack_weights, pack_within
from .rows import choose_rows_among, makes_rows
from .select import select_kernels

MAX_EXHAUSTIVE_CUTS = 6
INPUT_MODES = ("ring", "whole")
# full: every kernel its whole scratch; least: the convs that can work in smaller blocks get
# the least they run with (a little slower, a smaller arena where their scratch is at the
# peak); auto (convert.convert_tflite): full, or least when full does not fit the board.
SCRATCH_MODES = ("auto", "full", "least")


def least_scratch(lw: Lowered) -> Lowered:
    """Every conv whose kernel takes blocks as large as its scratch gets the least scratch."""
    from ..arch import conv_kernel as _kernel

    steps = []
    for s in lw.steps:
        if isinstance(s, ConvStep):
            k = _kernel(s.kernel)
            if k.min_scratch_bytes is not None:
                s = dataclasses.replace(s, scratch_limit=k.min_scratch_bytes(s))
        steps.append(s)
    return dataclasses.replace(lw, steps=tuple(steps))


def with_input_step(lw: Lowered, camera=None) -> Lowered:
    """The input as a ring filled row by row (an InputStep first in the schedule), or left
    whole when a RESHAPE shares its bytes (then it is read as another shape, not by rows)."""
    if any(isinstance(s, InputStep) for s in lw.steps):
        return lw
    if lw.input in lw.aliases or lw.input in lw.aliases.values():
        return lw
    t = lw.graph.tensor(lw.input)
    step = InputStep(name="input", op_index=-1, reads=(), writes=(lw.input,),
                     output=lw.input, dims=Dims.of(t.shape), camera=camera)
    return dataclasses.replace(lw, steps=(step, *lw.steps))
MAX_EVALUATIONS = 200
# --packing auto without a board: nothing bounds the arena (every filter packing shrinks).
UNBOUNDED_ROOM = 1 << 62


def run_passes(lw: Lowered, *, arch: str = "portable", stream_mode: str = "auto",
               in_place: bool = True, input_mode: str = "whole", camera=None,
               packing_mode: str = "auto", scratch: str = "full",
               rows_per_call: int | None = None, decode_block: int | None = None,
               packing_room: Callable[[Lowered], int] | None = None
               ) -> tuple[Lowered, Layout]:
    """`stream_mode`: 'off' (today's schedule: whole tensors, conv+max-pool fused), 'full'
    (stream every run of row-wise layers) or 'auto' (whichever needs the smaller arena; the
    unstreamed one on a tie, as it makes fewer calls). `input_mode` 'ring': the input arrives
    row by row into a ring, each row just before the first call reading it (an InputStep, fed
    by the executor; with `camera`, made from camera frame rows on the device); 'whole': it is
    in place before the run.
    `packing_mode`: 'auto' packs the filters that packing shrinks while the peak arena stays
    within `packing_room(lw)` (what the board's RAM leaves it; no bound without one) or that
    of plain filters if larger, and lets choose_rows grow the arena into that room too; 'ram'
    while it stays that of plain filters (pack_within), 'flash' packs them all, 'off' none.
    `rows_per_call`: every conv that can make several rows per call makes this many (at most
    its kernel's bound) instead of choose_rows' choice; `decode_block` likewise fixes the
    packed kernels' largest offered block (channels) at or under it, or their least."""
    if stream_mode not in stream.MODES:
        raise UsageError(f"--stream must be one of {', '.join(stream.MODES)}, not "
                         f"'{stream_mode}'")
    if packing_mode not in PACKING_MODES:
        raise UsageError(f"--packing must be one of {', '.join(PACKING_MODES)}, not "
                         f"'{packing_mode}'")
    if input_mode not in INPUT_MODES:
        raise UsageError(f"--input must be one of {', '.join(INPUT_MODES)}, not '{input_mode}'")
    if input_mode == "ring" or camera is not None:
        lw = with_input_step(lw, camera)
        if camera is not None and not any(isinstance(s, InputStep) for s in lw.steps):
            raise UsageError("--camera: the model reshapes its input before the first layer, "
                             "so it is not read row by row and cannot be fed from frame rows; "
                             "convert without --camera")
    if packing_mode == "flash":
        lw = pack_weights(lw)
    lw = select_kernels(lw, arch)
    if scratch == "least":
        lw = least_scratch(lw)
    elif scratch != "full":
        raise UsageError(f"--scratch must be one of {', '.join(SCRATCH_MODES)}, not "
                         f"'{scratch}'")
    views: dict[int, View] = {}
    if in_place:
        lw, views = concat_in_place(lw)
    lw = split_concats(lw)
    pinned = pinned_tensors(lw)
    if any(isinstance(s, InputStep) for s in lw.steps):
        pinned.discard(lw.input)  # its writer is the InputStep, row by row

    def roots(t: int) -> tuple[int, int]:
        return root(t, lw.aliases, views)

    best: Layout | None = None
    best_cuts: frozenset[int] = frozenset()
    evaluations = 0
    # Every schedule planned at the best arena so far, by its segments: they differ in the room
    # they leave for packed layers' rows per call (choose_rows_among).
    ties: dict[tuple[tuple[int, ...], ...], tuple[Layout, frozenset[int]]] = {}

    def consider(mode: str, cuts: frozenset[int] = frozenset()) -> bool:
        nonlocal best, best_cuts, evaluations
        evaluations += 1
        lay = layout(lw, views, stream.schedule(lw, mode, pinned, roots, cuts))
        key = tuple(seg.nodes for seg in lay.schedule.segments)
        if best is None or lay.arena_bytes < best.arena_bytes:
            best, best_cuts = lay, cuts
            ties.clear()
            ties[key] = (lay, cuts)
            return True
        if lay.arena_bytes == best.arena_bytes:
            ties.setdefault(key, (lay, cuts))
        return False

    if stream_mode != "auto":
        consider(stream_mode)
    else:
        # The unstreamed schedule first: it wins ties, as it makes fewer kernel calls.
        consider("off")
        consider("full")
        # Where to end segments (the tensor there is stored whole, written into the consumed
        # part of the segment's input): every subset of the cuts after pools, then a local
        # search that adds or removes one cut anywhere while that lowers the arena. A plan
        # takes milliseconds; the search is capped.
        pools = stream.cut_candidates(lw)
        if len(pools) <= MAX_EXHAUSTIVE_CUTS:
            for n in range(1, len(pools) + 1):
                for combo in itertools.combinations(pools, n):
                    consider("full", frozenset(combo))
        if best is not None and best.schedule.mode == "full":
            anywhere = stream.cut_candidates(lw, anywhere=True)
            improved = True
            while improved and evaluations < MAX_EVALUATIONS:
                improved = False
                for c in anywhere:
                    if evaluations >= MAX_EVALUATIONS:
                        break
                    improved |= consider("full", best_cuts ^ {c})
    assert best is not None

    def planner_for(lay: Layout, cuts: frozenset[int]) -> Callable[[Lowered], Layout]:
        def plan(trial: Lowered) -> Layout:
            return layout(trial, views, stream.schedule(trial, lay.schedule.mode, pinned, roots,
                                                        cuts))
        return plan

    forced = rows_per_call is not None or decode_block is not None

    def force(s: Step) -> Step:
        """The fixed rows per call and block, instead of choose_rows' choice."""
        if not (forced and makes_rows(s)):
            return s
        assert isinstance(s, ConvStep)
        r = max(1, min(rows_per_call or 1, max_rows_per_call(s)))
        blocks = conv_kernel(s.kernel).blocks
        offered = [b for b in (blocks(s) if blocks else []) if b <= (decode_block or 0)]
        return dataclasses.replace(s, rows_per_call=r, decode_block=offered[0] if offered else 0)

    schedules = [(lay, planner_for(lay, cuts)) for lay, cuts in ties.values()]
    room = None
    if packing_mode in ("ram", "auto"):
        # Forced values are tried with each filter: they take arena too.
        if packing_mode == "auto":
            room = packing_room(lw) if packing_room is not None else UNBOUNDED_ROOM
        lw, schedules = pack_within(lw, arch, schedules, force, room=room)
    if forced:
        lw = dataclasses.replace(lw, steps=tuple(force(s) for s in lw.steps))
        return lw, schedules[0][1](lw)
    # --packing auto on a board with a RAM budget: the packed layers' rows per call and blocks
    # may take its room too (without a budget they keep the arena packing left).
    grow_to = room if room not in (None, UNBOUNDED_ROOM) else 0
    return choose_rows_among(lw, schedules, room=grow_to)
