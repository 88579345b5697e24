"""Fitting a model: in-place concat, row streaming, placement, budgets and the report."""

from __future__ import annotations

import json

import pytest

from converter import convert, targets
from converter.commands.convert import convert_main
from converter.frontend import sources
from converter.ir.steps import ConcatPartStep, ConvStep, PoolStep
from converter.passes import run_passes


@pytest.fixture(scope="module")
def sq224():
    return sources.resolve("squeezenet1_1", calib_samples=2).tflite


def test_concat_costs_zero_copies_and_conv1_never_exists(sq224):
    conv = convert.convert_tflite(sq224, targets.load("host"), model_name="m",
                                  source_name="m.tflite", stream="off", input_mode="whole")
    steps = conv.lowered.steps
    assert not any(isinstance(s, ConcatPartStep) for s in steps)  # every concat is in place
    expands = [s for s in steps if isinstance(s, ConvStep) and "expand" in s.name]
    assert len(expands) == 16
    for s in expands:  # each writes its channel slice of the concatenated tensor
        assert s.output_pixel_stride == 2 * s.output_dims.c
    offsets = {s.name: s.output_channel_offset for s in expands}
    assert offsets["fire2_expand1x1"] == 0 and offsets["fire2_expand3x3"] == 64
    # conv1 streams into pool1, which folds each conv1 row into its output as it comes (push
    # form): conv1's 111x111x64 output (788,544 B) is never a buffer of the plan, one row is.
    first = conv.layout.schedule.segments[0]
    assert [steps[i].name for i in first.nodes] == ["conv1", "pool1"]
    assert isinstance(steps[1], PoolStep) and steps[1].push
    assert conv.layout.schedule.slots == {steps[0].output: 1}
    sizes = {b.size for b in conv.layout.buffers}
    assert 111 * 111 * 64 not in sizes and 111 * 64 in sizes
    assert conv.layout.arena_bytes == conv.layout.lower_bound


def test_without_the_passes_the_arena_is_much_larger(sq224):
    conv = convert.convert_tflite(sq224, targets.load("host"), model_name="m",
                                  source_name="m.tflite")
    from converter.frontend import tflite_reader
    from converter.ir.lower import lower

    lw, layout = run_passes(lower(tflite_reader.read_model_bytes(sq224)), stream_mode="none",
                            in_place=False)
    # conv1's whole output and the input alive together, and the expand outputs copied.
    assert layout.arena_bytes >= 111 * 111 * 64 + 224 * 224 * 3
    assert layout.arena_bytes > 2 * conv.layout.arena_bytes


def test_arena_placement_follows_the_board(sq224, tmp_path):
    big = convert.convert_tflite(sq224, targets.load("esp32s3"), model_name="m",
                                 source_name="m.tflite", stream="off")
    assert big.budget.arena_in_psram and big.budget.ram_place == "PSRAM"
    assert "#define SQZ_ARENA_IN_PSRAM 1" in big.files["sqz_target.h"]
    # Streamed row by row, the same 224x224 network fits the S3's internal SRAM.
    streamed = convert.convert_tflite(sq224, targets.load("esp32s3"), model_name="m",
                                      source_name="m.tflite")
    assert streamed.layout.schedule.mode == "full"
    assert streamed.layout.arena_bytes <= 320_000
    assert not streamed.budget.arena_in_psram
    assert "#define SQZ_ARENA_IN_PSRAM 0" in streamed.files["sqz_target.h"]
    small_src = sources.resolve("squeezenet1_1", input_size=(96, 96), classes=10,
                                calib_samples=2)
    small = convert.convert_tflite(small_src.tflite, targets.load("esp32s3"), model_name="m",
                                   source_name="m.tflite")
    assert not small.budget.arena_in_psram
    assert "#define SQZ_ARENA_IN_PSRAM 0" in small.files["sqz_target.h"]


def test_flash_over_budget_names_flash_and_the_largest_layers(tmp_path, capsys):
    out = tmp_path / "o"
    # The portable kernels' weight layout (the PIE one adds a record per channel).
    rc = convert_main(["squeezenet1_1", "--target", "esp32s3", "--arch", "portable",
                       "--input-size", "64", "--classes", "10", "--flash-budget", "256K",
                       "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 6
    assert "flash: needs" in err and "esp32s3 has 256.0 KiB (262,144 B): over by" in err
    assert ("Largest layers: fire8_expand3x3 146.2 KiB (149,760 B), fire9_expand3x3 146.2 KiB"
            in err)
    assert "Fewer classes or a smaller base_e/incr_e shrink the weights" in err
    assert not out.exists()


def test_report_files(tmp_path, capsys):
    out = tmp_path / "r"
    assert convert_main(["squeezenet1_1", "--target", "esp32s3", "--arch", "portable",
                         "--input-size", "64", "--classes", "4", "--out", str(out)]) == 0
    summary = capsys.readouterr().out
    assert "arena" in summary and "in internal SRAM" in summary and "M MACs" in summary
    rep = json.loads((out / "report.json").read_text())
    assert rep["arena_lower_bound"] <= rep["arena_bytes"] <= rep["arena_naive_bytes"]
    assert rep["macs"] == sum(r["macs"] for r in rep["layers"])
    assert rep["flash_bytes"] == rep["weight_bytes"] + rep["code_bytes_estimate"]
    assert len(rep["layers"]) == 32  # the input's rows, then SqueezeNet's 31 steps
    assert rep["layers"][0]["name"] == "input" and rep["layers"][0]["op"] == "input rows"
    assert rep["input"].startswith("a ring of ")
    row = rep["layers"][5]
    assert row["name"] == "fire2_expand3x3" and row["op"] == "conv 3x3/1"
    assert set(row) >= {"inputs", "output", "macs", "weight_bytes", "arena_offset",
                        "arena_bytes", "live_bytes", "kernel", "segment", "ring_rows"}
    assert row["kernel"] == "sqz_conv_s8_row"
    # Streamed: segments of row-wise layers from conv1 to the global average (cut where a
    # pool's output is worth storing whole), then the softmax alone.
    assert rep["stream"] == "full"
    segs = rep["segments"]
    assert sum(len(seg["layers"]) for seg in segs) == 32 and segs[-1]["layers"] == ["softmax"]
    assert segs[0]["layers"][:3] == ["input", "conv1", "pool1"]
    assert len(rep["live_curve"]) == segs[-1]["last_tick"] + 1
    rings = {r["tensor"].split("/")[1] if "/" in r["tensor"] else "input": r
             for r in rep["rings"]}
    assert rings["input"]["slots"] == 3 and rings["input"]["rows"] == 64
    assert rings["conv1_1"]["slots"] == 1 and rings["conv1_1"]["rows"] == 31
    assert all(r["bytes"] < r["whole_bytes"] for r in rep["rings"])
    md = (out / "report.md").read_text()
    assert "| # | layer | op |" in md and "## Arena map" in md and "legend:" in md
    assert "## Segments" in md and "## Rings" in md
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # report.md and report.json name the picture (issue 25: they did not).
    assert rep["picture"] == "report.png" and "![live bytes and arena layout](report.png)" in md


def test_psram_budget_zero_keeps_the_arena_out_of_psram(tmp_path, capsys):
    argv = ["squeezenet1_1", "--target", "esp32s3", "--input-size", "64", "--classes", "3",
            "--ram-budget", "16K", "--input", "whole", "-q"]
    assert convert_main([*argv, "--out", str(tmp_path / "a")]) == 0
    assert "#define SQZ_ARENA_IN_PSRAM 1" in (tmp_path / "a" / "sqz_target.h").read_text()
    rc = convert_main([*argv, "--psram-budget", "0", "--out", str(tmp_path / "b")])
    assert rc == 6
    assert "esp32s3 has 16.0 KiB (16,384 B) of SRAM: over by" in capsys.readouterr().err
