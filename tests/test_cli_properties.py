"""A property of all five tools: whatever the options and however broken the inputs, a run ends
with a message and a documented exit code (docs/errors.md), never a traceback or an internal
error (exit 70), and an output it replaces is the old one or the new one, whole.

Hypothesis draws option combinations and corrupt or extreme inputs (NaN and inf arrays, empty,
truncated and foreign files, huge sizes, kernel file systems, folders with the user's files).
The examples are fixed (derandomized) and few, so that the file stays within CI's budget
(about a minute); the tools run in this process, so TensorFlow is loaded once."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from tflbuild import GraphBuilder, add_conv

from converter.atomic import MANIFEST
from converter.commands.bench import bench_main
from converter.commands.compress import compress_main
from converter.commands.convert import convert_main
from converter.commands.train import train_main
from converter.commands.validate import validate_main
from converter.frontend.preprocess import Preprocessing

DOCS = Path(__file__).resolve().parents[1] / "docs" / "errors.md"


def documented_codes() -> set[int]:
    table = DOCS.read_text().split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    return {int(c) for c in re.findall(r"^\| (\d+) \|", table, re.M)}


DOCUMENTED = documented_codes() - {70}
PROPERTY = settings(max_examples=12, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def conv_model() -> bytes:
    g = GraphBuilder()
    x = g.tensor("image", (1, 12, 12, 3), "int8", 1 / 255, -128)
    y, _ = add_conv(g, x, (1, 12, 12, 3), (1 / 255, -128), 4, (3, 3), (1, 1), "same", "relu",
                    [0.01, 0.02, 0.015, 0.01], (0.1, -128), np.random.default_rng(5))
    return g.build([x], [y])


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """Good and broken inputs, made once."""
    d = tmp_path_factory.mktemp("world")
    w: dict[str, Path] = {}
    good = d / "good.tflite"
    good.write_bytes(conv_model())
    (d / "good.tflite.preprocess.json").write_text(
        json.dumps(Preprocessing.simple((12, 12), channels=3).to_dict()))
    w["good.tflite"] = good
    (d / "cut.tflite").write_bytes(good.read_bytes()[:200])
    w["cut.tflite"] = d / "cut.tflite"
    for name, data in (("empty.keras", b""), ("text.keras", b"not a zip\n"),
                       ("text.h5", b"hello"), ("notes.txt", b"mine\n")):
        (d / name).write_bytes(data)
        w[name] = d / name
    rng = np.random.default_rng(0)
    x = rng.random((3, 12, 12, 3), dtype=np.float32)
    for name, bad in (("nan", np.nan), ("inf", np.inf), ("huge", 1e30)):
        y = x.copy()
        y[1, 2, 3, 0] = bad
        np.save(d / f"{name}.npy", y)
        w[f"{name}.npy"] = d / f"{name}.npy"
    np.save(d / "good.npy", x)
    np.save(d / "int8.npy", rng.integers(-128, 128, (2, 12, 12, 3), dtype=np.int8))
    np.save(d / "shape.npy", x[:, :5])
    np.save(d / "ints.npy", np.arange(10))
    np.savez(d / "nan_weights.npz", conv1_kernel=np.array([np.nan], np.float32))
    for name in ("good.npy", "int8.npy", "shape.npy", "ints.npy", "nan_weights.npz"):
        w[name] = d / name
    for c in ("a", "b"):
        (d / "labelled" / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(
                d / "labelled" / c / f"{i}.png")
    w["labelled"] = d / "labelled"
    (d / "empty_dir").mkdir()
    w["empty_dir"] = d / "empty_dir"
    converted = d / "converted"
    assert convert_main([str(good), "--target", "host", "--out", str(converted), "-q"]) == 0
    w["converted"] = converted
    w["root"] = d
    return w


def run(main, argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exc:  # --help, --version
            rc = exc.code if isinstance(exc.code, int) else 0
    return rc, out.getvalue(), err.getvalue()


def check_ended_well(rc: int, err: str, argv: list[str]) -> None:
    assert "Traceback" not in err, (argv, err)
    assert rc != 70, (argv, err)
    assert rc in DOCUMENTED, (argv, rc, err)


def tree(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*"))
            if p.is_file()}


def check_whole_dir(d: Path, before: dict[str, bytes] | None) -> None:
    """``d`` is what it was (``before``; None: absent) or a whole new sqz output, with nothing
    left beside it."""
    helpers = [p.name for p in d.parent.iterdir() if p.name.startswith(f".{d.name}.sqz-")]
    assert helpers == [], helpers
    if not d.exists():
        assert before is None
        return
    now = tree(d)
    if now == before:
        return
    listed = json.loads(now[MANIFEST])["files"]
    assert sorted(listed) == sorted(k for k in now if k != MANIFEST)


def _resolver(world: dict[str, Path]):
    def resolve(name: str) -> str:
        """A name from the world as its path; anything else (an option value) as it is."""
        return str(world[name]) if name in world else name
    return resolve


def fresh_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="sqz-prop-"))


def out_choice(base: Path, kind: str, w: dict[str, Path]) -> tuple[Path, dict | None]:
    """An --out of the given kind, made under ``base``, and its contents before the run."""
    if kind == "fresh":
        return base / "out", None
    if kind == "previous":
        shutil.copytree(w["converted"], base / "out")
        return base / "out", tree(base / "out")
    if kind == "plain folder":
        (base / "out").mkdir()
        (base / "out" / "notes.txt").write_text("mine")
        return base / "out", tree(base / "out")
    if kind == "file":
        (base / "out").write_text("x")
        return base / "out", None
    return Path(kind), None  # /proc/..., /sys/...


OUT_KINDS = st.sampled_from(["fresh"] * 4 + ["previous"] * 4 + [
    "plain folder", "file", "/proc/sqz-prop", "/sys/sqz-prop"])


def opt(name: str, values: list[str], absent: int = 2):
    """The option with one of ``values``, or (``absent`` times as likely as each value) not
    given: most examples then get past the options to the inputs and the work."""
    return st.sampled_from([[]] * absent * len(values) + [[name, v] for v in values])


# ---- sqz-convert -------------------------------------------------------------------------------

@settings(PROPERTY, max_examples=24)
@given(model=st.sampled_from(["good.tflite"] * 3 + ["cut.tflite", "empty.keras",
                              "text.keras", "text.h5", "notes.txt", "missing.tflite",
                              "squeezenet1_1"]),
       out_kind=OUT_KINDS,
       target=opt("--target", ["host", "host", "esp32s3", "no-such-board"]),
       calib=opt("--calib", ["nan.npy", "inf.npy", "huge.npy", "shape.npy", "ints.npy",
                             "notes.txt", "empty_dir", "labelled"]),
       size=opt("--input-size", ["36", "36", "0", "100000", "12x", "-3"]),
       budget=opt("--ram-budget", ["0", "1", "1K", "abc", "1e9"]),
       stream=opt("--stream", ["auto", "off", "full", "sideways"]),
       weights=opt("--weights", ["nan_weights.npz", "notes.txt", "good.npy"]),
       extra=st.sampled_from([[]] * 8 + [["--calib-samples", "0"], ["--classes", "0"],
                                         ["--export-image", "notes.txt"], ["--version"]]))
def test_convert_property(world, model, out_kind, target, calib, size, budget, stream,
                          weights, extra):
    base = fresh_dir()
    try:
        out, before = out_choice(base, out_kind, world)
        resolve = _resolver(world)
        argv = [resolve(model), "--out", str(out), "-q", *target,
                *[resolve(v) for v in calib], *size, *budget, *stream,
                *[resolve(v) for v in weights], *[resolve(v) for v in extra]]
        rc, _, err = run(convert_main, argv)
        check_ended_well(rc, err, argv)
        if out_kind in ("fresh", "previous", "plain folder"):
            check_whole_dir(out, before)
        if out_kind == "plain folder":
            assert tree(out) == before  # the user's files are never replaced
    finally:
        shutil.rmtree(base, ignore_errors=True)


# ---- sqz-validate ------------------------------------------------------------------------------

@settings(PROPERTY, max_examples=20)
@given(model=st.sampled_from(["converted"] * 3 + ["empty_dir", "notes.txt", "missing"]),
       inputs=opt("--inputs", ["nan.npy", "inf.npy", "huge.npy", "good.npy", "int8.npy",
                               "shape.npy", "ints.npy", "notes.txt", "labelled", "empty_dir"]),
       n=opt("-n", ["0", "-1", "2", "abc"]),
       where=st.sampled_from([["--sim", "host"]] * 8 + [["--port", "/dev/null"],
                              ["--port", "socket://127.0.0.1:1"], ["--sim", "moon"], []]),
       timeout=opt("--timeout", ["0", "-1", "inf", "nan", "5"]),
       report=opt("--report", ["/proc/sqz-prop.json", "r.json"]))
def test_validate_property(world, model, inputs, n, where, timeout, report):
    base = fresh_dir()
    try:
        resolve = _resolver(world)
        argv = ["--model", resolve(model), *[resolve(v) for v in inputs], *n, *where,
                *timeout, *[str(base / v) if v == "r.json" else v for v in report]]
        before = tree(world["converted"])
        rc, _, err = run(validate_main, argv)
        check_ended_well(rc, err, argv)
        assert tree(world["converted"]) == before  # validation never changes the model
    finally:
        shutil.rmtree(base, ignore_errors=True)


# ---- sqz-bench ---------------------------------------------------------------------------------

@settings(PROPERTY, max_examples=6)
@given(model=st.sampled_from(["good.tflite", "cut.tflite", "empty.keras", "missing.tflite"]),
       out_kind=st.sampled_from(["fresh", "plain folder", "file", "/proc/sqz-prop"]),
       json_to=opt("--json", ["/proc/sqz-prop.json", "b.json"]),
       size=opt("--input-size", ["0", "100000"]))
def test_bench_property(world, model, out_kind, json_to, size):
    base = fresh_dir()
    try:
        out, before = out_choice(base, out_kind, world)
        resolve = _resolver(world)
        argv = [resolve(model), "--out", str(out), "--no-board", "--no-cycles", *size,
                *[str(base / v) if v == "b.json" else v for v in json_to]]
        rc, _, err = run(bench_main, argv)
        check_ended_well(rc, err, argv)
        if out_kind == "plain folder":
            assert tree(out) == before
    finally:
        shutil.rmtree(base, ignore_errors=True)


# ---- sqz-compress and sqz-train: a model file and its sidecars --------------------------------

def check_file_group(output: Path, rc: int) -> None:
    """Nothing half-written: on failure no output and no helper beside it; on success the
    model is there."""
    if not output.parent.is_dir():
        return
    helpers = [p.name for p in output.parent.iterdir() if ".sqz-" in p.name]
    assert helpers == [], helpers
    if rc == 0:
        assert output.is_file()
    elif str(output).startswith(tempfile.gettempdir()):
        assert not output.exists()


@settings(PROPERTY, max_examples=8)
@given(model=st.sampled_from(["squeezenet1_1", "good.tflite", "empty.keras", "text.keras",
                              "missing.keras"]),
       output=st.sampled_from(["c.keras", "c.txt", "no/such/dir/c.keras", "/proc/c.keras"]),
       size=opt("--input-size", ["32", "0", "100000"]),
       sparsity=opt("--sparsity", ["0.5", "2", "paper,conv10=x", "none"]),
       bits=opt("--bits", ["2", "0", "99"]),
       finetune=opt("--finetune", ["empty_dir", "notes.txt"]),
       weights=opt("--weights", ["nan_weights.npz", "notes.txt"]))
def test_compress_property(world, model, output, size, sparsity, bits, finetune, weights):
    base = fresh_dir()
    try:
        o = Path(output) if output.startswith("/") else base / output
        resolve = _resolver(world)
        argv = [resolve(model), "-o", str(o), "-q", "--classes", "3", *size, *sparsity, *bits,
                *[resolve(v) for v in finetune], *[resolve(v) for v in weights]]
        rc, _, err = run(compress_main, argv)
        check_ended_well(rc, err, argv)
        check_file_group(o, rc)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@settings(PROPERTY, max_examples=8)
@given(data=st.sampled_from(["labelled", "empty_dir", "notes.txt", "missing"]),
       output=st.sampled_from(["t.keras", "t.h5", "/proc/t.keras"]),
       epochs=st.sampled_from(["1", "0", "-1", "x"]),
       split=opt("--val-split", ["0", "0.5", "5"]),
       size=st.sampled_from(["32", "0", "100000", "9"]),
       version=opt("--version", ["1.0", "2"]))
def test_train_property(world, data, output, epochs, split, size, version):
    base = fresh_dir()
    try:
        o = Path(output) if output.startswith("/") else base / output
        resolve = _resolver(world)
        argv = [resolve(data), "-o", str(o), "-q", "--epochs", epochs, "--batch-size", "4",
                "--input-size", size, *split, *version]
        rc, _, err = run(train_main, argv)
        check_ended_well(rc, err, argv)
        check_file_group(o, rc)
    finally:
        shutil.rmtree(base, ignore_errors=True)

