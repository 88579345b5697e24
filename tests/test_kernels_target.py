"""The kernels' golden and hypothesis cases on the emulated boards, bit for bit against LiteRT
BUILTIN_REF: each board runs its own architecture's kernel variants (targets/<board>.toml),
a batch of cases per firmware boot (tests/qemu_batch.py).

The strategies and model builders are those of tests/test_kernels_golden.py (the host runs)."""

from __future__ import annotations

import numpy as np
import pytest
import test_kernels_golden as golden_cases
import test_packing
import test_stream
from golden import reference
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from qemu_batch import QemuBatch, missing_tools

from converter import arch, targets
from converter.device import qemu
from converter.ir.steps import ConvStep, PoolStep

# One board per architecture: mps2-an386-128k runs mps2-an386's kernels with less RAM (its
# limits are tests/test_budget_ram.py's business), so its kernel cases would repeat these.
BOARDS = sorted({targets.load(b).arch: b for b in sorted(qemu.BOARDS, reverse=True)}.values())
# Cases per batch: one firmware build and boot each. Hypothesis draws one batch per kernel and
# board (no shrinking: a failure names the case and is readable as generated).
BATCH = 24
ONE_BATCH = settings(max_examples=1, deadline=None,
                     phases=[Phase.explicit, Phase.reuse, Phase.generate],
                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                            HealthCheck.too_slow,
                                            HealthCheck.data_too_large])

KERNELS = {
    "conv2d": (golden_cases.conv_cases(), golden_cases.build_conv2d),
    "pool": (golden_cases.pool_cases(), golden_cases.build_pool),
    "mean": (golden_cases.mean_cases, golden_cases.build_mean),
    "add": (golden_cases.add_cases, golden_cases.build_add),
    "softmax": (golden_cases.softmax_cases, golden_cases.build_softmax),
    "concatenation": (golden_cases.concat_cases, golden_cases.build_concatenation),
    "concatenation_with_differing_scales": (
        golden_cases.concat_requantize_cases,
        golden_cases.build_concatenation_with_differing_scales),
    "fully_connected": (golden_cases.fc_cases, golden_cases.build_fully_connected),
    "quantize_requantize": (golden_cases.requantize_cases,
                            golden_cases.build_quantize_requantize),
    # Layers streamed row by row (rings, push pools, residual ADDs) and packed filters.
    "streamed_chain": (test_stream.chain_cases, test_stream.build_chain),
    "packed_conv": (test_packing.packed_cases, test_packing.build_packed_convs),
    # Shapes the architectures' vector kernels take (undilated convs; channel counts around
    # multiples of 16 for the S3's 16-lane PIE), so random cases reach them and not only the
    # portable fallback; on the S3 most must take the PIE kernels (VECTOR_SHARE).
    "conv2d_vector_shapes": (
        st.tuples(golden_cases.conv_cases(), st.sampled_from([5, 16, 17, 32, 48])).map(
            lambda t: {**t[0], "dilation": (1, 1), "shape": (*t[0]["shape"][:3], t[1])}),
        golden_cases.build_conv2d),
    # Grouped and depthwise convs (any multiplier), folded PADs, and depthwise layers the
    # vector kernels take (multiplier 1; the S3's PIE one wants channels in multiples of 16),
    # in one batch per board (CI time). Not a "_vector_shapes" entry: Helium has no depthwise
    # variant.
    "grouped_depthwise_and_pad": (
        st.one_of(
            golden_cases.grouped_cases().map(lambda c: {**c, "build": "grouped"}),
            golden_cases.depthwise_cases().map(lambda c: {**c, "build": "depthwise"}),
            st.tuples(golden_cases.depthwise_cases(), st.sampled_from([16, 32, 48])).map(
                lambda t: {**t[0], "multiplier": 1, "cout": t[1], "build": "depthwise",
                           "shape": (*t[0]["shape"][:3], t[1])}),
            golden_cases.pad_cases().map(lambda c: {**c, "build": "pad"})),
        lambda case: {"grouped": golden_cases.build_grouped,
                      "depthwise": golden_cases.build_depthwise,
                      "pad": golden_cases.build_pad}[case["build"]](case)),
    "max_pool_vector_shapes": (
        st.tuples(golden_cases.pool_cases(), st.sampled_from([16, 32, 48])).map(
            lambda t: {**t[0], "kind": "MAX_POOL_2D", "shape": (*t[0]["shape"][:3], t[1])}),
        golden_cases.build_pool),
}
VECTOR_SHARE = 0.5


def _kernel_arch(step) -> str | None:
    if isinstance(step, ConvStep):
        return arch.conv_kernel(step.kernel).arch
    if isinstance(step, PoolStep):
        return arch.pool_kernel(step.kernel).arch
    return None


def _skip_without(board: str) -> None:
    missing = missing_tools(board)
    if missing:
        pytest.skip(f"{', '.join(missing)} not found: {qemu.BOARDS[board].install_hint}")


@pytest.mark.parametrize("board", BOARDS)
@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_kernel_cases_on_the_board(board, kernel, tmp_path):
    _skip_without(board)
    strategy, builder = KERNELS[kernel]

    @ONE_BATCH
    @given(st.lists(strategy, min_size=BATCH, max_size=BATCH))
    def run(cases):
        batch = QemuBatch(board, tmp_path)
        built = []
        for case in cases:
            made = builder(case)
            if made is None:  # no layer fitted the drawn input
                continue
            model, xs, *ref_model = made
            batch.add(model, xs, **{k: case[key] for key, k in (("stream", "stream"),
                                                                 ("rows", "rows_per_call"),
                                                                 ("block", "decode_block"),
                                                                 ("packing", "packing"))
                                     if key in case})
            built.append((case, xs, ref_model[0] if ref_model else model))
        for (case, xs, ref_model), ours in zip(built, batch.run(), strict=True):
            ref = reference(ref_model, xs).reshape(len(xs), -1)
            diff = np.flatnonzero(ours != ref)
            assert diff.size == 0, (f"{kernel} on {board} ({batch.arch} kernels): "
                                    f"{diff.size} of {ref.size} values differ for {case}")
        if kernel.endswith("_vector_shapes") and batch.arch != "portable":
            arch_cases = sum(any(_kernel_arch(step) == batch.arch
                                 for step in c.conv.lowered.steps) for c in batch.cases)
            assert arch_cases >= VECTOR_SHARE * len(batch.cases), (
                f"only {arch_cases} of {len(batch.cases)} cases took the {batch.arch} kernels")

    run()
