"""The standalone arena planner: exact offsets, overlap checking, ASCII dump, baselines."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from converter.passes import planner
from converter.passes.planner import Buffer, Plan


def test_exact_offsets_chain():
    # a -> b -> c -> d: each buffer is live with its neighbours only.
    bufs = [Buffer("a", 100, 0, 1), Buffer("b", 200, 1, 2), Buffer("c", 50, 2, 3),
            Buffer("d", 300, 3, 3)]
    p = planner.plan(bufs, align=16)
    # Sizes align to 112, 208, 64, 304; the peak is c + d at step 3.
    assert p.offsets == {"d": 0, "b": 0, "a": 208, "c": 304}
    assert p.arena_size == planner.lower_bound(bufs, align=16) == 368
    planner.check_overlaps(p)


def test_exact_offsets_greedy_by_size():
    bufs = [Buffer("in", 64, 0, 0), Buffer("mid", 128, 0, 1), Buffer("out", 32, 1, 2)]
    p = planner.plan_with(bufs, "greedy-by-size", align=16)
    # largest first at 0; 'in' shares time with 'mid' so goes above it; 'out' is live with
    # 'mid' only, so it also stacks above 'mid' at the first free gap.
    assert p.offsets == {"mid": 0, "in": 128, "out": 128}
    assert p.arena_size == 192


def test_move_apart_keeps_two_buffers_off_each_others_bytes():
    """The model's output must never share bytes with its input (passes.layout): move_apart
    re-places it at the lowest free place outside the input, growing the arena only when no
    such place exists."""
    bufs = [Buffer("in", 64, 0, 0), Buffer("mid", 128, 0, 1), Buffer("out", 32, 1, 2)]
    p = planner.plan_with(bufs, "greedy-by-size", align=16)
    assert p.offsets["out"] == p.offsets["in"] == 128  # shared: they never live together
    moved = planner.move_apart(p, "out", "in", align=16)
    assert moved.offsets["out"] == 192 and moved.arena_size == 224
    assert moved.offsets["in"] == 128 and moved.offsets["mid"] == 0
    planner.check_overlaps(moved)
    # A hole below the input, free while the output lives, is taken without growing the arena.
    bufs = [Buffer("early", 48, 0, 0), Buffer("in", 64, 0, 0), Buffer("big", 128, 1, 1),
            Buffer("out", 32, 2, 2)]
    p = planner.plan_with(bufs, "greedy-by-size", align=16)
    moved = planner.move_apart(p, "out", "in", align=16)
    a, b = moved.offsets["out"], moved.offsets["in"]
    assert a + 32 <= b or b + 64 <= a
    assert moved.arena_size == p.arena_size
    planner.check_overlaps(moved)


def test_disjoint_lifetimes_share_memory():
    bufs = [Buffer("x", 1000, 0, 0), Buffer("y", 1000, 1, 1), Buffer("z", 1000, 2, 2)]
    p = planner.plan(bufs)
    assert set(p.offsets.values()) == {0}
    assert p.arena_size == 1008  # aligned to 16


def test_overlap_checker_catches_a_bad_plan():
    bufs = (Buffer("a", 100, 0, 1), Buffer("b", 100, 1, 2))
    bad = Plan(offsets={"a": 0, "b": 50}, arena_size=150, strategy="hand", buffers=bufs)
    assert planner.find_overlaps(bad) == [("a", "b")]
    with pytest.raises(AssertionError, match="overlaps live buffers: a/b"):
        planner.check_overlaps(bad)


def test_ascii_dump_shows_every_buffer_and_step():
    bufs = [Buffer("input", 64, 0, 0), Buffer("conv", 64, 0, 1), Buffer("pool", 32, 1, 2)]
    text = planner.ascii_dump(planner.plan(bufs, align=16), width=16)
    lines = text.splitlines()
    assert lines[0].startswith("arena 128 B")
    assert len([ln for ln in lines if ln.strip().startswith(("0 |", "1 |", "2 |"))]) == 3
    assert "input (64 B @" in text and "conv (64 B @" in text and "pool (32 B @" in text


def test_rejects_bad_buffers():
    with pytest.raises(ValueError, match="unique"):
        planner.plan([Buffer("a", 1, 0, 0), Buffer("a", 1, 0, 0)])
    with pytest.raises(ValueError, match="bad size or live range"):
        planner.plan([Buffer("a", 1, 2, 1)])


buffers = st.lists(
    st.tuples(st.integers(1, 5000), st.integers(0, 20), st.integers(0, 6)),
    min_size=1, max_size=25,
).map(lambda xs: [Buffer(f"b{i}", size, first, first + dur)
                  for i, (size, first, dur) in enumerate(xs)])


@given(buffers)
def test_plan_is_valid_and_beats_the_baselines(bufs):
    p = planner.plan(bufs)
    assert planner.find_overlaps(p) == []
    assert planner.lower_bound(bufs) <= p.arena_size
    assert p.arena_size <= planner.plan_with(bufs, "greedy-by-size").arena_size
    assert p.arena_size <= planner.naive_size(bufs)
    for b in bufs:
        assert p.offsets[b.name] % planner.DEFAULT_ALIGN == 0


# --- buffers written and freed row by row ------------------------------------------------------

def test_a_tensor_written_into_the_consumed_part_of_another():
    """An input of 10 rows of 100 B read two rows per step (steps 0-4), and an output of 5
    rows of 100 B written one row per step from step 1: the output trails the consumed input,
    so both fit in the input's 1,000 B."""
    inp = Buffer("in", 1000, 0, 4, frees=tuple((s, 200 * s) for s in range(1, 5)))
    out = Buffer("out", 500, 1, 6, fills=tuple((s, 100 * s) for s in range(1, 6)))
    p = planner.plan([inp, out], align=16)
    assert p.offsets == {"in": 0, "out": 0}
    assert p.arena_size == 1008 and planner.find_overlaps(p) == []
    # Live bytes: at step 1 the input keeps 800 B and the output holds 100 B.
    assert planner.live_bytes_per_step([inp, out], align=1)[:3] == [1000, 900, 800]


def test_a_tensor_that_would_catch_up_with_unread_rows_is_not_put_there():
    """Written faster than the input is consumed (200 B per step against 100 B), the output
    would overwrite rows not yet read: it must go elsewhere."""
    inp = Buffer("in", 1000, 0, 9, frees=tuple((s, 100 * s) for s in range(1, 10)))
    out = Buffer("out", 1000, 1, 9, fills=tuple((s, min(1000, 200 * s)) for s in range(1, 10)))
    p = planner.plan([inp, out], align=16)
    assert p.offsets["out"] != p.offsets["in"]
    assert planner.find_overlaps(p) == []
    bad = Plan(offsets={"in": 0, "out": 0}, arena_size=1008, strategy="hand",
               buffers=(inp, out))
    assert planner.find_overlaps(bad) == [("in", "out")]
    with pytest.raises(AssertionError, match="overlaps live buffers: in/out"):
        planner.check_overlaps(bad)


def test_a_buffer_starting_later_uses_freed_bytes():
    inp = Buffer("in", 600, 0, 5, frees=((2, 300), (4, 600)))
    ring = Buffer("ring", 300, 2, 5)
    early = Buffer("early", 300, 1, 5)
    p = planner.plan([inp, ring, early], align=4)
    # 'ring' starts when the first 300 B of the input are dead: it goes there; 'early' is
    # live before anything is freed, so it cannot.
    assert p.offsets["ring"] == p.offsets["in"]
    assert p.arena_size == 900
    assert planner.lower_bound([inp, ring, early], align=4) == 900


def test_events_must_grow():
    with pytest.raises(ValueError, match="frees must grow"):
        planner.plan([Buffer("a", 100, 0, 3, frees=((2, 50), (1, 60)))])
    with pytest.raises(ValueError, match="fills must grow"):
        planner.plan([Buffer("a", 100, 0, 3, fills=((0, 50), (1, 40)))])
    with pytest.raises(ValueError, match="fills must grow"):
        planner.plan([Buffer("a", 100, 0, 3, fills=((0, 150),))])


def test_ascii_dump_collapses_identical_steps_and_shows_shrinking():
    inp = Buffer("input", 64, 0, 3, frees=((2, 32),))
    ring = Buffer("ring", 16, 0, 3)
    text = planner.ascii_dump(planner.plan([inp, ring], align=16), width=10)
    spans = [ln.split("|")[0].strip() for ln in text.splitlines()[1:-1]]
    assert spans == ["0-1", "2-3"]


dynamic = st.lists(
    st.tuples(st.integers(1, 40), st.integers(1, 200), st.integers(0, 15), st.integers(1, 8),
              st.sampled_from(["static", "frees", "fills"])),
    min_size=1, max_size=14,
)


@given(dynamic)
def test_dynamic_plans_are_valid(specs):
    bufs = []
    for i, (rows, row_bytes, first, dur, kind) in enumerate(specs):
        size = rows * row_bytes
        last = first + dur
        events = tuple((first + k, min(size, (k + 1) * row_bytes * max(1, rows // dur)))
                       for k in range(dur))
        frees = tuple((s + 1, n) for s, n in events if s + 1 <= last) if kind == "frees" else ()
        fills = events if kind == "fills" else ()
        bufs.append(Buffer(f"b{i}", size, first, last, frees=frees, fills=fills))
    p = planner.plan(bufs)
    assert planner.find_overlaps(p) == []
    assert planner.lower_bound(bufs) <= p.arena_size <= planner.naive_size(bufs)
