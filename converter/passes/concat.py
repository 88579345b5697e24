"""Concatenations: `concat_in_place` lets a conv whose only consumer is a channel concatenation
write straight into its channel slice of the concatenated tensor (a larger pixel stride), so the
concat costs zero copies; only inputs already at the output's scale qualify, others keep a
requantizing copy. `split_concats` turns what remains into one copy step per part."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..ir.steps import ConcatPartStep, ConcatStep, ConvStep, Lowered, Step


def consumers(steps: tuple[Step, ...], tensor: int) -> list[int]:
    return [i for i, s in enumerate(steps) if tensor in s.reads]


def pinned_tensors(lw: Lowered) -> set[int]:
    """Tensors the host reads or writes: they must exist whole."""
    pinned = {lw.input, lw.output}
    if lw.logits is not None:
        pinned.add(lw.logits)
    return pinned | {a for a, b in lw.aliases.items() if b in pinned or a in pinned}


@dataclass(frozen=True)
class View:
    """A tensor stored inside another: `byte_offset` into it, with its own pixel stride."""

    root: int
    byte_offset: int


def concat_in_place(lw: Lowered) -> tuple[Lowered, dict[int, View]]:
    steps = list(lw.steps)
    pinned = pinned_tensors(lw)
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
                  and len(consumers(tuple(steps), part.input)) == 1)
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
