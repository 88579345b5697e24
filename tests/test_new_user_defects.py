"""The defects found by trying sqz as a new user would (issue 13, items 4 to 9): each test failed
on the code before the fix and asserts the message the user now gets."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tflbuild import GraphBuilder, add_conv, maxpool_model

from converter.commands.convert import convert_main
from converter.commands.validate import validate_main
from converter.errors import UsageError
from converter.frontend import sources
from converter.frontend.preprocess import Preprocessing

CLASSES = ["a", "b", "c", "d"]  # the conv model has 4 output channels


def conv_model() -> bytes:
    g = GraphBuilder()
    x = g.tensor("image", (1, 12, 12, 3), "int8", 1 / 255, -128)
    y, _ = add_conv(g, x, (1, 12, 12, 3), (1 / 255, -128), 4, (3, 3), (1, 1), "same", "relu",
                    [0.01, 0.02, 0.015, 0.01], (0.1, -128), np.random.default_rng(5))
    return g.build([x], [y])


def _run(main, argv, capsys) -> tuple[int, str, str]:
    rc = main(argv)
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err
    return rc, cap.out, cap.err


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A converted model that recorded its preprocessing and class names."""
    d = tmp_path_factory.mktemp("m")
    m = d / "conv.tflite"
    m.write_bytes(conv_model())
    (d / "conv.tflite.classes.json").write_text(json.dumps(CLASSES))
    (d / "conv.tflite.preprocess.json").write_text(
        json.dumps(Preprocessing.simple((12, 12), channels=3).to_dict()))
    out = d / "out"
    assert convert_main([str(m), "--target", "host", "--out", str(out), "-q"]) == 0
    return out


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    """Three classes of four images each: sorted, the first four are all of class a."""
    d = tmp_path_factory.mktemp("labelled")
    rng = np.random.default_rng(0)
    for c in ("a", "b", "c"):
        (d / c).mkdir()
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(
                d / c / f"{i}.png")
    return d


# ---- 4: --classes 0 and --channels 0 ---------------------------------------------------------

@pytest.mark.parametrize("option", ["--classes", "--channels"])
def test_zero_classes_or_channels_refused(option, tmp_path, capsys):
    rc, _, err = _run(convert_main, ["squeezenet1_1", option, "0", "--target", "host",
                                     "--out", str(tmp_path / "o")], capsys)
    assert rc == 2
    assert f"argument {option}: 0 is not allowed: give 1 or more" in err
    assert not (tmp_path / "o").exists()


def test_zero_classes_refused_by_the_python_api():
    with pytest.raises(UsageError, match="--classes 0: must be at least 1"):
        sources.resolve("squeezenet1_1", classes=0)
    with pytest.raises(UsageError, match="--channels 0: must be at least 1"):
        sources.resolve("squeezenet1_1", channels=0)


# ---- 5: --report / --junit into a missing directory ---------------------------------------------

def test_report_and_junit_directories_are_created(model_dir, tmp_path, capsys):
    report = tmp_path / "ci" / "out" / "r.json"
    junit = tmp_path / "ci" / "junit" / "j.xml"
    rc, out, _ = _run(validate_main, ["--sim", "host", "--model", str(model_dir), "-n", "2",
                                      "--report", str(report), "--junit", str(junit)], capsys)
    assert rc == 0 and "PASS: all 2 outputs bit-exact" in out
    assert json.loads(report.read_text())["bit_exact"] == 2
    assert junit.read_text().startswith("<?xml") and 'tests="2"' in junit.read_text()


@pytest.mark.parametrize("option", ["--report", "--junit"])
def test_unwritable_report_fails_before_running(option, model_dir, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    t0 = time.monotonic()
    rc, out, err = _run(validate_main, ["--sim", "host", "--model", str(model_dir), option,
                                        str(blocker / "r.out")], capsys)
    assert rc == 3 and time.monotonic() - t0 < 3
    assert f"{option} {blocker / 'r.out'}: cannot create the directory {blocker}" in err
    assert "Device:" not in out  # nothing was run


# ---- 6: --keras of another input shape ---------------------------------------------------------

def test_keras_of_another_input_shape(model_dir, tmp_path, capsys):
    import keras

    inp = keras.Input((8, 8, 3))
    km = keras.Model(inp, keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inp)))
    path = tmp_path / "other.keras"
    km.save(path)
    rc, _, err = _run(validate_main, ["--sim", "host", "--model", str(model_dir), "-n", "1",
                                      "--keras", str(path)], capsys)
    assert rc == 3
    assert (f"--keras {path}: the float model takes inputs of shape (N, 8, 8, 3), the int8 "
            f"model in {model_dir} takes (N, 12, 12, 3); give the float model this conversion "
            "was made from") in err


# ---- 7: -q prints the verdict ---------------------------------------------------------------

def test_quiet_prints_the_verdict_only(model_dir, capsys):
    rc, out, err = _run(validate_main, ["--sim", "host", "--model", str(model_dir), "-n", "1",
                                        "-q"], capsys)
    assert rc == 0
    assert out == "PASS: all 1 outputs bit-exact\n" and err == ""


# ---- 8: -n with a labelled folder ------------------------------------------------------------

def test_n_takes_every_class(model_dir, labelled, tmp_path, capsys):
    report = tmp_path / "r.json"
    rc, out, _ = _run(validate_main, ["--sim", "host", "--model", str(model_dir), "-n", "3",
                                      "--inputs", str(labelled), "--report", str(report)],
                      capsys)
    assert rc == 0
    text = " ".join(out.split())  # rich wraps long lines
    assert (f"3 of 12 labelled images from {labelled}, drawn evenly from each class (seed 0; "
            "per class: a 1, b 1, c 1)") in text
    assert "accuracy on 3 labelled images" in text
    names = [r["input"] for r in json.loads(report.read_text())["per_input"]]
    assert sorted(n.split("/")[0] for n in names) == ["a", "b", "c"]
    # Seeded: the same selection every time; another seed, another selection.
    _run(validate_main, ["--sim", "host", "--model", str(model_dir), "-n", "3", "--inputs",
                         str(labelled), "--report", str(report), "--seed", "0"], capsys)
    assert [r["input"] for r in json.loads(report.read_text())["per_input"]] == names


# ---- 9: unclear messages -----------------------------------------------------------------------

def test_empty_keras_file(tmp_path, capsys):
    m = tmp_path / "x.keras"
    m.write_bytes(b"")
    rc, _, err = _run(convert_main, [str(m), "--target", "host", "--out", str(tmp_path / "o")],
                      capsys)
    assert rc == 3
    assert f"{m}: the file is empty (0 bytes), so it holds no model" in err
    assert "File not found" not in err


def test_keras_file_that_is_not_an_archive(tmp_path, capsys):
    m = tmp_path / "x.keras"
    m.write_bytes(b"not a zip at all")
    rc, _, err = _run(convert_main, [str(m), "--target", "host", "--out", str(tmp_path / "o")],
                      capsys)
    assert rc == 3
    assert f"{m}: not a Keras archive (a .keras file is a zip archive" in err


def test_truncated_tflite(tmp_path, capsys):
    m = tmp_path / "cut.tflite"
    m.write_bytes(maxpool_model()[:200])
    rc, _, err = _run(convert_main, [str(m), "--target", "host", "--out", str(tmp_path / "o")],
                      capsys)
    assert rc == 4
    assert ("cut.tflite: the TFLite file is truncated or corrupt: its contents point past its "
            "200 bytes or make no sense. Copy or export it again") in err
    assert "unpack" not in err and "struct" not in err


def test_socket_with_nothing_listening(model_dir, capsys):
    with socket.socket() as s:  # a free port, then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"socket://127.0.0.1:{port}"
    rc, _, err = _run(validate_main, ["--port", url, "--model", str(model_dir), "-n", "1"],
                      capsys)
    assert rc == 11
    assert f"nothing is listening at '{url}' (connection refused); start the program" in err
    assert "check the host and port number" in err


def test_too_small_input_names_the_option(tmp_path, capsys):
    rc, _, err = _run(convert_main, ["squeezenet1_1", "--input-size", "20", "--target", "host",
                                     "--out", str(tmp_path / "o")], capsys)
    assert rc == 2
    assert "input 20x20 is too small for SqueezeNet v1.1" in err
    assert "give a larger input (--input-size 31 or more on the command line" in err


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_timeout_must_be_positive(value, model_dir, capsys):
    rc, _, err = _run(validate_main, ["--sim", "host", "--model", str(model_dir),
                                      f"--timeout={value}"], capsys)
    assert rc == 2
    assert f"argument --timeout: {value} is not allowed: give a number of seconds above 0" in err


# ---- outputs of the other tools: checked before the work, written whole -----------------------

def test_train_output_checked_before_training(labelled, tmp_path, capsys):
    from converter.commands.train import train_main

    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = blocker / "m.keras"
    t0 = time.monotonic()
    rc, _, err = _run(train_main, [str(labelled), "-o", str(out), "--epochs", "1", "-q"],
                      capsys)
    assert rc == 3 and time.monotonic() - t0 < 3
    assert f"--output {out}: cannot create the directory {blocker}" in err


def test_bench_json_checked_before_measuring(tmp_path, capsys):
    from converter.commands.bench import bench_main

    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc, _, err = _run(bench_main, ["squeezenet1_1", "--json", str(blocker / "b.json")], capsys)
    assert rc == 3
    assert f"--json {blocker / 'b.json'}: cannot create the directory {blocker}" in err
