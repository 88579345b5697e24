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


def _check_camera_run(a: dict, text: str, board: str) -> None:
    """A camera model's benchmark: the preprocessing has its own line, a share > 0 and the
    layers add up to the run, on the host and on the board."""
    assert a["camera"] == "rgb565le:64x48:bilinear:crop"
    assert a["frame_bytes"] == 64 * 48 * 2 and a["frame_ring_bytes"] > 0
    first = a["layers"][0]
    assert first["name"] == "input" and first["macs"] == 0
    assert "input (camera preprocessing)" in text
    # host
    assert a["instructions"] == sum(layer["instructions"] for layer in a["layers"])
    assert a["input_instructions"] == first["instructions"] > 0
    assert a["input_share"] == pytest.approx(first["instructions"] / a["instructions"])
    assert 0 < a["input_share"] < 1
    assert f"{a['input_instructions']:,} instructions, {100 * a['input_share']:.2f}% of the " \
        "inference" in text
    # board: the per-layer run adds only the hook's few instructions per call to the total
    per_layer = [layer["board_instructions"] for layer in a["layers"]]
    assert all(n > 0 for n in per_layer)
    assert 0 <= sum(per_layer) - a["board_instructions"] < 0.01 * a["board_instructions"]
    assert a["board_input_instructions"] == per_layer[0]
    assert a["board_input_share"] == pytest.approx(per_layer[0] / sum(per_layer))
    assert 0 < a["board_input_share"] < 1
    assert f"preprocessing ({board})" in text
    assert f"{a['board_input_instructions']:,} instructions, " \
        f"{100 * a['board_input_share']:.2f}% of the inference" in text


def test_bench_camera_model(tmp_path, capsys):
    """--camera: a seeded frame fed on the host (callgrind) and the emulated Cortex-M4; the
    preprocessing is the input step's line, with its share of the inference."""
    if not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")):
        pytest.skip("arm-none-eabi-gcc or qemu-system-arm not installed (docs/boards.md)")
    js = tmp_path / "cam.json"
    rc = bench_main(["squeezenet1_1", "--input-size", "40", "--classes", "3", "--camera",
                     "rgb565le:64x48", "--no-cycles", "--out", str(tmp_path / "w"),
                     "--json", str(js)])
    assert rc == 0
    a = json.loads(js.read_text())
    text = capsys.readouterr().out
    _check_camera_run(a, text, "mps2-an386")
    assert a["frame"] == "random" and a["board"] == "mps2-an386"
    # The camera changes only the input step: the layers after it cost what they cost fed
    # the int8 input (same kernels, same shapes; data-independent instruction counts).
    plain = tmp_path / "plain.json"
    assert bench_main(["squeezenet1_1", "--input-size", "40", "--classes", "3", "--no-board",
                       "--out", str(tmp_path / "p"), "--json", str(plain)]) == 0
    p = json.loads(plain.read_text())
    assert [x["name"] for x in p["layers"]] == [x["name"] for x in a["layers"]]
    assert p["input_instructions"] > 0 and p["camera"] is None
    assert a["input_instructions"] > p["input_instructions"]  # converting costs more than copying


def test_bench_camera_options(tmp_path, capsys):
    """--frame gradient, --scratch least and the option checks, on the host only."""
    js = tmp_path / "g.json"
    rc = bench_main(["squeezenet1_1", "--input-size", "40", "--classes", "3", "--camera",
                     "rgb565le:64x48", "--frame", "gradient", "--scratch", "least",
                     "--no-board", "--out", str(tmp_path / "w"), "--json", str(js)])
    assert rc == 0
    a = json.loads(js.read_text())
    assert a["frame"] == "gradient" and a["scratch"] == "least"
    assert a["input_instructions"] > 0 and 0 < a["input_share"] < 1
    assert a["board_input_instructions"] is None and a["board_instructions"] is None
    assert "input (camera preprocessing)" in capsys.readouterr().out
    # --camera needs the ring input; --frame and --preprocess need --camera (exit code 2)
    assert bench_main(["squeezenet1_1", "--camera", "rgb565le:64x48", "--input", "whole",
                       "--out", str(tmp_path / "x")]) == 2
    assert bench_main(["squeezenet1_1", "--frame", "gradient", "--out",
                       str(tmp_path / "y")]) == 2
    assert "--camera" in capsys.readouterr().err
    assert bench_main(["squeezenet1_1", "--camera", "rgb565le:64", "--out",
                       str(tmp_path / "z")]) == 2
    # --input whole: no input step, the arena is the whole input's
    wj = tmp_path / "whole.json"
    assert bench_main(["squeezenet1_1", "--input-size", "40", "--classes", "3", "--input",
                       "whole", "--no-board", "--out", str(tmp_path / "wh"),
                       "--json", str(wj)]) == 0
    w = json.loads(wj.read_text())
    assert w["input_mode"] == "whole" and w["layers"][0]["name"] == "conv1"
    assert w["input_instructions"] is None and w["arena_input_whole_bytes"] is None
    assert w["arena_bytes"] > a["arena_bytes"]
    assert "input stored whole" in capsys.readouterr().out


def test_bench_camera_on_the_emulated_esp32s3(tmp_path, capsys):
    """--camera on the ESP32-S3 (its own input step in the per-layer counts)."""
    from qemu_batch import missing_tools

    from converter.device import qemu

    missing = missing_tools("esp32s3-qemu")
    if missing:
        pytest.skip(f"{', '.join(missing)} not found: {qemu.BOARDS['esp32s3-qemu'].install_hint}")
    js = tmp_path / "s3.json"
    rc = bench_main(["squeezenet1_1", "--input-size", "40", "--classes", "3", "--camera",
                     "rgb565le:64x48", "--target", "esp32s3-qemu", "--out", str(tmp_path / "w"),
                     "--json", str(js)])
    assert rc == 0
    _check_camera_run(json.loads(js.read_text()), capsys.readouterr().out, "esp32s3-qemu")
