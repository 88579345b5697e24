"""The standalone arena planner: exact offsets, overlap checking, ASCII dump, baselines."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from converter import planner
from converter.planner import Buffer, Plan


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
