"""Row streaming (converter/passes/stream.py): ring sizes, the replay check, and random chains of
convs, pools and ADDs run row by row, bit for bit against LiteRT BUILTIN_REF."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from golden import reference
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from tflbuild import GraphBuilder, add_conv, conv_out_size, pool_options

from converter import convert, targets
from converter.frontend import tflite_reader
from converter.ir.lower import lower
from converter.ir.steps import InputStep
from converter.passes import concat, memory, select, stream

Q = (0.05, -3)  # every activation's scale and zero point: the ADDs need no requantization


def _conv(g, x, shape, filters, k, stride=1, padding="same", rng=None, name="c"):
    return add_conv(g, x, shape, Q, filters, (k, k), (stride, stride), padding, "relu",
                    [0.01] * filters, Q, rng, name=name)


def _schedule(buf: bytes, mode: str = "full"):
    lw = lower(tflite_reader.read_model_bytes(buf))
    lw = concat.split_concats(select.select_kernels(lw, "portable"))

    def roots(t: int) -> tuple[int, int]:
        return memory.root(t, lw.aliases, {})

    return lw, roots, stream.schedule(lw, mode, concat.pinned_tensors(lw), roots)


def _fire_like(rng) -> bytes:
    """x -> a: 1x1 -> b: 3x3 -> y = a + b: `a` is read by a 3x3 window and, one row behind
    the window's last row, by the ADD."""
    g = GraphBuilder()
    x = g.tensor("x", (1, 12, 10, 4), "int8", *Q)
    a, sa = _conv(g, x, (1, 12, 10, 4), 6, 1, rng=rng, name="a")
    b, _ = _conv(g, a, sa, 6, 3, rng=rng, name="b")
    y = g.tensor("y", sa, "int8", *Q)
    g.op("ADD", [a, b], [y], "AddOptions", None)
    return g.build([x], [y])


def test_ring_sizes_follow_the_windows():
    lw, _, sched = _schedule(_fire_like(np.random.default_rng(0)))
    a = lw.steps[0].output
    b = lw.steps[1].output
    assert [len(seg.nodes) for seg in sched.segments] == [3]
    # The 3x3 conv reads rows k-1..k+1 of `a`; the ADD reads row k of `a` and of `b`.
    assert sched.slots == {a: 3, b: 1}
    # Every call of every layer exactly once: a's 12 rows, b's 12 rows, the ADD's 12 rows.
    assert sorted(sched.ticks) == [0] * 12 + [1] * 12 + [2] * 12


def test_the_replay_check_catches_a_ring_too_small():
    lw, roots, sched = _schedule(_fire_like(np.random.default_rng(0)))
    a = lw.steps[0].output
    bad = dataclasses.replace(sched, slots={**sched.slots, a: 2})
    with pytest.raises(stream.ScheduleError, match="already overwritten in its ring of 2 rows"):
        stream.check(lw, bad, roots)
    early = dataclasses.replace(sched, ticks=(1, *sched.ticks[1:]))
    with pytest.raises(stream.ScheduleError, match="reads row 0 of a/out before"):
        stream.check(lw, early, roots)


def test_rows_per_call_geometry_and_rings():
    """A conv making 4 rows per call: calls cover its 12 rows in order, each reads the union
    of its rows' windows, and the rings grow to what the bigger calls hold at once."""
    lw, roots, _ = _schedule(_fire_like(np.random.default_rng(0)))
    b = lw.steps[1]
    four = dataclasses.replace(b, rows_per_call=4)
    assert stream.calls(lw, four) == 3
    assert [stream.call_rows(four, k) for k in range(3)] == [
        (0, 1, 2, 3), (4, 5, 6, 7), (8, 9, 10, 11)]
    assert stream.call_reads(lw, four, 0) == [(b.input, (0, 1, 2, 3, 4))]
    assert stream.call_reads(lw, four, 2) == [(b.input, tuple(range(7, 12)))]
    assert stream.call_writes(lw, four, 1) == [(b.output, (4, 5, 6, 7))]
    five = dataclasses.replace(b, rows_per_call=5)  # a short last call
    assert [stream.call_rows(five, k) for k in range(3)] == [
        tuple(range(5)), tuple(range(5, 10)), (10, 11)]
    lw4 = dataclasses.replace(lw, steps=(lw.steps[0], four, *lw.steps[2:]))
    sched = stream.schedule(lw4, "full", concat.pinned_tensors(lw4), roots)  # replay-checked
    assert sorted(sched.ticks) == [0] * 12 + [1] * 3 + [2] * 12
    # `a` holds the 6 rows the 4-row call reads (one ahead of the ADD's row), `b` 4 rows.
    assert sched.slots == {b.input: 6, b.output: 4}


def test_push_pool_needs_no_window_ring():
    g = GraphBuilder()
    rng = np.random.default_rng(1)
    x = g.tensor("x", (1, 15, 15, 3), "int8", *Q)
    c, sc = _conv(g, x, (1, 15, 15, 3), 8, 3, stride=2, padding="valid", rng=rng)
    y = g.tensor("y", (1, 3, 3, 8), "int8", *Q)
    g.op("MAX_POOL_2D", [c], [y], "Pool2DOptions", pool_options((3, 3), (2, 2)))
    lw, _, sched = _schedule(g.build([x], [y]), "off")
    # conv -> max pool is streamed even unstreamed; each conv row is folded into the pool's
    # output rows as it comes, so one row of the conv output is all that exists.
    assert sched.slots == {c: 1}
    assert lw.steps[1].push
    # The pool's output rows are complete after the last row of their windows.
    assert stream.push_span(lw.steps[1], 2) == (0, 2)
    assert stream.call_writes(lw, lw.steps[1], 2) == [(y, (0,))]
    assert stream.call_claims(lw, lw.steps[1], 2) == [(y, (1,))]


# --- random chains, streamed, against the reference --------------------------------------

EXAMPLES = settings(max_examples=25, deadline=None,
                    phases=[Phase.explicit, Phase.reuse, Phase.generate],
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

layer = st.one_of(
    st.tuples(st.just("conv"), st.sampled_from([1, 3, 5]), st.integers(1, 2),
              st.sampled_from(["same", "valid"]), st.integers(1, 9)),
    st.tuples(st.just("pool"), st.sampled_from([2, 3]), st.integers(1, 2),
              st.sampled_from(["same", "valid"]), st.just(0)),
    st.tuples(st.just("bypass"), st.just(3), st.just(1), st.just("same"), st.just(0)),
)


chain_cases = st.fixed_dictionaries(dict(
    h=st.integers(9, 20), w=st.integers(5, 14), c=st.integers(1, 5),
    layers=st.lists(layer, min_size=1, max_size=6), seed=st.integers(0, 2**31),
    stream=st.sampled_from(["full", "auto", "off"])))


def build_chain(case):
    """A chain of convs, max pools and residual blocks; None when no layer fits the input."""
    rng = np.random.default_rng(case["seed"])
    g = GraphBuilder()
    shape = (1, case["h"], case["w"], case["c"])
    x = g.tensor("x", shape, "int8", *Q)
    t = x
    for n, (kind, k, s, pad, filters) in enumerate(case["layers"]):
        _, hh, ww, cc = shape
        if pad == "valid" and (hh < k or ww < k):
            continue
        if kind == "conv":
            t, shape = _conv(g, t, shape, filters, k, s, pad, rng, name=f"c{n}")
        elif kind == "pool":
            oh, ow = conv_out_size(hh, k, s, pad), conv_out_size(ww, k, s, pad)
            y = g.tensor(f"p{n}", (1, oh, ow, cc), "int8", *Q)
            g.op("MAX_POOL_2D", [t], [y], "Pool2DOptions", pool_options((k, k), (s, s), pad))
            t, shape = y, (1, oh, ow, cc)
        else:  # a residual block: t + conv3x3(conv1x1(t))
            a, sa = _conv(g, t, shape, cc, 1, rng=rng, name=f"s{n}")
            b, _ = _conv(g, a, sa, cc, 3, rng=rng, name=f"e{n}")
            y = g.tensor(f"add{n}", shape, "int8", *Q)
            g.op("ADD", [t, b], [y], "AddOptions", None)
            t = y
    if t is x:
        return None
    buf = g.build([x], [t])
    return buf, rng.integers(-128, 128, size=(3, *shape_of(buf)[1:]), dtype=np.int8)


@EXAMPLES
@given(chain_cases)
def test_random_chains_stream_bit_exact(sqz_runner, case):
    built = build_chain(case)
    if built is None:
        return
    buf, xs = built
    ours = sqz_runner.run(buf, xs, stream=case["stream"])
    assert np.array_equal(ours, reference(buf, xs))


def shape_of(buf: bytes) -> tuple[int, ...]:
    g = tflite_reader.read_model_bytes(buf)
    return tuple(g.tensor(g.inputs[0]).shape)


def test_streaming_keeps_the_macs_and_lowers_the_arena(sq96):
    off = convert.convert_tflite(sq96, targets.load("host"), model_name="m",
                                 source_name="m", stream="off", input_mode="whole")
    auto = convert.convert_tflite(sq96, targets.load("host"), model_name="m",
                                  source_name="m", input_mode="whole")
    assert sum(s.macs for s in auto.lowered.steps) == sum(s.macs for s in off.lowered.steps)
    assert auto.layout.schedule.mode == "full"
    assert auto.layout.arena_bytes < 0.5 * off.layout.arena_bytes
    # A whole input is consumed row by row, and later tensors are written into its consumed
    # part.
    inp = next(b for b in auto.layout.buffers if b.name.startswith(f"t{auto.lowered.input}:"))
    assert inp.frees
    inside = [b for b in auto.layout.buffers if b is not inp and
              auto.layout.plan.offsets[inp.name] <= auto.layout.plan.offsets[b.name] <
              auto.layout.plan.offsets[inp.name] + inp.size and b.first > inp.first]
    assert inside


def test_input_ring_holds_only_the_rows_still_read(sq96):
    """--input ring (the default): an InputStep feeds the input row by row into a ring the
    scheduler sized and checked; the MACs are those of the whole input's schedule and the arena
    is smaller."""
    whole = convert.convert_tflite(sq96, targets.load("host"), model_name="m",
                                   source_name="m", input_mode="whole")
    ring = convert.convert_tflite(sq96, targets.load("host"), model_name="m", source_name="m")
    lw = ring.lowered
    assert isinstance(lw.steps[0], InputStep) and ring.input_mode == "ring"
    assert sum(s.macs for s in lw.steps) == sum(s.macs for s in whole.lowered.steps)
    h = lw.graph.tensor(lw.input).shape[1]
    slots = ring.layout.rows[lw.input].slots
    conv1 = lw.steps[1]
    assert conv1.filter_dims.h <= slots < h
    inp = next(b for b in ring.layout.buffers if b.name.startswith(f"t{lw.input}:"))
    assert inp.size == slots * lw.steps[0].row_bytes
    assert ring.layout.arena_bytes < whole.layout.arena_bytes
    # Every input row arrives (one call each) before the first call that reads it.
    ticks = ring.layout.schedule.ticks
    assert ticks.count(0) == h and ticks[0] == 0


@pytest.fixture(scope="module")
def sq96():
    from converter.frontend import sources

    return sources.resolve("squeezenet1_1", input_size=(96, 96), classes=10,
                           calib_samples=2).tflite
