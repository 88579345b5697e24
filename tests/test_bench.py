"""sqz-bench: its figures add up and are reproducible (no speed thresholds: those belong to
the benchmark itself, quoted in docs/benchmarks.md)."""

from __future__ import annotations

import json
import shutil

import pytest

from converter.commands.bench import bench_main

pytestmark = pytest.mark.skipif(shutil.which("valgrind") is None,
                                reason="valgrind not installed: apt-get install valgrind")


def test_bench_counts_are_consistent_and_deterministic(tmp_path, capsys):
    results = []
    for i in range(2):
        js = tmp_path / f"b{i}.json"
        rc = bench_main(["squeezenet1_1", "--input-size", "40", "--classes", "3", "--out",
                         str(tmp_path / f"w{i}"), "--json", str(js)])
        assert rc == 0
        results.append(json.loads(js.read_text()))
    text = capsys.readouterr().out
    a, b = results
    assert a["instructions"] == b["instructions"]  # callgrind counts are deterministic
    assert a["instructions"] == sum(layer["instructions"] for layer in a["layers"])
    assert all(layer["instructions"] > 0 for layer in a["layers"])
    assert a["macs"] == sum(layer["macs"] for layer in a["layers"]) > 0
    # The input arrives row by row (its own line: the copies, or a camera's preprocessing).
    assert [layer["name"] for layer in a["layers"]][:3] == ["input", "conv1", "pool1"]
    assert "instructions per MAC" in text and "peak arena" in text
    assert a["arena_input_whole_bytes"] > a["arena_bytes"]
    if shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm"):
        assert a["cm4_code_bytes"] > 0
        assert a["cm4_flash_bytes"] == a["cm4_code_bytes"] + a["weight_bytes"]
        # The emulated Cortex-M4's exact count, in total and per layer.
        assert a["board"] == "mps2-an386"
        assert a["board_instructions"] == b["board_instructions"] > 0
        per_layer = [layer["board_instructions"] for layer in a["layers"]]
        assert all(n > 0 for n in per_layer)
        # The per-layer run adds only the hook's few instructions per kernel call.
        assert 0 <= sum(per_layer) - a["board_instructions"] < 0.01 * a["board_instructions"]
        assert "instructions per MAC (mps2-an386)" in text
        # Estimated cycles (converter/cycles.py): a traced run costed per core; the board's
        # own core first, per layer, the assumptions in order, said to be an estimate.
        cyc = a["cycles"]
        assert list(cyc)[0] == "cortex-m4" and set(cyc) == {"cortex-m4", "cortex-m7",
                                                            "cortex-m55"}
        assert b["cycles"]["cortex-m4"]["base"] == cyc["cortex-m4"]["base"]  # deterministic
        m4 = cyc["cortex-m4"]
        # the traced instructions are the firmware's count, up to QEMU's abandoned blocks
        assert abs(m4["traced_instructions"] - a["board_instructions"]) < \
            1e-3 * a["board_instructions"]
        for c in cyc.values():
            assert 0 < c["optimistic"] <= c["base"] <= c["pessimistic"]
        assert m4["base"] > m4["traced_instructions"]  # a Cortex-M4 runs below 1 IPC
        layer_base = [layer["board_cycles"]["base"] for layer in a["layers"]]
        assert all(c > 0 for c in layer_base)
        assert sum(layer_base) == pytest.approx(m4["base"], rel=1e-9)
        assert "ESTIMATED cycles per inference (mps2-an386: Cortex-M4)" in text
        assert "an estimate, not a measurement" in text
    else:
        assert "not installed" in a["cm4_note"] or "not installed" in a["board_note"]


def test_bench_counts_on_the_emulated_esp32s3(tmp_path, capsys):
    """`--target esp32s3-qemu`: the S3's exact instruction count (ICOUNT), per layer, with the
    profile's PIE kernels."""
    from qemu_batch import missing_tools

    from converter.device import qemu

    missing = missing_tools("esp32s3-qemu")
    if missing:
        pytest.skip(f"{', '.join(missing)} not found: {qemu.BOARDS['esp32s3-qemu'].install_hint}")
    js = tmp_path / "s3.json"
    rc = bench_main(["squeezenet1_1", "--input-size", "40", "--classes", "3", "--target",
                     "esp32s3-qemu", "--out", str(tmp_path / "w"), "--json", str(js)])
    assert rc == 0
    a = json.loads(js.read_text())
    text = capsys.readouterr().out
    assert a["board"] == "esp32s3-qemu" and a["arch"] == "esp32s3"
    assert a["board_instructions"] > 0
    per_layer = [layer["board_instructions"] for layer in a["layers"]]
    assert all(n > 0 for n in per_layer)
    assert 0 <= sum(per_layer) - a["board_instructions"] < 0.01 * a["board_instructions"]
    assert any(layer["kernel"] == "sqz_conv_s8_pie_row" for layer in a["layers"])
    assert "instructions per MAC (esp32s3-qemu)" in text
