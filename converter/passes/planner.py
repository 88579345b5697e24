"""Arena memory planner: places buffers with known lifetimes at byte offsets of one arena.

Stands alone: it knows buffers, sizes and step ranges, nothing about models.

Algorithm
---------
A buffer is live from the step that first writes it to the step that last reads it, inclusive.
Within that range its live bytes may change, because tensors are written and read row by row:

* `fills`: a tensor written front to back holds only the rows written so far; the bytes past
  them are still free (step, bytes written from that step on; both increasing);
* `frees`: a tensor read front to back frees its first rows once every reader is past them
  (step, dead bytes at the start from that step on; both increasing).

At each step a buffer's live bytes are the interval [dead, written) of it. Two buffers may
share bytes only if their live intervals never intersect at a step where both are live. So a
later tensor can be written into the consumed part of an earlier one, provided it never
catches up with the rows still to be read; `find_overlaps` verifies exactly that for every
pair at every step where either changes.

Finding the smallest arena is NP-hard (it is dynamic storage allocation), so the planner runs a
greedy placement under several orderings and keeps the smallest result:

1. Order the buffers (strategies: largest first, as TFLite Micro's GreedyMemoryPlanner does;
   buffers that free their start first; longest-lived first; largest size x lifetime first;
   earliest first).
2. Place each buffer in turn at the lowest aligned offset where its live interval meets no
   already placed buffer's at any step ("first fit" over the forbidden offset ranges, scanned in
   order).
3. Ties in every ordering are broken by buffer name, so the result is deterministic.

The arena can never be smaller than the peak of live bytes over all steps (`lower_bound`); the
report shows both, so the gap left by the heuristic is visible. `naive_size` (every buffer in
its own place) is the other reference point.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

DEFAULT_ALIGN = 16


def _at(events: tuple[tuple[int, int], ...], step: int, before: int) -> int:
    value = before
    for s, n in events:
        if s > step:
            break
        value = n
    return value


@dataclass(frozen=True)
class Buffer:
    name: str
    size: int
    first: int  # first step that uses it (inclusive)
    last: int  # last step that uses it (inclusive)
    # (step, bytes): from that step on, the first `bytes` bytes are dead. Both increasing.
    frees: tuple[tuple[int, int], ...] = ()
    # (step, bytes): from that step on, the first `bytes` bytes are written. Both increasing;
    # empty: the whole buffer is live from `first`.
    fills: tuple[tuple[int, int], ...] = ()

    def overlaps_in_time(self, other: Buffer) -> bool:
        return self.first <= other.last and other.first <= self.last

    def dead_bytes(self, step: int) -> int:
        """Bytes at the start of the buffer that no later step reads, at `step`."""
        return _at(self.frees, step, 0)

    def written_bytes(self, step: int) -> int:
        return _at(self.fills, step, 0) if self.fills else self.size

    def live(self, step: int) -> tuple[int, int]:
        """The live interval [lo, hi) of the buffer at `step`, relative to its offset."""
        return self.dead_bytes(step), self.written_bytes(step)

    @cached_property
    def changes(self) -> tuple[int, ...]:
        """Steps at which the live interval changes (its first step included)."""
        return tuple(sorted({self.first, *(s for s, _ in self.frees),
                             *(s for s, _ in self.fills)}))

    @property
    def dynamic(self) -> bool:
        return bool(self.frees or self.fills)


def _common_steps(a: Buffer, b: Buffer) -> list[int]:
    """Every step at which the pair's live intervals may change while both are live."""
    lo, hi = max(a.first, b.first), min(a.last, b.last)
    steps = {lo}
    for s in (*a.changes, *b.changes):
        if lo < s <= hi:
            steps.add(s)
    return sorted(steps)


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
    """Bytes live at each step. Static buffers count aligned (offsets are aligned, so no two
    share a block); once some buffer is written or freed row by row, every buffer counts its
    exact live bytes, as aligned blocks may then be shared: still a true lower bound."""
    if not buffers:
        return []
    n_steps = max(b.last for b in buffers) + 1
    live = [0] * n_steps
    exact = any(b.dynamic for b in buffers)
    for b in buffers:
        if not b.dynamic:
            size = b.size if exact else align_up(b.size, align)
            for s in range(b.first, b.last + 1):
                live[s] += size
            continue
        for s in range(b.first, b.last + 1):
            lo, hi = b.live(s)
            live[s] += max(0, hi - lo)
    return live


def lower_bound(buffers: Sequence[Buffer], align: int = DEFAULT_ALIGN) -> int:
    return max(live_bytes_per_step(buffers, align), default=0)


def _forbidden(placed: Buffer, offset: int, new: Buffer) -> list[tuple[int, int]]:
    """Open ranges (lo, hi) of offsets where `new` would meet `placed` (at `offset`)."""
    if not (placed.dynamic or new.dynamic):
        return [(offset - new.size, offset + placed.size)]
    out = []
    for s in _common_steps(placed, new):
        p_lo, p_hi = placed.live(s)
        n_lo, n_hi = new.live(s)
        if p_hi > p_lo and n_hi > n_lo:
            out.append((offset + p_lo - n_hi, offset + p_hi - n_lo))
    return out


def _place(order: Sequence[Buffer], align: int) -> dict[str, int]:
    placed: list[tuple[int, Buffer]] = []  # (offset, buffer)
    offsets: dict[str, int] = {}
    for buf in order:
        ranges = sorted(r for o, b in placed if b.overlaps_in_time(buf)
                        for r in _forbidden(b, o, buf))
        candidate = 0
        for lo, hi in ranges:
            if candidate <= lo:
                break
            if candidate < hi:
                candidate = align_up(hi, align)
        offsets[buf.name] = candidate
        placed.append((candidate, buf))
    return offsets


def move_apart(p: Plan, name: str, apart: str, align: int = DEFAULT_ALIGN) -> Plan:
    """`p` with buffer `name` moved to the lowest aligned offset where it meets no other buffer
    while live and shares no byte at all with buffer `apart`, whenever either lives (the arena
    grows only when no lower place fits)."""
    buf = next(b for b in p.buffers if b.name == name)
    other = next(b for b in p.buffers if b.name == apart)
    ranges = sorted([r for b in p.buffers if b.name != name and b.overlaps_in_time(buf)
                     for r in _forbidden(b, p.offsets[b.name], buf)]
                    + [(p.offsets[apart] - buf.size, p.offsets[apart] + other.size)])
    candidate = 0
    for lo, hi in ranges:
        if candidate <= lo:
            break
        if candidate < hi:
            candidate = align_up(hi, align)
    moved = Plan(offsets={**p.offsets, name: candidate},
                 arena_size=max(p.arena_size, candidate + align_up(buf.size, align)),
                 strategy=f"{p.strategy}, {name} apart from {apart}", buffers=p.buffers)
    check_overlaps(moved)
    return moved


_STRATEGIES: dict[str, Callable[[Buffer], tuple]] = {
    "greedy-by-size": lambda b: (-b.size, b.first, b.name),
    # Buffers that free their start first, so later ones can move into the freed bytes.
    "freeing-first": lambda b: (not b.frees, -b.size, b.first, b.name),
    "longest-lived": lambda b: (-(b.last - b.first), -b.size, b.name),
    "size-x-lifetime": lambda b: (-b.size * (b.last - b.first + 1), b.name),
    "earliest-first": lambda b: (b.first, -b.size, b.name),
}


def plan_with(buffers: Sequence[Buffer], strategy: str, align: int = DEFAULT_ALIGN) -> Plan:
    key = _STRATEGIES[strategy]
    offsets = _place(sorted(buffers, key=key), align)
    size = max((offsets[b.name] + align_up(b.size, align) for b in buffers), default=0)
    return Plan(offsets=offsets, arena_size=size, strategy=strategy, buffers=tuple(buffers))


def _check_events(b: Buffer) -> None:
    for name, events in (("frees", b.frees), ("fills", b.fills)):
        pairs = list(zip(events, events[1:], strict=False))
        if any(n2 < n1 or s2 <= s1 for (s1, n1), (s2, n2) in pairs) or \
                any(n > b.size or n < 0 for _, n in events):
            raise ValueError(f"buffer {b.name!r}: {name} must grow with the step, within size")


def plan(buffers: Sequence[Buffer], align: int = DEFAULT_ALIGN) -> Plan:
    """The smallest arena any strategy finds; ties go to the first strategy listed."""
    names = [b.name for b in buffers]
    if len(set(names)) != len(names):
        raise ValueError("buffer names must be unique")
    for b in buffers:
        if b.size < 0 or b.first > b.last:
            raise ValueError(f"buffer {b.name!r}: bad size or live range")
        _check_events(b)
    if not buffers:
        return Plan(offsets={}, arena_size=0, strategy="empty", buffers=())
    best: Plan | None = None
    for strategy in _STRATEGIES:
        p = plan_with(buffers, strategy, align)
        if best is None or p.arena_size < best.arena_size:
            best = p
    assert best is not None
    if any(b.dynamic for b in buffers):
        # Greedy placement of changing buffers can fragment worse than of whole ones: the plan
        # that treats every buffer as live whole is valid too, so it is never worse than that.
        whole = [Buffer(b.name, b.size, b.first, b.last) for b in buffers]
        for strategy in _STRATEGIES:
            p = plan_with(whole, strategy, align)
            if p.arena_size < best.arena_size:
                best = Plan(offsets=p.offsets, arena_size=p.arena_size,
                            strategy=f"{strategy} (buffers whole)", buffers=tuple(buffers))
    check_overlaps(best)
    return best


def find_overlaps(p: Plan) -> list[tuple[str, str]]:
    """Pairs of buffers whose live bytes meet at some step (should be none)."""
    bad = []
    bufs = sorted(p.buffers, key=lambda b: b.name)
    for i, a in enumerate(bufs):
        a0 = p.offsets[a.name]
        for b in bufs[i + 1:]:
            if not (a.size and b.size and a.overlaps_in_time(b)):
                continue
            b0 = p.offsets[b.name]
            if not (a0 < b0 + b.size and b0 < a0 + a.size):
                continue  # never the same bytes
            for s in _common_steps(a, b):
                a_lo, a_hi = a.live(s)
                b_lo, b_hi = b.live(s)
                if a_hi > a_lo and b_hi > b_lo and a0 + a_lo < b0 + b_hi and \
                        b0 + b_lo < a0 + a_hi:
                    bad.append((a.name, b.name))
                    break
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

    Consecutive steps with the same picture share one line (a row-streamed schedule has
    thousands of steps and long stretches where only the rows in the rings change). Buffers
    are lettered in order of their offset; the legend maps letters to names.
    """
    if not p.buffers or p.arena_size == 0:
        return "(empty plan)\n"
    n_steps = max(b.last for b in p.buffers) + 1
    ordered = sorted(p.buffers, key=lambda b: (p.offsets[b.name], b.name))
    symbols = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    letter = {b.name: symbols[i % len(symbols)] for i, b in enumerate(ordered)}
    scale = p.arena_size / width
    lines = [f"arena {p.arena_size} B, {scale:.0f} B per column, strategy {p.strategy}"]
    prev, since = None, 0
    for step in range(n_steps + 1):
        row = None
        if step < n_steps:
            cells = ["."] * width
            for b in ordered:
                if b.first <= step <= b.last and b.size:
                    lo, hi = b.live(step)
                    if hi <= lo:
                        continue
                    start = int((p.offsets[b.name] + lo) / scale)
                    end = max(start + 1, int((p.offsets[b.name] + hi) / scale + 0.999))
                    for col in range(start, min(end, width)):
                        cells[col] = letter[b.name]
            row = "".join(cells)
        if row != prev:
            if prev is not None:
                span = f"{since}" if since == step - 1 else f"{since}-{step - 1}"
                lines.append(f"{span:>9} |{prev}|")
            prev, since = row, step
    lines.append("legend: " + ", ".join(
        f"{letter[b.name]}={b.name} ({b.size} B @ {p.offsets[b.name]})" for b in ordered))
    return "\n".join(lines) + "\n"
