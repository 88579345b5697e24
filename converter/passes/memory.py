"""The memory layout: buffers (whole tensors, rings, scratch) and their lifetimes in kernel calls
("ticks"), handed to the standalone planner (converter.passes.planner), then turned back into
an arena offset and row addressing for every tensor."""

from __future__ import annotations

from dataclasses import dataclass

from ..ir.steps import ConvStep, Dims, Lowered, MeanStep
from . import planner, stream
from .concat import View


def root(t: int, aliases: dict[int, int], views: dict[int, View]) -> tuple[int, int]:
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
        return root(t, lw.aliases, views)

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
