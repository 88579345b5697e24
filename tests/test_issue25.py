"""Issue 25: bad data never reaches TensorFlow, no input is checked after --out is replaced,
every writer locks, usage errors up front, Ctrl-C, clearer model errors, output for people.
Every test asserts the message the user reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from clirun import default_sigint
from tflbuild import GraphBuilder, add_conv

from converter.commands.convert import convert_main
from converter.commands.validate import validate_main
from converter.errors import CalibrationError, InputFileError
from converter.frontend import datagate
from converter.frontend.preprocess import Preprocessing

BUILTIN = ["squeezenet1_1", "--input-size", "40", "--classes", "3", "--target", "host"]


def _run(main, argv, capsys) -> tuple[int, str, str]:
    rc = main(argv)
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err
    return rc, cap.out, cap.err


def _flat(text: str) -> str:
    return " ".join(text.split())


def conv_model() -> bytes:
    g = GraphBuilder()
    x = g.tensor("image", (1, 12, 12, 3), "int8", 1 / 255, -128)
    y, _ = add_conv(g, x, (1, 12, 12, 3), (1 / 255, -128), 4, (3, 3), (1, 1), "same", "relu",
                    [0.01, 0.02, 0.015, 0.01], (0.1, -128), np.random.default_rng(5))
    return g.build([x], [y])


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("m")
    m = d / "conv.tflite"
    m.write_bytes(conv_model())
    (d / "conv.tflite.preprocess.json").write_text(
        json.dumps(Preprocessing.simple((12, 12), channels=3).to_dict()))
    out = d / "out"
    assert convert_main([str(m), "--target", "host", "--out", str(out), "-q"]) == 0
    return out


def _leftovers(out: Path) -> list[str]:
    return [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.sqz-")]


# ---- 1, 2: the data gate ---------------------------------------------------------------------

def test_gate_names_first_bad_index_and_count():
    a = np.zeros((4, 2, 2, 1), np.float32)
    a[2, 1, 0, 0] = np.inf
    a[3, 0, 0, 0] = -np.inf
    with pytest.raises(CalibrationError) as e:
        datagate.calibration(a, "c.npy")
    assert str(e.value).startswith("c.npy: +inf at sample 2, index (2, 1, 0, 0) "
                                   "(2 infinite values in all); calibration data must be finite")
    a[:] = 0
    a[1, 1, 1, 0] = 3e7
    with pytest.raises(CalibrationError, match=r"value 3e\+07 at sample 1, index \(1, 1, 1, 0\) "
                                               r"is beyond \+-1e\+06"):
        datagate.calibration(a, "c.npy")
    with pytest.raises(CalibrationError, match="c.npy: calibration data is int64"):
        datagate.calibration(np.zeros((2, 2), np.int64), "c.npy")
    ok = np.ones((2, 2), np.float32)
    assert datagate.calibration(ok, "c.npy") is ok


@pytest.mark.parametrize("bad,text", [(np.inf, "+inf at sample 1, index (1, 3, 4, 0)"),
                                      (np.nan, "NaN at sample 1, index (1, 3, 4, 0)")])
def test_calib_with_inf_or_nan_is_refused_before_quantizing(bad, text, tmp_path, capsys):
    calib = np.random.default_rng(0).random((3, 40, 40, 3), dtype=np.float32)
    calib[1, 3, 4, 0] = bad
    np.save(tmp_path / "calib.npy", calib)
    out = tmp_path / "out"
    rc, _, err = _run(convert_main, [*BUILTIN, "--calib", str(tmp_path / "calib.npy"),
                                     "--out", str(out), "-q"], capsys)
    assert rc == CalibrationError.exit_code, err
    err = _flat(err)
    assert f"--calib {tmp_path / 'calib.npy'}: {text}" in err
    assert "fix or drop those samples" in err
    assert not out.exists() and not _leftovers(out)


def test_validate_inputs_with_nan_refused(model_dir, tmp_path, capsys):
    x = np.zeros((3, 12, 12, 3), np.float32)
    x[2, 0, 5, 1] = np.nan
    np.save(tmp_path / "in.npy", x)
    rc, _, err = _run(validate_main, ["--sim", "host", "--model", str(model_dir), "--inputs",
                                      str(tmp_path / "in.npy")], capsys)
    assert rc == InputFileError.exit_code, err
    err = _flat(err)
    assert f"--inputs {tmp_path / 'in.npy'}: NaN at sample 2, index (2, 0, 5, 1)" in err
    assert "RuntimeWarning" not in err and "cosine" not in err


def test_weights_with_nan_refused(tmp_path, capsys):
    w = tmp_path / "w.npz"
    np.savez(w, conv1_kernel=np.array([[1.0, np.nan]], np.float32))
    rc, _, err = _run(convert_main, [*BUILTIN, "--weights", str(w), "--out",
                                     str(tmp_path / "o"), "-q"], capsys)
    assert rc == InputFileError.exit_code, err
    assert (f"weights file {w}, key 'conv1_kernel': NaN at index (0, 1) (1 NaN value in all); "
            "the weights are damaged") in _flat(err)


# ---- 7: class count, two inputs, an unsupported layer, --port /dev/null -----------------------

def test_labelled_folder_with_fewer_classes_warns(model_dir, tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("a", "b", "c"):
        (tmp_path / "lab" / c).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(
            tmp_path / "lab" / c / "0.png")
    rc, _, err = _run(validate_main, ["--sim", "host", "--model", str(model_dir), "--inputs",
                                      str(tmp_path / "lab")], capsys)
    assert rc == 0, err
    assert (f"warning: {tmp_path / 'lab'}: 3 class folders (a, b, c) but the model has 4 "
            "outputs and records no class names (classes.json)") in _flat(err)


# ---- 3: --export-image is read before --out is replaced ----------------------------------------

def _tree(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*"))
            if p.is_file()}


def test_export_image_not_an_image_leaves_out_alone(tmp_path, capsys):
    m = tmp_path / "conv.tflite"
    m.write_bytes(conv_model())
    (tmp_path / "conv.tflite.preprocess.json").write_text(
        json.dumps(Preprocessing.simple((12, 12), channels=3).to_dict()))
    out = tmp_path / "out"
    assert convert_main([str(m), "--target", "host", "--out", str(out), "-q"]) == 0
    before, inode = _tree(out), out.stat().st_ino
    bad = tmp_path / "photo.png"
    bad.write_text("this is not an image\n")
    rc, _, err = _run(convert_main, [str(m), "--target", "host", "--out", str(out), "-q",
                                     "--export", str(tmp_path / "lib"), "--export-image",
                                     str(bad)], capsys)
    assert rc == InputFileError.exit_code, err
    assert f"--export-image {bad}: not an image sqz can read" in _flat(err)
    assert out.stat().st_ino == inode and _tree(out) == before
    assert not (tmp_path / "lib").exists() and not _leftovers(out)


# ---- 4: sqz-compress and sqz-train lock their output like sqz-convert -------------------------

def test_compress_refuses_an_output_another_run_writes(tmp_path, capsys):
    from converter import atomic
    from converter.commands.compress import compress_main
    from converter.errors import OutputBusyError

    out = tmp_path / "c.keras"
    held = atomic.OutputLock(out.absolute(), "-o")
    held.acquire()  # "another run" writing the same -o
    try:
        rc, _, err = _run(compress_main, ["squeezenet1_1", "--input-size", "40", "-o",
                                          str(out), "-q"], capsys)
    finally:
        held.release()
    assert rc == OutputBusyError.exit_code, err
    assert f"-o {out} is being written by another sqz run (pid " in _flat(err)
    assert "give this run another -o" in _flat(err)
    assert not out.exists()


def test_train_refuses_an_output_another_run_writes(tmp_path, capsys):
    from converter import atomic
    from converter.commands.train import train_main
    from converter.errors import OutputBusyError

    out = tmp_path / "t.keras"
    held = atomic.OutputLock(out.absolute(), "--output")
    held.acquire()
    try:
        rc, _, err = _run(train_main, [str(tmp_path), "-o", str(out), "-q"], capsys)
    finally:
        held.release()
    assert rc == OutputBusyError.exit_code, err
    assert f"--output {out} is being written by another sqz run" in _flat(err)


# ---- 5: impossible sizes and pseudo file systems are usage errors, found up front -------------

def test_huge_input_size_is_a_usage_error(tmp_path, capsys):
    from converter.commands.compress import compress_main
    from converter.commands.train import train_main

    for main, argv in ((convert_main, ["squeezenet1_1", "--target", "host", "--out",
                                       str(tmp_path / "o")]),
                       (compress_main, ["squeezenet1_1", "-o", str(tmp_path / "c.keras")]),
                       (train_main, [str(tmp_path), "-o", str(tmp_path / "t.keras")])):
        rc, _, err = _run(main, [*argv, "--input-size", "100000", "-q"], capsys)
        assert rc == 2, err
        assert "--input-size '100000': at most 1024 pixels a side" in _flat(err)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["/proc/sqz-x", "/sys/kernel/sqz-x", "/proc/self/sqz"])
def test_out_in_a_kernel_file_system_is_a_usage_error(where, capsys):
    from converter.commands.compress import compress_main

    rc, _, err = _run(convert_main, ["squeezenet1_1", "--target", "host", "--out", where, "-q"],
                      capsys)
    assert rc == 2, err
    root = "/" + where.split("/")[1]
    assert f"--out {where}: {root} is a kernel interface, not a place for files" in _flat(err)
    rc, _, err = _run(compress_main, ["squeezenet1_1", "-o", where + ".keras", "-q"], capsys)
    assert rc == 2 and f"-o {where}.keras: {root} is a kernel interface" in _flat(err), err


# ---- 6: Ctrl-C -------------------------------------------------------------------------------

def _convert_cmd(model: Path, out: Path) -> list[str]:
    from clirun import cli

    return [*cli("sqz-convert"), str(model), "--target", "host", "--out", str(out), "-q"]


def _checkpoints(cmd: list[str], tmp_path: Path) -> list[str]:
    import os
    import subprocess

    log = tmp_path / "checkpoints.log"
    subprocess.run(cmd, check=True, capture_output=True,
                   env={**os.environ, "SQZ_TEST_CHECKPOINT_LOG": str(log)})
    return log.read_text().splitlines()


@pytest.mark.parametrize("at", ["swapped", "previous removed"])
def test_ctrl_c_during_the_final_swap_is_not_reported_as_interrupted(at, tmp_path):
    """The swap holds Ctrl-C back; once the new output is in place, the run is not 'interrupted':
    exit 0 with a note, and the output is the new one, whole."""
    import os
    import subprocess

    m = tmp_path / "conv.tflite"
    m.write_bytes(conv_model())
    out = tmp_path / "out"
    lines = _checkpoints(_convert_cmd(m, out), tmp_path)  # the first run: out is new
    lines = _checkpoints(_convert_cmd(m, out), tmp_path / ".." / tmp_path.name)
    n = next(int(ln.split()[0]) for ln in lines if ln.split(" ", 1)[1] == at)
    (out / "model.c").write_text("old\n")  # marks the previous conversion
    proc = subprocess.run(_convert_cmd(m, out), capture_output=True, text=True,
                          env={**os.environ, "SQZ_TEST_INTERRUPT": str(n)},
                          preexec_fn=default_sigint)
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 0, proc.stderr
    assert ("sqz: Ctrl-C came when the new output was already in place; it is complete, so the "
            "run finished normally") in _flat(proc.stderr)
    assert (out / "model.c").read_text() != "old\n" and not _leftovers(out)


def test_ctrl_c_before_the_swap_is_exit_130_with_a_message(tmp_path):
    import os
    import subprocess

    m = tmp_path / "conv.tflite"
    m.write_bytes(conv_model())
    out = tmp_path / "out"
    lines = _checkpoints(_convert_cmd(m, out), tmp_path)
    n = next(int(ln.split()[0]) for ln in lines if "staging complete" in ln)
    (out / "model.c").write_text("old\n")
    proc = subprocess.run(_convert_cmd(m, out), capture_output=True, text=True,
                          env={**os.environ, "SQZ_TEST_INTERRUPT": str(n)},
                          preexec_fn=default_sigint)
    assert proc.returncode == 130 and proc.stderr.strip() == "sqz: interrupted", proc.stderr
    assert (out / "model.c").read_text() == "old\n" and not _leftovers(out)


def test_two_input_keras_model_is_a_clear_error(tmp_path, capsys):
    import keras

    a, b = keras.Input((8, 8, 3), name="left"), keras.Input((8, 8, 3), name="right")
    y = keras.layers.Add()([keras.layers.Conv2D(2, 3)(a), keras.layers.Conv2D(2, 3)(b)])
    keras.Model([a, b], keras.layers.GlobalAveragePooling2D()(y), name="twin").save(
        tmp_path / "two.keras")
    rc, _, err = _run(convert_main, [str(tmp_path / "two.keras"), "--target", "host", "--out",
                                     str(tmp_path / "o"), "-q"], capsys)
    assert rc == 4, err
    assert ("model 'twin' has 2 inputs ('left' (None, 8, 8, 3), 'right' (None, 8, 8, 3)); sqz "
            "supports one input (an image)") in _flat(err)
    assert "Invalid input shapes" not in err


def test_unsupported_layer_named_without_a_quantization_prefix(tmp_path, capsys):
    """(Depthwise convolutions, the original case, are supported now: a tanh stands in.)"""
    import keras

    i = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(i)
    x = keras.layers.Activation("tanh", name="t1")(x)
    x = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x))
    keras.Model(i, x).save(tmp_path / "t.keras")
    rc, _, err = _run(convert_main, [str(tmp_path / "t.keras"), "--target", "host", "--out",
                                     str(tmp_path / "o"), "-q"], capsys)
    assert rc == 4, err
    err = _flat(err)
    assert ("t.keras: layer 't1' (Activation) becomes the TFLite op TANH, "
            "which sqz has no kernel for. Supported ops: ADD,") in err
    assert "did not give a full-integer model" not in err


def test_port_dev_null_gets_advice(model_dir, tmp_path, capsys):
    rc, _, err = _run(validate_main, ["--port", "/dev/null", "--model", str(model_dir)], capsys)
    assert rc == 2, err
    assert ("--port /dev/null is not a serial port (/dev/null is a system device that no board "
            "answers on); give the board's serial port (Linux /dev/ttyACM0") in _flat(err)
    (tmp_path / "f").write_text("")
    rc, _, err = _run(validate_main, ["--port", str(tmp_path / "f"), "--model", str(model_dir)],
                      capsys)
    assert rc == 2 and "is not a serial port (it is a file, not a device)" in _flat(err), err


# ---- 8: output for people ----------------------------------------------------------------------

def test_next_command_is_one_line_and_shell_quoted(tmp_path, capsys):
    import shlex

    m = tmp_path / "conv.tflite"
    m.write_bytes(conv_model())
    out = tmp_path / ("a folder with spaces [and brackets] " + "x" * 60) / "out"
    rc, stdout, _ = _run(convert_main, [str(m), "--target", "host", "--out", str(out)], capsys)
    assert rc == 0
    lines = stdout.splitlines()
    want = f"Next: sqz-validate --sim host --model {shlex.quote(str(out))}"
    assert want in lines, stdout
    assert shlex.split(want)[-1] == str(out)
    assert f"Wrote {out}: model.c, model_data.c" in stdout  # not wrapped at 80 columns


def test_every_tool_prints_its_version_with_v_and_version(capsys):
    from converter import __version__
    from converter.commands.bench import bench_main
    from converter.commands.compress import compress_main
    from converter.commands.train import train_main

    for main in (convert_main, validate_main, bench_main, compress_main, train_main):
        for flag in ("-V", "--version"):
            with pytest.raises(SystemExit) as e:
                main([flag])
            assert e.value.code in (0, None)
            assert capsys.readouterr().out.strip() == f"sqz {__version__}", (main, flag)


def test_train_old_version_spelling_still_selects_the_network(tmp_path, capsys):
    from converter.commands.train import train_main

    rc, _, err = _run(train_main, [str(tmp_path), "-o", str(tmp_path / "t.keras"), "--version",
                                   "1.0", "--val-split", "5"], capsys)
    assert rc == 2
    assert ("note: --version 1.0 is the old spelling of --net-version 1.0 (--version alone now "
            "prints sqz's version, as in the other sqz tools)") in _flat(err)
    rc, _, err = _run(train_main, [str(tmp_path), "-o", str(tmp_path / "t.keras"), "--version",
                                   "2.0"], capsys)
    assert rc == 2 and ("--version 2.0: --version alone prints sqz's version; the SqueezeNet "
                        "version is --net-version 1.0 or 1.1") in _flat(err)


def test_train_keeps_tensorflow_start_up_lines_off_stderr(tmp_path):
    import subprocess

    from clirun import cli
    from PIL import Image

    rng = np.random.default_rng(1)
    for c in ("a", "b"):
        (tmp_path / "data" / c).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(
                tmp_path / "data" / c / f"{i}.png")
    proc = subprocess.run([*cli("sqz-train"), str(tmp_path / "data"), "-o",
                           str(tmp_path / "t.keras"), "--input-size", "32", "--epochs", "1",
                           "--batch-size", "4", "-q"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "absl" not in proc.stderr and "cuda" not in proc.stderr.lower()
    assert proc.stderr == "", proc.stderr


def test_report_png_explains_its_bottom_panel(tmp_path, capsys, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = []
    monkeypatch.setattr(plt, "close", lambda fig=None: figures.append(fig))
    m = tmp_path / "conv.tflite"
    m.write_bytes(conv_model())
    assert convert_main([str(m), "--target", "host", "--out", str(tmp_path / "o"), "-q"]) == 0
    (fig,) = figures
    top, bottom = fig.axes
    assert bottom.get_title().startswith("arena layout: each block is one buffer")
    assert [t.get_text() for t in bottom.get_legend().get_texts()] == [
        "tensor (layer input or output)", "scratch or state (kernel working memory)"]
    assert "live bytes" in [t.get_text() for t in top.get_legend().get_texts()]
    plt.close(fig)


# ---- 1: TensorFlow's quantizer runs in a child process: a native crash is a message ------------

def test_quantizer_crash_is_a_clear_error(monkeypatch):
    """inf reaches TensorFlow here only because the data gate is bypassed (the API, not the CLI);
    its converter then dies with SIGSEGV, which used to take sqz (and pytest) with it."""
    import keras

    from converter.errors import ModelError
    from converter.frontend.quantize import IN_PROCESS_ENV, quantize_keras

    monkeypatch.delenv(IN_PROCESS_ENV, raising=False)  # the child, as users get it
    i = keras.Input((12, 12, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, activation="relu")(i))
    model = keras.Model(i, keras.layers.Dense(3)(x))
    calib = np.random.default_rng(0).random((4, 12, 12, 3), dtype=np.float32)
    good = quantize_keras(model, calib)
    assert good[4:8] == b"TFL3"
    monkeypatch.setenv(IN_PROCESS_ENV, "1")  # the suite's way (tests/conftest.py)
    here = quantize_keras(model, calib)
    monkeypatch.delenv(IN_PROCESS_ENV)
    # The same int8 model: tensors, weights, quantization and ops; only the input's name
    # differs (the child reloads the model from its .keras).
    from converter.frontend.tflite_reader import read_model_bytes

    def facts(buf: bytes) -> list[tuple]:
        return [(t.shape, t.dtype, t.quant, t.data) for t in read_model_bytes(buf).tensors]

    assert facts(good) == facts(here)
    assert read_model_bytes(good).ops == read_model_bytes(here).ops
    calib[1, 2, 3, 0] = np.inf
    with pytest.raises(ModelError) as e:
        quantize_keras(model, calib)
    assert str(e.value).startswith("TensorFlow's quantizer crashed (SIGSEGV) while converting "
                                   "the model to int8")
    assert "try another --calib set or fewer --calib-samples" in str(e.value)


def test_model_the_child_cannot_load_is_quantized_in_process(monkeypatch):
    import keras

    from converter.frontend.quantize import IN_PROCESS_ENV, quantize_keras

    monkeypatch.delenv(IN_PROCESS_ENV, raising=False)
    i = keras.Input((8, 8, 3))
    x = keras.layers.Lambda(lambda t: t * 0.5)(i)  # not loadable in safe mode: no child
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3)(x))
    model = keras.Model(i, keras.layers.Dense(2)(x))
    calib = np.random.default_rng(0).random((3, 8, 8, 3), dtype=np.float32)
    assert quantize_keras(model, calib)[4:8] == b"TFL3"


def test_ctrl_c_swallowed_by_a_library_still_stops_the_run(tmp_path, capsys, monkeypatch):
    """TensorFlow may catch the KeyboardInterrupt of a Ctrl-C in its own code and carry on
    (sqz-train then wrote its model anyway); the swap notices and the run ends as
    interrupted, its output untouched."""
    import os
    import signal
    import time

    import converter.report as report

    m = tmp_path / "conv.tflite"
    m.write_bytes(conv_model())
    out = tmp_path / "out"
    assert convert_main([str(m), "--target", "host", "--out", str(out), "-q"]) == 0
    before = _tree(out)
    real = report.build_report

    def swallowing(*args, **kwargs):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except KeyboardInterrupt:
            pass  # what a library that "handles" it does
        return real(*args, **kwargs)

    monkeypatch.setattr(report, "build_report", swallowing)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    try:
        rc = convert_main([str(m), "--target", "host", "--out", str(out), "--stream", "off",
                           "-q"])
    finally:
        signal.signal(signal.SIGINT, previous)
    assert rc == 130
    assert capsys.readouterr().err == "sqz: interrupted\n"
    assert _tree(out) == before and not _leftovers(out)
