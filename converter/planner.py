"""Arena memory planner: places buffers with known lifetimes at byte offsets of one arena.

Stands alone: it knows buffers, sizes and step ranges, nothing about models.

Algorithm
---------
A buffer is live from the step that first writes it to the step that last reads it, inclusive.
Two buffers may share bytes only when their live ranges are disjoint. Finding the smallest
arena is NP-hard (it is dynamic storage allocation), so the planner runs a greedy placement
under several orderings and keeps the smallest result:

1. Order the buffers (strategies: largest first, as TFLite Micro's GreedyMemoryPlanner does;
   longest-lived first; largest size x lifetime first; earliest first).
2. Place each buffer in turn at the lowest aligned offset where it overlaps no already placed
   buffer whose live range intersects its own ("first fit" over the gaps between those buffers,
   scanned in offset order).
3. Ties in every ordering are broken by buffer name, so the result is deterministic.

The arena can never be smaller than the peak of live bytes over all steps (`lower_bound`); the
report shows both, so the gap left by the heuristic is visible. `naive_size` (every buffer in
its own place) is the other reference point.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

DEFAULT_ALIGN = 16


@dataclass(frozen=True)
class Buffer:
    name: str
    size: int
    first: int  # first step that uses it (inclusive)
    last: int  # last step that uses it (inclusive)

    def overlaps_in_time(self, other: Buffer) -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass(frozen=True)
class Plan:
    offsets: dict[str, int]
    arena_size: int
    strategy: str
    buffers: tuple[Buffer, ...]

    def offset(self, name: str) -> int:
        return self.offsets[name]


def align_up(n: int, align: int = DEFAULT_ALIGN) -> int:
    return (n + align - 1) // align * align


def naive_size(buffers: Sequence[Buffer], align: int = DEFAULT_ALIGN) -> int:
    return sum(align_up(b.size, align) for b in buffers)


def live_bytes_per_step(buffers: Sequence[Buffer], align: int = DEFAULT_ALIGN) -> list[int]:
    if not buffers:
        return []
    n_steps = max(b.last for b in buffers) + 1
    live = [0] * n_steps
    for b in buffers:
        for s in range(b.first, b.last + 1):
            live[s] += align_up(b.size, align)
    return live


def lower_bound(buffers: Sequence[Buffer], align: int = DEFAULT_ALIGN) -> int:
    return max(live_bytes_per_step(buffers, align), default=0)


def _place(order: Sequence[Buffer], align: int) -> dict[str, int]:
    placed: list[tuple[int, int, Buffer]] = []  # (offset, end, buffer)
    offsets: dict[str, int] = {}
    for buf in order:
        size = align_up(buf.size, align)
        conflicts = sorted((o, e) for o, e, b in placed if b.overlaps_in_time(buf))
        candidate = 0
        for o, e in conflicts:
            if candidate + size <= o:
                break
            candidate = max(candidate, align_up(e, align))
        offsets[buf.name] = candidate
        placed.append((candidate, candidate + size, buf))
    return offsets


_STRATEGIES: dict[str, Callable[[Buffer], tuple]] = {
    "greedy-by-size": lambda b: (-b.size, b.first, b.name),
    "longest-lived": lambda b: (-(b.last - b.first), -b.size, b.name),
    "size-x-lifetime": lambda b: (-b.size * (b.last - b.first + 1), b.name),
    "earliest-first": lambda b: (b.first, -b.size, b.name),
}


def plan_with(buffers: Sequence[Buffer], strategy: str, align: int = DEFAULT_ALIGN) -> Plan:
    key = _STRATEGIES[strategy]
    offsets = _place(sorted(buffers, key=key), align)
    size = max((offsets[b.name] + align_up(b.size, align) for b in buffers), default=0)
    return Plan(offsets=offsets, arena_size=size, strategy=strategy, buffers=tuple(buffers))


def plan(buffers: Sequence[Buffer], align: int = DEFAULT_ALIGN) -> Plan:
    """The smallest arena any strategy finds; ties go to the first strategy listed."""
    names = [b.name for b in buffers]
    if len(set(names)) != len(names):
        raise ValueError("buffer names must be unique")
    for b in buffers:
        if b.size < 0 or b.first > b.last:
            raise ValueError(f"buffer {b.name!r}: bad size or live range")
    if not buffers:
        return Plan(offsets={}, arena_size=0, strategy="empty", buffers=())
    best: Plan | None = None
    for strategy in _STRATEGIES:
        p = plan_with(buffers, strategy, align)
        if best is None or p.arena_size < best.arena_size:
            best = p
    assert best is not None
    check_overlaps(best)
    return best


def find_overlaps(p: Plan) -> list[tuple[str, str]]:
    """Pairs of buffers that are live at the same time and share bytes (should be none)."""
    bad = []
    bufs = sorted(p.buffers, key=lambda b: b.name)
    for i, a in enumerate(bufs):
        a0 = p.offsets[a.name]
        a1 = a0 + a.size
        for b in bufs[i + 1:]:
            b0 = p.offsets[b.name]
            b1 = b0 + b.size
            if a.size and b.size and a.overlaps_in_time(b) and a0 < b1 and b0 < a1:
                bad.append((a.name, b.name))
    return bad


def check_overlaps(p: Plan) -> None:
    bad = find_overlaps(p)
    if bad:
        pairs = ", ".join(f"{a}/{b}" for a, b in bad)
        raise AssertionError(f"memory plan overlaps live buffers: {pairs}")
    for b in p.buffers:
        if p.offsets[b.name] + b.size > p.arena_size:
            raise AssertionError(f"buffer {b.name!r} ends past the arena")


def ascii_dump(p: Plan, width: int = 64) -> str:
    """One line per step: which buffer occupies each slice of the arena ('.' = free).

    Buffers are lettered in order of their offset; the legend maps letters to names.
    """
    if not p.buffers or p.arena_size == 0:
        return "(empty plan)\n"
    n_steps = max(b.last for b in p.buffers) + 1
    ordered = sorted(p.buffers, key=lambda b: (p.offsets[b.name], b.name))
    symbols = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    letter = {b.name: symbols[i % len(symbols)] for i, b in enumerate(ordered)}
    scale = p.arena_size / width
    lines = [f"arena {p.arena_size} B, {scale:.0f} B per column, strategy {p.strategy}"]
    for step in range(n_steps):
        row = ["."] * width
        for b in ordered:
            if b.first <= step <= b.last and b.size:
                start = int(p.offsets[b.name] / scale)
                end = max(start + 1, int((p.offsets[b.name] + b.size) / scale + 0.999))
                for col in range(start, min(end, width)):
                    row[col] = letter[b.name]
        lines.append(f"{step:4d} |{''.join(row)}|")
    lines.append("legend: " + ", ".join(
        f"{letter[b.name]}={b.name} ({b.size} B @ {p.offsets[b.name]})" for b in ordered))
    return "\n".join(lines) + "\n"
