"""Graph passes on the lowered schedule: conv+max-pool fusion, concat in place, memory layout.

Each pass takes and returns plain data and can be tested alone:

* `fuse_conv_pool`: a conv whose only consumer is a max pool becomes one streamed step, so the
  conv's full output (788 KB for SqueezeNet's conv1 at 224x224) never exists.
* `concat_in_place`: a conv whose only consumer is a channel concatenation writes straight into
  its channel slice of the concatenated tensor (a larger pixel stride), so the concat costs zero
  copies. Only inputs already at the output's scale qualify; others keep a requantizing copy.
* `layout`: buffers and lifetimes from the schedule, handed to the standalone planner, then
  turned back into an arena offset for every tensor.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from . import planner
from .lower import ConcatStep, ConvPoolStep, ConvStep, Lowered, PoolStep, Step


def _consumers(steps: tuple[Step, ...], tensor: int) -> list[int]:
    return [i for i, s in enumerate(steps) if tensor in s.reads]


def _pinned(lw: Lowered) -> set[int]:
    """Tensors the host reads or writes: they must exist whole."""
    pinned = {lw.input, lw.output}
    if lw.logits is not None:
        pinned.add(lw.logits)
    return pinned | {a for a, b in lw.aliases.items() if b in pinned or a in pinned}


def fuse_conv_pool(lw: Lowered) -> Lowered:
    steps = list(lw.steps)
    pinned = _pinned(lw)
    aliased = set(lw.aliases.values())
    out: list[Step] = []
    skip: set[int] = set()
    for i, s in enumerate(steps):
        if i in skip:
            continue
        if isinstance(s, ConvStep) and s.output not in pinned and s.output not in aliased:
            users = _consumers(lw.steps, s.output)
            if len(users) == 1:
                p = steps[users[0]]
                if isinstance(p, PoolStep) and p.kind == "max" and users[0] > i:
                    out.append(ConvPoolStep(name=f"{s.name}+{p.name}", op_index=s.op_index,
                                            reads=s.reads, writes=p.writes, conv=s, pool=p))
                    skip.add(users[0])
                    continue
        out.append(s)
    return dataclasses.replace(lw, steps=tuple(out))


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


@dataclass(frozen=True)
class Layout:
    plan: planner.Plan
    offsets: dict[int, int]  # tensor index -> arena offset
    scratch: dict[int, tuple[int, int]]  # step index -> (offset, size)
    arena_bytes: int
    buffers: tuple[planner.Buffer, ...]
    naive_bytes: int
    lower_bound: int
    live_bytes: tuple[int, ...]  # per step


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


def layout(lw: Lowered, views: dict[int, View]) -> Layout:
    g = lw.graph
    n = len(lw.steps)
    first: dict[int, int] = {}
    last: dict[int, int] = {}

    def touch(t: int, i: int) -> None:
        r, _ = _root(t, lw.aliases, views)
        first[r] = min(first.get(r, i), i)
        last[r] = max(last.get(r, i), i)

    for i, s in enumerate(lw.steps):
        for t in (*s.reads, *s.writes):
            touch(t, i)
    # The host writes the input before step 0 and reads the results after the last step.
    touch(lw.input, 0)
    touch(lw.output, n - 1)
    if lw.logits is not None:
        touch(lw.logits, n - 1)
    buffers = [planner.Buffer(f"t{r}:{g.tensor(r).name}", g.tensor(r).nbytes, first[r], last[r])
               for r in sorted(first)]
    for i, s in enumerate(lw.steps):
        size = s.scratch_bytes()
        if size:
            buffers.append(planner.Buffer(f"scratch{i}:{s.name}", size, i, i))
    plan = planner.plan(buffers)
    by_root = {int(b.name[1:].split(":", 1)[0]): plan.offset(b.name)
               for b in buffers if b.name.startswith("t")}
    offsets: dict[int, int] = {}
    tensors = set(first)
    for s in lw.steps:
        tensors.update(s.reads)
        tensors.update(s.writes)
    tensors.update({lw.input, lw.output})
    if lw.logits is not None:
        tensors.add(lw.logits)
    tensors.update(views)
    tensors.update(lw.aliases)
    for t in tensors:
        r, off = _root(t, lw.aliases, views)
        offsets[t] = by_root[r] + off
    scratch = {i: (plan.offset(f"scratch{i}:{s.name}"), s.scratch_bytes())
               for i, s in enumerate(lw.steps) if s.scratch_bytes()}
    return Layout(plan=plan, offsets=offsets, scratch=scratch, arena_bytes=plan.arena_size,
                  buffers=tuple(buffers), naive_bytes=planner.naive_size(buffers),
                  lower_bound=planner.lower_bound(buffers),
                  live_bytes=tuple(planner.live_bytes_per_step(buffers)))


def run_passes(lw: Lowered, *, fuse: bool = True, in_place: bool = True
               ) -> tuple[Lowered, Layout]:
    if fuse:
        lw = fuse_conv_pool(lw)
    views: dict[int, View] = {}
    if in_place:
        lw, views = concat_in_place(lw)
    return lw, layout(lw, views)
