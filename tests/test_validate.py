"""sqz-validate end to end on the simulated host device (the firmware on a pseudo-terminal)."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as s
from tflbuild import GraphBuilder

from converter import convert, targets
from converter.commands.convert import convert_main
from converter.commands.validate import validate_main
from converter.frontend import reference


def _softmax_model(depth: int, scale: float) -> bytes:
    g = GraphBuilder()
    x = g.tensor("logits", (1, depth), "int8", scale, 0)
    y = g.tensor("probs", (1, depth), "int8", 1.0 / 256, -128)
    opt = s.SoftmaxOptionsT()
    opt.beta = 1.0
    g.op("SOFTMAX", [x], [y], "SoftmaxOptions", opt)
    return g.build([x], [y])


def _write(buf: bytes, out):
    conv = convert.convert_tflite(buf, targets.load("host"), model_name="t",
                                  source_name="t.tflite")
    convert.write(conv, buf, out)
    return out


@pytest.fixture(scope="module")
def squeezenet_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sq") / "host"
    rc = convert_main(["squeezenet1_1", "--target", "host", "--input-size", "64",
                       "--classes", "10", "--out", str(out), "-q"])
    assert rc == 0
    return out


def test_validate_squeezenet_bit_exact(squeezenet_dir, tmp_path, capsys):
    report = tmp_path / "r.json"
    junit = tmp_path / "j.xml"
    rc = validate_main(["--sim", "host", "--model", str(squeezenet_dir), "-n", "3",
                        "--per-layer", "--report", str(report), "--junit", str(junit)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "3/3 outputs identical to LiteRT BUILTIN_REF" in text
    assert "PASS: all 3 outputs bit-exact" in text
    assert "fire9_expand3x3" in text  # the per-layer table
    data = json.loads(report.read_text())
    assert data["bit_exact"] == 3 and data["max_abs_diff"] == 0
    assert data["latency"]["min"] > 0 and len(data["per_layer"]) == 32  # the input's own line
    assert data["float_top1_agreement"] >= 0
    suite = ET.parse(junit).getroot()
    assert suite.get("tests") == "3" and suite.get("failures") == "0"


def test_validate_detects_a_changed_weight(squeezenet_dir, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(squeezenet_dir, bad)
    data = (bad / "model_data.c").read_text()
    # conv10's biases all very negative: every logit clamps to the same value, so the softmax
    # becomes uniform, which the reference's varied outputs are not.
    start = data.index("{", data.index("sqz_bias_27[")) + 1
    end = data.index("}", start)
    n = len([v for v in data[start:end].split(",") if v.strip()])
    data = data[:start] + "\n    " + ", ".join(["-100000000"] * n) + ",\n" + data[end:]
    (bad / "model_data.c").write_text(data)
    rc = validate_main(["--sim", "host", "--model", str(bad), "-n", "4"])
    captured = capsys.readouterr()
    assert rc == 10
    assert "MISMATCH" in captured.err and "differ from the reference" in captured.err


def test_validate_refuses_a_different_reference_model(squeezenet_dir, tmp_path, capsys):
    other = tmp_path / "other.tflite"
    other.write_bytes(_softmax_model(10, 0.1))
    rc = validate_main(["--sim", "host", "--model", str(squeezenet_dir), "--tflite", str(other)])
    err = capsys.readouterr().err
    assert rc == 9
    assert "was made from a model with SHA-256" in err and str(other) in err


def test_validate_float_npy_inputs(squeezenet_dir, tmp_path, capsys):
    x = np.random.default_rng(3).uniform(0, 1, size=(2, 64, 64, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    rc = validate_main(["--sim", "host", "--model", str(squeezenet_dir), "--inputs",
                        str(tmp_path / "x.npy")])
    assert rc == 0
    assert "2 float inputs from x.npy" in capsys.readouterr().out


def test_softmax_abort_is_survived(tmp_path, capsys, sqz_runner):
    # 1000 classes with nearly equal logits: the reference's exponent check fails.
    buf = _softmax_model(1000, 1e-4)
    x = np.random.default_rng(0).integers(-128, 128, size=(2, 1000), dtype=np.int8)
    ref = reference.run_reference(buf, x)
    assert ref.softmax_aborted and ref.outputs is None
    assert "aborted (SIGABRT" in ref.note
    assert np.array_equal(ref.logits.reshape(2, -1), x)
    ours = sqz_runner.run(buf, x)
    assert np.all(ours == -128)  # every probability is below half a step: saturated
    model = _write(buf, tmp_path / "sm")
    rc = validate_main(["--sim", "host", "--model", str(model), "-n", "2"])
    captured = capsys.readouterr()
    assert rc == 0, captured.out + captured.err
    assert "SOFTMAX aborted" in captured.err
    assert "2/2 logitss identical" not in captured.out
    assert "2/2 logits identical to LiteRT BUILTIN_REF" in captured.out
