"""Graph passes on the lowered schedule: kernel selection, concat in place, row streaming,
memory layout.

Each pass takes and returns plain data and can be tested alone:

* `select_kernels`: each conv and pool gets the C row kernel of the board's architecture that
  handles it best (converter.kernels), which also fixes its weight layout.
* `concat_in_place`: a conv whose only consumer is a channel concatenation writes straight into
  its channel slice of the concatenated tensor (a larger pixel stride), so the concat costs zero
  copies. Only inputs already at the output's scale qualify; others keep a requantizing copy.
* `split_concats`: what remains of a concatenation becomes one copy step per part.
* `converter.stream.schedule`: segments of layers run row by row, with rings between them.
* `layout`: buffers (whole tensors, rings, scratch) and their lifetimes in calls ("ticks"),
  handed to the standalone planner, then turned back into an arena offset for every tensor.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import kernels, packing, planner, stream
from .errors import UsageError
from .lower import (
    ConcatPartStep,
    ConcatStep,
    ConvStep,
    Dims,
    KeptPlain,
    Lowered,
    MeanStep,
    PoolStep,
    Step,
)


def _consumers(steps: tuple[Step, ...], tensor: int) -> list[int]:
    return [i for i, s in enumerate(steps) if tensor in s.reads]


def _pinned(lw: Lowered) -> set[int]:
    """Tensors the host reads or writes: they must exist whole."""
    pinned = {lw.input, lw.output}
    if lw.logits is not None:
        pinned.add(lw.logits)
    return pinned | {a for a, b in lw.aliases.items() if b in pinned or a in pinned}


# --packing: which filters are stored packed (converter.packing).
PACKING_MODES = ("ram", "flash", "off")


def encodings(lw: Lowered) -> dict[int, packing.Encoding]:
    """Step index -> the smallest packed encoding of each filter that has one."""
    out = {}
    for i, s in enumerate(lw.steps):
        if isinstance(s, ConvStep):
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


def select_kernels(lw: Lowered, arch: str) -> Lowered:
    steps = []
    for s in lw.steps:
        if isinstance(s, ConvStep):
            s = dataclasses.replace(s, kernel=kernels.select_conv(s, arch).symbol)
        elif isinstance(s, PoolStep):
            s = dataclasses.replace(s, kernel=kernels.select_pool(s, arch).symbol)
        steps.append(s)
    return dataclasses.replace(lw, steps=tuple(steps))


@dataclass(frozen=True)
class View:
    """A tensor stored inside another: `byte_offset` into it, with its own pixel stride."""

    root: int
    byte_offset: int


def concat_in_place(lw: Lowered) -> tuple[Lowered, dict[int, View]]:
    steps = list(lw.steps)
    pinned = _pinned(lw)
    aliased = set(lw.aliases.values()) | set(lw.aliases)
    views: dict[int, View] = {}
    for ci, cs in enumerate(steps):
        if not isinstance(cs, ConcatStep) or cs.axis != 3:
            continue
        if cs.output in aliased and cs.output not in lw.aliases.values():
            continue
        keep = []
        for part in cs.parts:
            producer = next((i for i, s in enumerate(steps)
                             if isinstance(s, ConvStep) and s.output == part.input), None)
            ok = (producer is not None and not part.requantize and part.input not in pinned
                  and part.input not in aliased and part.input not in views
                  and len(_consumers(tuple(steps), part.input)) == 1)
            if not ok:
                keep.append(part)
                continue
            conv = steps[producer]
            assert isinstance(conv, ConvStep)
            steps[producer] = dataclasses.replace(
                conv, output_pixel_stride=cs.output_dims.c,
                output_channel_offset=part.axis_offset, writes=(cs.output,),
            )
            views[part.input] = View(root=cs.output, byte_offset=part.axis_offset)
        if len(keep) != len(cs.parts):
            steps[ci] = dataclasses.replace(
                cs, parts=tuple(keep), reads=tuple(p.input for p in keep)
            )
    steps = [s for s in steps if not (isinstance(s, ConcatStep) and not s.parts)]
    return dataclasses.replace(lw, steps=tuple(steps)), views


def split_concats(lw: Lowered) -> Lowered:
    steps: list[Step] = []
    for s in lw.steps:
        if not isinstance(s, ConcatStep):
            steps.append(s)
            continue
        for part in s.parts:
            steps.append(ConcatPartStep(name=s.name, op_index=s.op_index, reads=(part.input,),
                                        writes=(s.output,), output=s.output, axis=s.axis,
                                        output_dims=s.output_dims, part=part))
    return dataclasses.replace(lw, steps=tuple(steps))


def _root(t: int, aliases: dict[int, int], views: dict[int, View]) -> tuple[int, int]:
    off = 0
    while True:
        if t in aliases:
            t = aliases[t]
        elif t in views:
            off += views[t].byte_offset
            t = views[t].root
        else:
            return t, off


@dataclass(frozen=True)
class Rows:
    """How a node addresses a tensor (mirrors sqz_rows in firmware/include/sqz/runtime.h)."""

    offset: int
    pitch: int
    slots: int


@dataclass(frozen=True)
class Layout:
    plan: planner.Plan
    schedule: stream.Schedule
    offsets: dict[int, int]  # tensor index -> arena offset (of row 0's slot)
    rows: dict[int, Rows]  # tensor index -> row addressing
    scratch: dict[int, tuple[int, int]]  # step index -> (offset, size)
    arena_bytes: int
    buffers: tuple[planner.Buffer, ...]
    naive_bytes: int
    lower_bound: int
    live_bytes: tuple[int, ...]  # per tick (kernel call)
    step_ticks: tuple[tuple[int, int], ...]  # per step: first and last tick

    def step_at(self, tick: int) -> int:
        return self.schedule.ticks[tick]

    def step_live_bytes(self, i: int) -> int:
        """The most bytes live during any call of step i."""
        a, b = self.step_ticks[i]
        return max(self.live_bytes[a:b + 1], default=0)


def _output_apart_from_input(plan: planner.Plan, input_root: int,
                             output_root: int) -> planner.Plan:
    """The output never shares bytes with the input: an application writes its next input while
    it may still use the last result (the exported API promises the output stays valid until
    the next run). When the plan put the output inside the input's bytes, the output moves to
    the lowest place outside them where it meets nothing else (planner.move_apart); the arena
    grows only when there is none, by at most the output's size (16 B for the bundled example on
    the ESP32-S3, nothing for SqueezeNet 1.1 at 224). Planning the output as live from the
    first call instead costs the greedy placement far more (43 KB for SqueezeNet 1.1 at 224)."""
    by_root = {int(b.name[1:].split(":", 1)[0]): b for b in plan.buffers
               if b.name.startswith("t")}
    inp, out = by_root.get(input_root), by_root.get(output_root)
    if inp is None or out is None or inp is out:
        return plan
    i0, o0 = plan.offset(inp.name), plan.offset(out.name)
    if not (o0 < i0 + inp.size and i0 < o0 + out.size):
        return plan
    return planner.move_apart(plan, out.name, inp.name)


def layout(lw: Lowered, views: dict[int, View], sched: stream.Schedule) -> Layout:
    g = lw.graph
    n_ticks = len(sched.ticks)

    def roots(t: int) -> tuple[int, int]:
        return _root(t, lw.aliases, views)

    first: dict[int, int] = {}
    last: dict[int, int] = {}
    row_last_read: dict[int, dict[int, int]] = {}
    rows_written: dict[int, list[tuple[int, int]]] = {}  # root -> (tick, rows written)
    step_ticks: dict[int, list[int]] = {}
    seen: dict[int, int] = {}

    def touch(r: int, tick: int) -> None:
        first[r] = min(first.get(r, tick), tick)
        last[r] = max(last.get(r, tick), tick)

    for tick, i in enumerate(sched.ticks):
        s = lw.steps[i]
        k = seen.get(i, 0)
        seen[i] = k + 1
        step_ticks.setdefault(i, [tick, tick])[1] = tick
        for t, rows in stream.call_reads(lw, s, k):
            r = roots(t)[0]
            touch(r, tick)
            per_row = row_last_read.setdefault(r, {})
            for row in rows:
                per_row[row] = tick
        for t in s.writes:
            touch(roots(t)[0], tick)
        for t, rows in stream.call_claims(lw, s, k):
            if not rows:
                continue
            r = roots(t)[0]
            events = rows_written.setdefault(r, [])
            done = max(max(rows) + 1, events[-1][1] if events else 0)
            if events and events[-1][0] == tick:
                events[-1] = (tick, done)
            elif not events or events[-1][1] < done:
                events.append((tick, done))
    # The host writes the input before the first call and reads the results after the last.
    touch(roots(lw.input)[0], 0)
    for t in (lw.output, lw.logits):
        if t is not None:
            touch(roots(t)[0], n_ticks - 1)
    kept_whole = {roots(t)[0] for t in (lw.output, lw.logits) if t is not None}

    def row_bytes(r: int) -> int:
        d = Dims.of(g.tensor(r).shape)
        return d.w * d.c * g.tensor(r).dtype.itemsize

    def frees(r: int) -> tuple[tuple[int, int], ...]:
        """Rows read front to back die in order: the dead prefix of a whole tensor."""
        if r in sched.slots or r in kept_whole or r not in row_last_read:
            return ()
        n_rows = stream.rows_of(lw, r)
        last_read = row_last_read[r]
        out: list[tuple[int, int]] = []
        dead_until = -1
        for row in range(n_rows):
            dead_until = max(dead_until, last_read.get(row, first[r]))
            # Row `row` and every row above it are dead after tick dead_until.
            tick = dead_until + 1
            if tick > last[r]:
                break
            nbytes = (row + 1) * row_bytes(r)
            if out and out[-1][0] == tick:
                out[-1] = (tick, nbytes)
            else:
                out.append((tick, nbytes))
        return tuple(out)

    def fills(r: int) -> tuple[tuple[int, int], ...]:
        """A whole tensor written row by row holds only the rows written so far."""
        events = rows_written.get(r, [])
        if r in sched.slots or len(events) < 2 or events[0][0] != first[r]:
            return ()
        return tuple((tick, n * row_bytes(r)) for tick, n in events)

    buffers = []
    for r in sorted(first):
        t = g.tensor(r)
        size = sched.slots[r] * row_bytes(r) if r in sched.slots else t.nbytes
        buffers.append(planner.Buffer(f"t{r}:{t.name}", size, first[r], last[r], frees(r),
                                      fills(r)))
    # One scratch area per segment, shared by its layers' calls (a call's scratch does not
    # outlive it); a MEAN's per-channel sums live across its calls, so they get their own.
    # The shared area grows with the largest call so far: a deep layer's large scratch need
    # not be reserved while the early layers run (it can go where their input was).
    seg_of_step: dict[int, int] = {}
    tick = 0
    for si, seg in enumerate(sched.segments):
        for i in seg.nodes:
            seg_of_step[i] = si
        a = tick
        grow: list[tuple[int, int]] = []
        for pos, n in seg.order:
            s = lw.steps[seg.nodes[pos]]
            need = 0 if isinstance(s, MeanStep) else s.scratch_bytes()
            if need > (grow[-1][1] if grow else 0):
                grow.append((tick, need))
            tick += n
        if grow:
            size = grow[-1][1]
            fills = tuple(grow) if grow[0][0] == a and len(grow) > 1 else ()
            if grow[0][0] != a:
                fills = ((a, 0), *grow)
            buffers.append(planner.Buffer(f"scratch{si}:{lw.steps[seg.nodes[0]].name}", size,
                                          a, tick - 1, fills=fills))
    for i, s in enumerate(lw.steps):
        if isinstance(s, MeanStep):
            a, b = step_ticks[i]
            buffers.append(planner.Buffer(f"state{i}:{s.name}", s.scratch_bytes(), a, b))
    plan = _output_apart_from_input(planner.plan(buffers), roots(lw.input)[0],
                                    roots(lw.output)[0])
    by_root = {int(b.name[1:].split(":", 1)[0]): plan.offset(b.name)
               for b in buffers if b.name.startswith("t")}
    tensors = set(first)
    for s in lw.steps:
        tensors.update(s.reads)
        tensors.update(s.writes)
        if isinstance(s, ConvStep):
            tensors.add(s.output)
    tensors.update({lw.input, lw.output})
    if lw.logits is not None:
        tensors.add(lw.logits)
    tensors.update(views)
    tensors.update(lw.aliases)
    offsets: dict[int, int] = {}
    rows: dict[int, Rows] = {}
    for t in tensors:
        r, off = roots(t)
        offsets[t] = by_root[r] + off
        rows[t] = Rows(offset=offsets[t], pitch=row_bytes(r),
                       slots=sched.slots.get(r, stream.rows_of(lw, r)))
    scratch: dict[int, tuple[int, int]] = {}
    for i, s in enumerate(lw.steps):
        size = s.scratch_bytes()
        if not size:
            continue
        if isinstance(s, MeanStep):
            scratch[i] = (plan.offset(f"state{i}:{s.name}"), size)
        else:
            si = seg_of_step[i]
            name = next(b.name for b in buffers if b.name.startswith(f"scratch{si}:"))
            scratch[i] = (plan.offset(name), size)
    ticks_per_step = tuple(tuple(step_ticks[i]) for i in range(len(lw.steps)))
    return Layout(plan=plan, schedule=sched, offsets=offsets, rows=rows, scratch=scratch,
                  arena_bytes=plan.arena_size, buffers=tuple(buffers),
                  naive_bytes=planner.naive_size(buffers),
                  lower_bound=planner.lower_bound(buffers),
                  live_bytes=tuple(planner.live_bytes_per_step(buffers)),
                  step_ticks=ticks_per_step)


# Streaming schedules planned at the same arena, each with its planner (for changed steps).
Schedules = list[tuple[Layout, Callable[[Lowered], Layout]]]

MAX_EXHAUSTIVE_CUTS = 6
MAX_EVALUATIONS = 200
# choose_rows_among: schedules tried at most, plans of each one's short choose_rows, and how
# many of the most promising get a full one.
MAX_TIES = 40
TIE_QUICK_PLANS = 20
TIE_FULL = 3


def run_passes(lw: Lowered, *, arch: str = "portable", stream_mode: str = "auto",
               in_place: bool = True, input_arrives: bool = False, packing_mode: str = "ram",
               rows_per_call: int | None = None, decode_block: int | None = None
               ) -> tuple[Lowered, Layout]:
    """`stream_mode`: 'off' (today's schedule: whole tensors, conv+max-pool fused), 'full'
    (stream every run of row-wise layers) or 'auto' (whichever needs the smaller arena; the
    unstreamed one on a tie, as it makes fewer calls). `input_arrives`: plan as if the input's
    rows arrived over the link just before the first call reading them, into a ring (an
    estimate for the report: the firmware receives the whole input before it runs).
    `packing_mode`: 'ram' packs the filters that packing shrinks where the peak arena stays
    that of plain filters (pack_within), 'flash' packs them all, 'off' none.
    `rows_per_call`: every conv that can make several rows per call makes this many (at most
    its kernel's bound) instead of choose_rows' choice; `decode_block` likewise fixes the
    packed kernels' largest offered block (channels) at or under it, or their least."""
    if stream_mode not in stream.MODES:
        raise UsageError(f"--stream must be one of {', '.join(stream.MODES)}, not "
                         f"'{stream_mode}'")
    if packing_mode not in PACKING_MODES:
        raise UsageError(f"--packing must be one of {', '.join(PACKING_MODES)}, not "
                         f"'{packing_mode}'")
    if packing_mode == "flash":
        lw = pack_weights(lw)
    lw = select_kernels(lw, arch)
    views: dict[int, View] = {}
    if in_place:
        lw, views = concat_in_place(lw)
    lw = split_concats(lw)
    pinned = _pinned(lw)

    def roots(t: int) -> tuple[int, int]:
        return _root(t, lw.aliases, views)

    best: Layout | None = None
    best_cuts: frozenset[int] = frozenset()
    evaluations = 0
    # Every schedule planned at the best arena so far, by its segments: they differ in the room
    # they leave for packed layers' rows per call (choose_rows_among).
    ties: dict[tuple[tuple[int, ...], ...], tuple[Layout, frozenset[int]]] = {}

    def consider(mode: str, cuts: frozenset[int] = frozenset()) -> bool:
        nonlocal best, best_cuts, evaluations
        evaluations += 1
        lay = layout(lw, views, stream.schedule(lw, mode, pinned, roots, cuts,
                                                input_arrives=input_arrives))
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
                                                        cuts, input_arrives=input_arrives))
        return plan

    forced = rows_per_call is not None or decode_block is not None

    def force(s: Step) -> Step:
        """The fixed rows per call and block, instead of choose_rows' choice."""
        if not (forced and _makes_rows(s)):
            return s
        assert isinstance(s, ConvStep)
        r = max(1, min(rows_per_call or 1, kernels.max_rows_per_call(s)))
        blocks = kernels.conv_kernel(s.kernel).blocks
        offered = [b for b in (blocks(s) if blocks else []) if b <= (decode_block or 0)]
        return dataclasses.replace(s, rows_per_call=r, decode_block=offered[0] if offered else 0)

    schedules = [(lay, planner_for(lay, cuts)) for lay, cuts in ties.values()]
    if packing_mode == "ram":
        # Forced values are tried with each filter: they take arena too.
        lw, schedules = pack_within(lw, arch, schedules, force)
    if forced:
        lw = dataclasses.replace(lw, steps=tuple(force(s) for s in lw.steps))
        return lw, schedules[0][1](lw)
    return choose_rows_among(lw, schedules)


def pack_within(lw: Lowered, arch: str, schedules: Schedules,
                force: Callable[[Step], Step] = lambda s: s) -> tuple[Lowered, Schedules]:
    """Packs filters (as pack_weights) only where the peak arena stays that of `schedules`,
    planned with plain filters: a packed kernel's decoded block is scratch the plain kernel
    does not need, and at the peak step there is no room for it. A greedy, the largest flash
    saving first, each filter kept packed when re-planning the first schedule leaves the arena
    no larger; the others stay int8 (ConvStep.kept_plain, in the report). `force` sets what a
    packed step is tried with (run_passes' fixed rows per call and block). Of the other
    schedules, those still within the arena stay candidates for choose_rows."""
    lay0, plan0 = schedules[0]
    bound = lay0.arena_bytes
    every = select_kernels(pack_weights(lw), arch)
    packed = {i: force(s) for i, s in enumerate(every.steps)
              if getattr(s, "packed", None) is not None}

    def saving(i: int) -> int:
        return lw.steps[i].weight_bytes - packed[i].weight_bytes

    for i in sorted(packed, key=lambda i: (-saving(i), i)):
        trial = _with_step(lw, i, packed[i])
        lay = plan0(trial)
        if lay.arena_bytes <= bound:
            lw, lay0 = trial, lay
        else:
            kept = KeptPlain(encoding=every.steps[i].packed, flash_saving=saving(i),
                             arena_growth=lay.arena_bytes - bound)
            lw = _with_step(lw, i, dataclasses.replace(lw.steps[i], kept_plain=kept))
    if not lw.any_packed:
        return lw, schedules
    out = [(lay0, plan0)]
    for _, plan in schedules[1:]:
        lay = plan(lw)
        if lay.arena_bytes <= bound:
            out.append((lay, plan))
    return lw, out


def _with_step(lw: Lowered, i: int, s: Step) -> Lowered:
    steps = list(lw.steps)
    steps[i] = s
    return dataclasses.replace(lw, steps=tuple(steps))


def choose_rows_among(lw: Lowered, schedules: Schedules) -> tuple[Lowered, Layout]:
    """choose_rows on the schedule, of several with the same arena (after pack_within: within
    the plain filters' arena), that leaves the packed layers the most room: their segments
    differ, and so does what coexists with a ring when it grows (SqueezeNet 1.1 at 224,
    compressed: 35 such schedules, whose modelled decoding overhead after choose_rows ranges
    from 92 M to 205 M). Each gets a short choose_rows (its largest moves first), the most
    promising in full; the first schedule wins ties."""
    if not any(_makes_rows(s) for s in lw.steps) or len(schedules) == 1:
        lay, plan = schedules[0]
        return choose_rows(lw, lay, plan)

    def overhead(trial: Lowered) -> int:
        return sum(_decode_overhead(trial, s) for s in trial.steps if _makes_rows(s))

    quick = [(overhead(choose_rows(lw, lay, plan, max_plans=TIE_QUICK_PLANS)[0]), n)
             for n, (lay, plan) in enumerate(schedules[:MAX_TIES])]
    done = []
    for _, n in sorted(quick)[:TIE_FULL]:
        lay, plan = schedules[n]
        chosen, chosen_lay = choose_rows(lw, lay, plan)
        done.append((overhead(chosen), n, chosen, chosen_lay))
    _, _, chosen, chosen_lay = min(done, key=lambda d: d[:2])
    return chosen, chosen_lay


def _makes_rows(s: Step) -> bool:
    return (isinstance(s, ConvStep) and stream.is_row_wise(s)
            and kernels.conv_kernel(s.kernel).rows_symbol is not None)


def _rows_candidates(s: ConvStep) -> list[int]:
    """Rows per call worth trying: one per distinct number of calls."""
    top = kernels.max_rows_per_call(s)
    h = s.output_dims.h
    out = {min(top, -(-h // c)) for c in (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)}
    return sorted((r for r in out if r > 1), reverse=True)


def _decode_overhead(lw: Lowered, s: ConvStep) -> int:
    """Modelled instructions a packed conv spends besides its MACs: the whole filter decoded
    once per call, and every output row's receptive fields re-widened once per block."""
    k = kernels.conv_kernel(s.kernel)
    block = s.decode_block or (k.least_block(s) if k.least_block else s.filter_dims.n)
    blocks = -(-s.filter_dims.n // block)
    f = s.filter_dims
    widened = s.output_dims.n * s.output_dims.h * s.output_dims.w * f.h * f.w * f.c
    decode, widen = k.costs
    return decode * f.size * stream.calls(lw, s) + widen * widened * blocks


def choose_rows(lw: Lowered, best: Layout, plan: Callable[[Lowered], Layout],
                max_plans: int | None = None) -> tuple[Lowered, Layout]:
    """Rows per call for the kernels that can make several (the packed convs: each call
    decodes the whole filter once, so fewer calls decode less) and larger decoded blocks
    (each block re-widens the input rows). Both take arena, and the schedule's peak leaves only
    so much room, so this is a greedy over moves (one layer to any larger rows per call, or
    any larger block): of the moves not yet refused, the one with the largest modelled saving
    (_decode_overhead, with the kernel's `costs`) is tried, and taken when the arena stays no
    larger than `best`'s; a refused move is not tried again (more rows or blocks elsewhere
    only take more room). Same segments, same cuts. Taking moves one step at a time, or the
    layers in a fixed order, measured worse."""
    todo = [i for i, s in enumerate(lw.steps) if _makes_rows(s)]
    stuck: set[tuple[int, str, int]] = set()

    def ladder(s: ConvStep, field: str) -> list[int]:
        if field == "rows_per_call":
            return sorted(_rows_candidates(s))
        blocks = kernels.conv_kernel(s.kernel).blocks
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
            trial = _with_step(lw, -neg_i, after)
            lay = plan(trial)
            plans += 1
            if lay.arena_bytes <= best.arena_bytes:
                lw, best = trial, lay
                break
            stuck.add((-neg_i, field, getattr(after, field)))
            if max_plans is not None and plans >= max_plans:
                break
    return lw, best
