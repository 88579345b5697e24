"""Bad input gets a clear message naming the culprit, a distinct exit code, no traceback, and
leaves nothing half-written."""

from __future__ import annotations

import numpy as np
import pytest
from tflbuild import GraphBuilder, conv_options, maxpool_model

from converter.commands.convert import convert_main
from converter.commands.validate import validate_main


def _tanh_model() -> bytes:
    g = GraphBuilder()
    x = g.tensor("x", (1, 4, 4, 2), "int8", 0.1, 0)
    y = g.tensor("activation/tanh", (1, 4, 4, 2), "int8", 1.0 / 128, 0)
    g.op("TANH", [x], [y])
    return g.build([x], [y])


def _float_conv_model() -> bytes:
    g = GraphBuilder()
    x = g.tensor("image", (1, 8, 8, 3), "float32")
    w = g.tensor("w", (4, 3, 3, 3), "float32",
                 data=np.ones((4, 3, 3, 3), np.float32))
    b = g.tensor("b", (4,), "float32", data=np.zeros(4, np.float32))
    y = g.tensor("conv_out", (1, 8, 8, 4), "float32")
    g.op("CONV_2D", [x, w, b], [y], "Conv2DOptions", conv_options())
    return g.build([x], [y])


def _run(main, argv, capsys):
    rc = main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return rc, captured.err


def test_unsupported_op(tmp_path, capsys):
    m = tmp_path / "tanh.tflite"
    m.write_bytes(_tanh_model())
    out = tmp_path / "out"
    rc, err = _run(convert_main, [str(m), "--target", "host", "--out", str(out)], capsys)
    assert rc == 4
    assert "unsupported op: TANH at op #0 (output tensor 'activation/tanh')" in err
    assert "Supported ops:" in err and "CONV_2D" in err
    assert not out.exists()  # nothing half-written


def test_float_model(tmp_path, capsys):
    m = tmp_path / "float.tflite"
    m.write_bytes(_float_conv_model())
    rc, err = _run(convert_main, [str(m), "--target", "host", "--out", str(tmp_path / "o")],
                   capsys)
    assert rc == 4
    assert "float.tflite: this is a float model" in err
    assert "op #0 CONV_2D (output tensor 'conv_out') has float32 tensor 'image'" in err
    assert "full-integer int8" in err


def test_missing_model_file(tmp_path, capsys):
    rc, err = _run(convert_main, [str(tmp_path / "nope.keras"), "--target", "host"], capsys)
    assert rc == 3
    assert "nope.keras: no such model file; check the path" in err


def test_unknown_name_lists_builtins(capsys):
    rc, err = _run(convert_main, ["squeezenet9", "--target", "host"], capsys)
    assert rc == 3
    assert "squeezenet9: no such model file or builtin model" in err
    assert "squeezenet1_1" in err


def test_calibration_of_the_wrong_shape(tmp_path, capsys):
    calib = tmp_path / "calib.npy"
    np.save(calib, np.zeros((4, 32, 32, 3), np.float32))
    rc, err = _run(convert_main, ["squeezenet1_1", "--target", "host", "--input-size", "64",
                                  "--classes", "3", "--calib", str(calib),
                                  "--out", str(tmp_path / "o")], capsys)
    assert rc == 5
    assert "calib.npy: calibration data has shape (4, 32, 32, 3) but the model input is " \
           "(N, 64, 64, 3)" in err


def test_missing_calibration_file(tmp_path, capsys):
    rc, err = _run(convert_main, ["squeezenet1_1", "--target", "host", "--calib",
                                  str(tmp_path / "none.npy")], capsys)
    assert rc == 3
    assert "none.npy: calibration file not found; give a .npy array or an image folder" in err


@pytest.mark.parametrize("argv,code,text", [
    (["squeezenet1_1", "--target", "nosuchboard"], 2, "unknown target 'nosuchboard'"),
    (["squeezenet1_1", "--input-size", "9x"], 2, "--input-size '9x'"),
    (["squeezenet1_1", "--ram-budget", "lots"], 2, "'lots' is not a size"),
    (["--bogus"], 2, "unrecognized arguments: --bogus"),
    (["squeezenet1_1", "--packing", "most"], 2,
     "argument --packing: invalid choice: 'most' (choose from 'auto', 'ram', 'flash', 'off')"),
])
def test_usage_errors(argv, code, text, capsys):
    rc, err = _run(convert_main, argv, capsys)
    assert rc == code
    assert text in err


def test_too_small_ram_budget(tmp_path, capsys):
    m = tmp_path / "m.tflite"
    m.write_bytes(maxpool_model())
    out = tmp_path / "o"
    rc, err = _run(convert_main, [str(m), "--target", "host", "--ram-budget", "4K",
                                  "--input", "whole", "--out", str(out)], capsys)
    assert rc == 6
    assert "the model does not fit host" in err
    assert "RAM: the arena needs 10.0 KiB (10,240 B)" in err
    # The whole firmware counts: the arena, the protocol's buffers (4 KiB frames on the host)
    # and its static data, against the 4 KiB given (passes/budget.py, app_ram_bytes).
    from converter import targets
    from converter.passes.budget import protocol_buffer_bytes

    host = targets.load("host")
    need = 10240 + protocol_buffer_bytes(host.max_frame_payload, 1) + host.static_bytes
    assert f"the whole firmware needs {need / 1024:,.1f} KiB ({need:,} B) of RAM" in err
    assert f"over by {(need - 4096) / 1024:,.1f} KiB ({need - 4096:,} B)" in err
    # A .tflite has its own shape: --input-size is refused for it, so it is not advised.
    assert "A smaller --input-size" not in err
    assert ("A smaller input shrinks every activation: build or export the model for a smaller "
            "input size (--input-size applies to builtin models only)") in err
    assert not out.exists()


def test_validate_without_model_dir(tmp_path, capsys):
    rc, err = _run(validate_main, ["--sim", "host", "--model", str(tmp_path / "none")], capsys)
    assert rc == 3
    assert "none: no such directory" in err


def test_validate_needs_a_device(capsys):
    rc, err = _run(validate_main, ["--model", "x"], capsys)
    assert rc == 2
    assert "one of the arguments --sim --port is required" in err
