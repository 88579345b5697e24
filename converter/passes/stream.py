"""Row streaming: segments of layers that run row by row, with rings of rows between them.

A segment is a run of layers whose kernels work one output row at a time (convs of any kernel
size, stride and dilation, max and average pools, ADD, int8 QUANTIZE, channel concatenation,
and MEAN, which accumulates its input row by row). Inside a segment a tensor that no layer
outside it reads is never stored whole: its producer writes each row into a ring of `slots`
rows (row r in slot r % slots), and a slot is reused as soon as every reader is done with the
row it held. Nothing is recomputed, so the MACs are those of the unstreamed schedule.

Algorithm
---------
1. Segments. `off` keeps today's schedule: every layer on whole tensors, except a conv whose
   only reader is a max pool, which streams into it through a ring (the conv+pool fusion).
   `full` makes every maximal run of row-wise layers one segment (for SqueezeNet: from conv1 to
   the global average, the whole network but the softmax).
2. Order (pull scheduling). The segment's last layer is run to completion; before each of its
   calls, the producers of the rows that call reads are run, recursively, just far enough.
   Then earlier layers are completed the same way (rows no later layer reads, e.g. under VALID
   padding, are still computed). Every call of every layer appears exactly once.
3. Ring sizes, by simulation of that order: when a producer writes row r of tensor T, the slot
   it overwrites held row r - slots, which must be below the lowest row any reader of T will
   still read. The smallest such `slots` over the whole order is T's ring.
4. Check: the order is replayed and every row every call reads is verified to be written and
   not yet overwritten (`check`). A plan that fails this is a bug, reported before any C is
   written.

Rows per call. A conv whose kernel has a rows entry (the packed ones: each call decodes the
whole filter) may make `rows_per_call` output rows per call (`call_rows`); its calls then read
the union of those rows' windows, and the rings above follow by the same simulation.
passes.choose_rows picks them (and the packed kernels' decoded blocks) where the arena does
not grow.

The C executor (firmware/src/runtime/exec.c and the node adapters) follows the same row
geometry (`call_reads`, `call_rows`): it is mirrored there and must change with it.

Ticks: the calls of all segments, numbered in execution order, are the planner's time axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..arch.portable import MAX_FILTER_ROWS
from ..ir.steps import (
    AddStep,
    ConcatPartStep,
    ConvStep,
    Dims,
    InputStep,
    Lowered,
    MeanStep,
    PoolStep,
    RequantizeStep,
    Step,
)

MAX_SEGMENT_NODES = 64  # mirrors SQZ_MAX_SEGMENT_NODES (firmware/include/sqz/runtime.h)
MAX_RUN = 255  # sqz_run_entry.calls is a uint8_t

# auto: off or full, whichever needs the smaller arena. none: no streaming at all (every layer
# on whole tensors, not even the conv+pool fusion): the baseline the passes are measured by.
MODES = ("auto", "off", "full", "none")


class ScheduleError(AssertionError):
    """The order or the rings are inconsistent: a bug in the scheduler, never the user's."""


def rows_of(lw: Lowered, t: int) -> int:
    d = Dims.of(lw.graph.tensor(t).shape)
    return d.n * d.h


def is_row_wise(s: Step) -> bool:
    if isinstance(s, ConvStep | PoolStep):
        kh = s.filter_dims.h if isinstance(s, ConvStep) else s.filter_hw[0]
        return kh <= MAX_FILTER_ROWS
    if isinstance(s, ConcatPartStep):
        return s.axis == 3
    return isinstance(s, AddStep | RequantizeStep | MeanStep | InputStep)


def ring_rows(s: Step) -> int:
    """Rows of input one call reads: mirrors sqz_conv_s8_ring_rows and sqz_pool_s8_ring_rows
    (1 for push-form pools and the elementwise kernels)."""
    if isinstance(s, ConvStep):
        return (s.filter_dims.h - 1) * s.dilation[0] + 1
    if isinstance(s, PoolStep) and not s.push:
        return s.filter_hw[0]
    return 1


def push_span(s: PoolStep, in_y: int) -> tuple[int, int]:
    """Mirrors sqz_pool_s8_push_span: first output row and count an input row feeds."""
    y = in_y + s.padding[0]
    lo = max(0, (y - s.filter_hw[0]) // s.stride[0] + 1)
    hi = min(s.output_dims.h - 1, y // s.stride[0])
    return lo, max(0, hi - lo + 1)


def _window_first(s: PoolStep, out_y: int) -> int:
    return max(0, out_y * s.stride[0] - s.padding[0])


def _window_last(s: PoolStep, out_y: int) -> int:
    return min(s.input_dims.h, out_y * s.stride[0] - s.padding[0] + s.filter_hw[0]) - 1


def calls(lw: Lowered, s: Step) -> int:
    """How many times the executor calls the layer's kernel."""
    if not is_row_wise(s):
        return 1
    if isinstance(s, MeanStep) or (isinstance(s, PoolStep) and s.push):
        return s.input_dims.n * s.input_dims.h
    if isinstance(s, ConvStep) and s.rows_per_call > 1:
        return s.output_dims.n * -(-s.output_dims.h // s.rows_per_call)
    return rows_of(lw, s.writes[0])


def call_rows(s: ConvStep, k: int) -> tuple[int, ...]:
    """Output rows (batch-major) call k of a conv makes; mirrors conv_rows() in conv_s8.c."""
    per = s.rows_per_call
    if per <= 1:
        return (k,)
    h = s.output_dims.h
    chunks = -(-h // per)
    b, c = divmod(k, chunks)
    y0 = c * per
    return tuple(b * h + y for y in range(y0, min(h, y0 + per)))


def _window(k: int, out_h: int, in_h: int, stride: int, pad: int, dilation: int,
            taps: int) -> tuple[int, ...]:
    """Rows of the input (batch-major) that output row k of a windowed kernel reads."""
    b, y = divmod(k, out_h)
    iy0 = y * stride - pad
    return tuple(b * in_h + iy0 + j * dilation for j in range(taps)
                 if 0 <= iy0 + j * dilation < in_h)


def call_reads(lw: Lowered, s: Step, k: int) -> list[tuple[int, tuple[int, ...]]]:
    """(tensor, rows) read by call k of the layer; mirrors window_rows() in exec.c."""
    if isinstance(s, ConvStep):
        rows = {row for out in call_rows(s, k)
                for row in _window(out, s.output_dims.h, s.input_dims.h, s.stride[0],
                                   s.padding[0], s.dilation[0], s.filter_dims.h)}
        return [(s.input, tuple(sorted(rows)))]
    if isinstance(s, PoolStep) and not s.push:
        return [(s.input, _window(k, s.output_dims.h, s.input_dims.h, s.stride[0],
                                  s.padding[0], 1, s.filter_hw[0]))]
    if is_row_wise(s):
        return [(t, (k,)) for t in dict.fromkeys(s.reads)]
    return [(t, tuple(range(rows_of(lw, t)))) for t in dict.fromkeys(s.reads)]


def call_writes(lw: Lowered, s: Step, k: int) -> list[tuple[int, tuple[int, ...]]]:
    """(tensor, rows) that call k completes: readers may read them from then on."""
    if isinstance(s, MeanStep):
        h = s.input_dims.h
        return [(s.output, (k // h,))] if k % h == h - 1 else []
    if isinstance(s, PoolStep) and s.push:
        b, y = divmod(k, s.input_dims.h)
        lo, n = push_span(s, y)
        done = tuple(b * s.output_dims.h + p for p in range(lo, lo + n)
                     if _window_last(s, p) == y)
        return [(s.output, done)] if done else []
    if isinstance(s, ConvStep) and is_row_wise(s):
        return [(s.writes[0], call_rows(s, k))]
    if is_row_wise(s):
        return [(s.writes[0], (k,))]
    return [(t, tuple(range(rows_of(lw, t)))) for t in s.writes]


def call_claims(lw: Lowered, s: Step, k: int) -> list[tuple[int, tuple[int, ...]]]:
    """(tensor, rows) whose slots call k starts writing: a push-form pool writes an output row
    from its window's first input row on, long before the row is complete."""
    if isinstance(s, PoolStep) and s.push:
        b, y = divmod(k, s.input_dims.h)
        lo, n = push_span(s, y)
        started = tuple(b * s.output_dims.h + p for p in range(lo, lo + n)
                        if _window_first(s, p) == y)
        return [(s.output, started)] if started else []
    return call_writes(lw, s, k)


@dataclass(frozen=True)
class Segment:
    nodes: tuple[int, ...]  # step indices, in schedule order
    order: tuple[tuple[int, int], ...]  # (position in nodes, consecutive calls)

    def ticks(self) -> int:
        return sum(n for _, n in self.order)


@dataclass(frozen=True)
class Schedule:
    mode: str  # "off" | "full" | "none"
    segments: tuple[Segment, ...]
    slots: dict[int, int]  # root tensor -> ring slots; tensors absent here are stored whole
    ticks: tuple[int, ...]  # step index of every call, in execution order

    @property
    def streamed(self) -> bool:
        return any(len(seg.nodes) > 1 for seg in self.segments)


Root = tuple[int, int]  # (root tensor, byte offset into it)


def _segments_off(lw: Lowered, pinned: set[int], roots) -> list[list[int]]:
    """Every layer alone, but a conv streams into a max pool that is its only reader."""
    steps = lw.steps
    out: list[list[int]] = []
    i = 0
    while i < len(steps):
        s = steps[i]
        if (isinstance(s, ConvStep) and i + 1 < len(steps) and is_row_wise(s)
                and s.output not in pinned and roots(s.output)[1] == 0
                and roots(s.output)[0] == s.output):
            readers = [j for j, x in enumerate(steps) if s.output in x.reads]
            p = steps[i + 1]
            if (readers == [i + 1] and isinstance(p, PoolStep) and p.kind == "max"
                    and is_row_wise(p)):
                out.append([i, i + 1])
                i += 2
                continue
        out.append([i])
        i += 1
    return out


def _segments_full(lw: Lowered, cuts: frozenset[int] = frozenset()) -> list[list[int]]:
    """Maximal runs of row-wise layers; a segment also ends after every step in `cuts`."""
    out: list[list[int]] = []
    run: list[int] = []
    for i, s in enumerate(lw.steps):
        if is_row_wise(s) and len(run) < MAX_SEGMENT_NODES and not (run and run[-1] in cuts):
            run.append(i)
            continue
        if run:
            out.append(run)
            run = []
        if is_row_wise(s):
            run.append(i)
        else:
            out.append([i])
    if run:
        out.append(run)
    return out


def _order(lw: Lowered, nodes: Sequence[int], roots) -> list[int]:
    """Pull scheduling: the step index of every call, in an order that streams."""
    steps = lw.steps
    in_seg = set(nodes)
    done = {i: 0 for i in nodes}
    total = {i: calls(lw, steps[i]) for i in nodes}
    writers: dict[int, list[int]] = {}
    for i in nodes:
        for t in steps[i].writes:
            writers.setdefault(roots(t)[0], []).append(i)
    order: list[int] = []
    completed = dict.fromkeys(nodes, 0)  # leading output rows complete, per layer

    def rows_written(i: int) -> int:
        return completed[i]

    def pull(i: int) -> None:
        s = steps[i]
        for t, rows in call_reads(lw, s, done[i]):
            if not rows:
                continue
            need = max(rows)
            for w in writers.get(roots(t)[0], ()):
                if w in in_seg and w != i:
                    while rows_written(w) <= need:
                        if done[w] >= total[w]:
                            raise ScheduleError(f"{steps[i].name} reads row {need} that "
                                                f"{steps[w].name} never writes")
                        pull(w)
        for _, rows in call_writes(lw, s, done[i]):
            if rows:
                completed[i] = max(completed[i], max(rows) + 1)
        order.append(i)
        done[i] += 1

    for i in reversed(nodes):
        while done[i] < total[i]:
            pull(i)
    return order


def _run_length(positions: Sequence[int]) -> tuple[tuple[int, int], ...]:
    out: list[list[int]] = []
    for p in positions:
        if out and out[-1][0] == p and out[-1][1] < MAX_RUN:
            out[-1][1] += 1
        else:
            out.append([p, 1])
    return tuple((p, n) for p, n in out)


def _ring_candidates(lw: Lowered, seg: Sequence[int], pinned: set[int], roots,
                     outside_readers: dict[int, set[int]]) -> set[int]:
    """Root tensors written and read only inside this segment, and not needed whole."""
    steps = lw.steps
    in_seg = set(seg)
    cands = set()
    for i in seg:
        for t in steps[i].writes:
            r = roots(t)[0]
            if r in pinned:
                continue
            if outside_readers.get(r, set()) - in_seg:
                continue
            writers_out = [j for j, s in enumerate(steps)
                           if j not in in_seg and any(roots(w)[0] == r for w in s.writes)]
            if writers_out:
                continue
            cands.add(r)
    return cands


def _ring_slots(lw: Lowered, order: Sequence[int], cands: set[int], roots) -> dict[int, int]:
    """The fewest slots each candidate needs under this order (step 3 of the algorithm)."""
    steps = lw.steps
    # Every reader's remaining calls: suffix minima of the lowest row each call reads.
    readers: dict[int, dict[int, list[int]]] = {r: {} for r in cands}
    calls_seen: dict[int, int] = {}
    per_call: list[tuple[int, int]] = []  # (step, call index) per tick
    for i in order:
        k = calls_seen.get(i, 0)
        calls_seen[i] = k + 1
        per_call.append((i, k))
    big = 1 << 60
    spans: dict[int, tuple[int, int]] = {}  # root -> (most rows one call reads, reader)
    for i, k in per_call:
        for t, rows in call_reads(lw, steps[i], k):
            r = roots(t)[0]
            if r in cands:
                readers[r].setdefault(i, []).append(min(rows) if rows else big)
                if rows and max(rows) - min(rows) + 1 > spans.get(r, (0, 0))[0]:
                    spans[r] = (max(rows) - min(rows) + 1, i)
    suffix: dict[int, dict[int, list[int]]] = {}
    for r, by_reader in readers.items():
        suffix[r] = {}
        for i, lows in by_reader.items():
            suf = lows[:]
            for j in range(len(suf) - 2, -1, -1):
                suf[j] = min(suf[j], suf[j + 1])
            suffix[r][i] = suf
    next_call = {r: dict.fromkeys(readers[r], 0) for r in cands}
    slots = dict.fromkeys(cands, 1)
    for i, k in per_call:
        s = steps[i]
        for t, rows in call_claims(lw, s, k):
            r = roots(t)[0]
            if r not in cands:
                continue
            lowest = min((suffix[r][j][n] for j, n in next_call[r].items()
                          if n < len(suffix[r][j])), default=big)
            for row in rows:
                if lowest <= row:
                    slots[r] = max(slots[r], row - lowest + 1)
        for t, _ in call_reads(lw, s, k):
            r = roots(t)[0]
            if r in cands and i in next_call[r]:
                next_call[r][i] += 1
    out = {r: min(n, rows_of(lw, r)) for r, n in slots.items()}
    for r, span in spans.items():
        # No order can give a reader fewer rows than one of its calls reads at once (at most
        # the kernel's ring_rows(), fewer where padding clips the window).
        if out[r] < span[0]:
            raise ScheduleError(f"ring of {lw.graph.tensor(r).name}: {out[r]} slots, but "
                                f"{steps[span[1]].name} reads {span[0]} rows at once")
    return out


def check(lw: Lowered, sched: Schedule, roots) -> None:
    """Replays the schedule: every row read is written and still in its ring."""
    steps = lw.steps
    written: dict[int, dict[int, int]] = {}  # root -> writer -> rows complete so far (count)
    claimed: dict[int, dict[int, int]] = {}  # root -> writer -> rows whose slot is taken
    writers: dict[int, set[int]] = {}
    for j, s in enumerate(steps):
        for t in s.writes:
            writers.setdefault(roots(t)[0], set()).add(j)
    seen: dict[int, int] = {}
    for tick, i in enumerate(sched.ticks):
        s = steps[i]
        k = seen.get(i, 0)
        seen[i] = k + 1
        for t, rows in call_reads(lw, s, k):
            r = roots(t)[0]
            n = sched.slots.get(r)
            for row in rows:
                for w in writers.get(r, ()):
                    if written.get(r, {}).get(w, 0) <= row:
                        raise ScheduleError(f"tick {tick}: {s.name} reads row {row} of "
                                            f"{lw.graph.tensor(r).name} before "
                                            f"{steps[w].name} wrote it")
                    if n is not None and claimed.get(r, {}).get(w, 0) - 1 >= row + n:
                        raise ScheduleError(f"tick {tick}: {s.name} reads row {row} of "
                                            f"{lw.graph.tensor(r).name}, already overwritten "
                                            f"in its ring of {n} rows")
        for table, events in ((written, call_writes(lw, s, k)),
                              (claimed, call_claims(lw, s, k))):
            for t, rows in events:
                if rows:
                    r = roots(t)[0]
                    table.setdefault(r, {})
                    table[r][i] = max(table[r].get(i, 0), max(rows) + 1)


def cut_candidates(lw: Lowered, anywhere: bool = False) -> list[int]:
    """Where a streamed segment may end with its last tensor stored whole: after the pools
    (their outputs are the small tensors of a CNN's early stages), or `anywhere` between two
    row-wise layers. The next segment then reads that tensor row by row, and it can be
    written into the consumed part of the segment's input."""
    return [i for i, s in enumerate(lw.steps[:-1])
            if is_row_wise(s) and is_row_wise(lw.steps[i + 1])
            and (anywhere or isinstance(s, PoolStep))]


def schedule(lw: Lowered, mode: str, pinned: set[int], roots,
             cuts: frozenset[int] = frozenset()) -> Schedule:
    """The segments, their order and rings for `mode` ('off', 'full' or 'none'); `cuts`
    (steps) end full streaming's segments early."""
    if mode == "none":
        groups = [[i] for i in range(len(lw.steps))]
    elif mode == "off":
        groups = _segments_off(lw, pinned, roots)
    elif mode == "full":
        groups = _segments_full(lw, cuts)
    else:
        raise ValueError(f"stream mode {mode!r}")
    outside: dict[int, set[int]] = {}
    for j, s in enumerate(lw.steps):
        for t in s.reads:
            outside.setdefault(roots(t)[0], set()).add(j)
    segments = []
    ticks: list[int] = []
    slots: dict[int, int] = {}
    for nodes in groups:
        order = _order(lw, nodes, roots) if len(nodes) > 1 else [nodes[0]] * calls(
            lw, lw.steps[nodes[0]])
        pos = {n: p for p, n in enumerate(nodes)}
        segments.append(Segment(nodes=tuple(nodes), order=_run_length([pos[i] for i in order])))
        ticks.extend(order)
        if len(nodes) > 1:
            cands = _ring_candidates(lw, nodes, pinned, roots, outside)
            slots.update({r: n for r, n in _ring_slots(lw, order, cands, roots).items()
                          if n < rows_of(lw, r)})
    sched = Schedule(mode=mode, segments=tuple(segments), slots=slots, ticks=tuple(ticks))
    check(lw, sched, roots)
    return sched
