"""Nothing lost, nothing half-written: sqz-convert's --out is, at every instant, the whole old
conversion or the whole new one, whatever interrupts it (SIGINT or SIGKILL at every checkpoint
of the write phase, or after random delays); a second conversion into the same --out fails
clearly; a different model into a used directory leaves no stale file; every single file sqz
writes is replaced atomically."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from clirun import default_sigint
from tflbuild import GraphBuilder, add_conv, maxpool_model

from converter import atomic
from converter.commands.convert import convert_main
from converter.commands.validate import validate_main
from converter.errors import InputFileError, OutputBusyError, UsageError

ROOT = Path(__file__).resolve().parents[1]
CLASSES_A = [f"class{i}" for i in range(8)]  # the max-pool model has 8 outputs per pixel


def conv_model() -> bytes:
    """A second tiny model (one 3x3 conv), different from the max-pool one in every file."""
    g = GraphBuilder()
    x = g.tensor("image", (1, 12, 12, 3), "int8", 0.05, -3)
    y, _ = add_conv(g, x, (1, 12, 12, 3), (0.05, -3), 4, (3, 3), (1, 1), "same", "relu",
                    [0.01, 0.02, 0.015, 0.01], (0.1, -128), np.random.default_rng(5))
    return g.build([x], [y])


def tree(path: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under path (hidden ones included)."""
    out = {}
    for p in sorted(path.rglob("*")):
        if p.is_file():
            out[p.relative_to(path).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def helpers_beside(out: Path) -> list[str]:
    """What a run left next to --out: nothing once it has ended (a killed run may leave its
    empty lock file, which the next run removes)."""
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("models")
    a = d / "pool.tflite"
    a.write_bytes(maxpool_model())
    (d / "pool.tflite.classes.json").write_text(json.dumps(CLASSES_A))
    b = d / "conv.tflite"
    b.write_bytes(conv_model())
    return {"A": a, "B": b}


def convert_cmd(model: Path, out: Path) -> list[str]:
    # Ctrl-C as in a terminal: a shell starts background jobs with SIGINT ignored, and Python
    # keeps it ignored, so the handler is set explicitly.
    # convert_main() without arguments and named sqz-convert, as its console script runs.
    return [sys.executable, "-c", "import signal, sys; "
            "signal.signal(signal.SIGINT, signal.default_int_handler); "
            "sys.argv[0] = 'sqz-convert'; "
            "from converter.commands.convert import convert_main; sys.exit(convert_main())",
            str(model), "--target", "host", "--out", str(out), "-q"]


def run_convert(model: Path, out: Path, env: dict[str, str] | None = None
                ) -> subprocess.CompletedProcess:
    return subprocess.run(convert_cmd(model, out), capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120,
                          preexec_fn=default_sigint)


@pytest.fixture(scope="module")
def converted(models, tmp_path_factory) -> dict[str, Path]:
    """The complete conversions of A and B, each validated once on the host firmware."""
    d = tmp_path_factory.mktemp("snap")
    dirs = {}
    for key, model in models.items():
        out = d / key
        assert convert_main([str(model), "--target", "host", "--out", str(out), "-q"]) == 0
        assert validate_main(["--sim", "host", "--model", str(out), "-n", "2", "-q"]) == 0
        dirs[key] = out
    return dirs


@pytest.fixture(scope="module")
def snapshots(converted) -> dict[str, dict[str, str]]:
    """Every file of the two conversions, by hash: a state equal to one of them is whole and
    validates as it did (the comparison is byte for byte, hidden files included)."""
    snaps = {key: tree(path) for key, path in converted.items()}
    assert "classes.json" in snaps["A"] and "classes.json" not in snaps["B"]
    assert all(snaps["A"][f] != snaps["B"][f] for f in ("model.h", "model.tflite"))
    return snaps


def reset_to(out: Path, source: Path) -> None:
    """--out as a finished conversion left it (a copy of one, lock file beside it)."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(source, out)


def next_run_cleans_up(out: Path, model: Path, snapshot: dict[str, str], what: str) -> None:
    assert convert_main([str(model), "--target", "host", "--out", str(out), "-q"]) == 0, what
    assert tree(out) == snapshot, what
    assert helpers_beside(out) == [], what


def checkpoints(model: Path, out: Path, log: Path, env: dict[str, str]) -> list[str]:
    log.unlink(missing_ok=True)
    rc = run_convert(model, out, {**env, "SQZ_TEST_CHECKPOINT_LOG": str(log)})
    assert rc.returncode == 0, rc.stderr
    return [line.split(" ", 1)[1] for line in log.read_text().splitlines()]


def check_whole(out: Path, snapshots, what: str) -> str:
    state = tree(out)
    for key in ("A", "B"):
        if state == snapshots[key]:
            return key
    pytest.fail(f"{what}: --out is neither the old nor the new conversion: "
                f"{sorted(state)} vs {sorted(snapshots['A'])} / {sorted(snapshots['B'])}")


# ---- interruption at every checkpoint of the write phase ------------------------------------

@pytest.mark.parametrize("fallback", [False, True], ids=["exchange", "two-renames"])
def test_interrupt_at_every_checkpoint(models, converted, snapshots, tmp_path, fallback):
    out = tmp_path / "out"
    env = {"SQZ_TEST_NO_EXCHANGE": "1"} if fallback else {}
    reset_to(tmp_path / "probe", converted["A"])  # a used directory, like --out
    points = checkpoints(models["B"], tmp_path / "probe", tmp_path / "log", env)
    assert "staging complete" in points and "swapped" in points
    assert ("previous moved aside" in points) == fallback
    assert len(points) >= 12
    # The swap itself is what differs between the two ways; the staging before it is the same.
    first = 1 if not fallback else points.index("staging complete") + 1
    held = points.index("staging complete") + 1  # the swap holds Ctrl-C from here on
    seen = {}
    for k in range(first, len(points) + 1):
        label = points[k - 1]
        for sig in ("INT", "KILL"):
            reset_to(out, converted["A"])
            rc = run_convert(models["B"], out, {**env, "SQZ_TEST_INTERRUPT": f"{k}:{sig}"})
            what = f"{sig} at checkpoint {k} ({label})"
            if sig == "INT" and k > held:
                # Held back by the swap, after which the new output is complete: not an
                # interruption (issue 25), but said.
                assert rc.returncode == 0, (what, rc.stderr)
                assert "new output was already in place" in rc.stderr, what
                assert "Traceback" not in rc.stderr
            elif sig == "INT":
                assert rc.returncode == 130, (what, rc.stderr)
                assert "sqz: interrupted" in rc.stderr and "Traceback" not in rc.stderr
            else:
                assert rc.returncode == -signal.SIGKILL, (what, rc.stderr)
            if fallback and sig == "KILL" and label == "previous moved aside":
                # The one gap of the fallback: --out is missing, the old one lies beside it,
                # until a reader or the next run puts it back.
                assert not out.exists()
                atomic.recover(out)
            seen[(k, sig)] = check_whole(out, snapshots, what)
            if sig == "INT":
                assert helpers_beside(out) == [], what  # Ctrl-C cleans up after itself
            next_run_cleans_up(out, models["B"], snapshots["B"], what)
    # Before the swap the old conversion survives; from it on, the new one is in place.
    swap = points.index("swapped") + 1
    assert all(seen[(k, "KILL")] == "A" for k in range(first, swap)), seen
    assert all(seen[(k, s)] == "B" for k in range(swap, len(points) + 1)
               for s in ("INT", "KILL")), seen
    # Ctrl-C before the swap keeps the old one (held back during the swap: the new one).
    assert all(seen[(k, "INT")] == "A" for k in range(first, held)), seen


def test_interrupt_after_random_delays(models, converted, snapshots, tmp_path):
    """Real signals at unplanned moments (loading, converting, writing, swapping)."""
    out = tmp_path / "out"
    reset_to(out, converted["A"])
    rng = random.Random(os.environ.get("SQZ_TEST_SEED", "13"))
    for i in range(8):
        sig = (signal.SIGINT, signal.SIGKILL)[i % 2]
        proc = subprocess.Popen(convert_cmd(models["B"] if i % 4 < 2 else models["A"], out),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(0.3, 1.0))  # after start-up: Python itself may print a
        # fatal error for a SIGINT while it initialises, before any sqz code runs
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        assert "Traceback" not in err
        assert proc.returncode in (0, 130, -signal.SIGINT, -signal.SIGKILL), err
        check_whole(out, snapshots, f"signal {sig.name} after a random delay (run {i})")
    next_run_cleans_up(out, models["A"], snapshots["A"], "after the random signals")


# ---- concurrency ------------------------------------------------------------------------------

def test_second_conversion_into_a_locked_out_fails_clearly(models, tmp_path, capsys):
    out = tmp_path / "busy"
    lock = atomic.OutputLock(out.absolute(), "--out")
    lock.acquire()
    try:
        rc = convert_main([str(models["A"]), "--target", "host", "--out", str(out)])
    finally:
        lock.release()
    err = capsys.readouterr().err
    assert rc == OutputBusyError.exit_code == 15
    assert f"--out {out.absolute()} is being written by another sqz run (pid {os.getpid()}" in err
    assert "wait for it to finish, or give this run another --out" in err
    assert not out.exists()


def test_the_lock_leaves_nothing_behind_and_takes_over_a_killed_runs_file(tmp_path):
    """The lock file exists while a run holds it and is removed when it ends. A file left by a
    killed run is taken over and removed by the next run. A run that locked a lock file its
    holder removed meanwhile (opened before the removal) must not count it as the lock."""
    out = (tmp_path / "o").absolute()
    path = atomic.lock_path(out)
    lock = atomic.OutputLock(out, "--out")
    lock.acquire()
    assert path.is_file()
    late = os.open(path, os.O_RDWR)  # a second run that opened the file before the removal
    lock.release()
    assert not path.exists()
    try:
        fcntl.flock(late, fcntl.LOCK_EX | fcntl.LOCK_NB)  # it gets the lock of a removed file
        assert not atomic.OutputLock(out, "--out")._still_at_path(late)
    finally:
        os.close(late)
    path.write_text("pid 1, sqz-convert")  # what a killed run leaves
    lock.acquire()
    assert path.read_text().startswith(f"pid {os.getpid()}")
    lock.release()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_two_concurrent_conversions_into_one_directory(models, snapshots, tmp_path):
    out = tmp_path / "race"
    for round_ in range(3):
        procs = [subprocess.Popen(convert_cmd(models[k], out), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for k in ("A", "B")]
        results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
        codes = sorted(rc for rc, _ in results)
        assert codes in ([0, 0], [0, 15]), results
        for rc, err in results:
            if rc == 15:
                assert "is being written by another sqz run" in err and str(out) in err
        check_whole(out, snapshots, f"round {round_}")
        assert helpers_beside(out) == []


# ---- a different model into a used directory --------------------------------------------------

def test_different_model_into_used_directory_leaves_nothing_stale(models, snapshots, tmp_path,
                                                                 capsys):
    out = tmp_path / "used"
    assert convert_main([str(models["A"]), "--target", "host", "--out", str(out), "-q"]) == 0
    assert (out / "classes.json").is_file()
    assert convert_main([str(models["B"]), "--target", "host", "--out", str(out), "-q"]) == 0
    assert tree(out) == snapshots["B"]  # classes.json of A is gone
    assert not (out / "classes.json").exists()
    assert validate_main(["--sim", "host", "--model", str(out), "-n", "1", "-q"]) == 0
    assert capsys.readouterr().out.strip() == "PASS: all 1 outputs bit-exact"


def test_stale_class_names_are_refused(models, tmp_path, capsys):
    """A classes.json that does not fit the model (as a pre-atomic sqz left behind) is an
    error, not a 100 % accuracy table."""
    out = tmp_path / "stale"
    assert convert_main([str(models["B"]), "--target", "host", "--out", str(out), "-q"]) == 0
    (out / "classes.json").write_text(json.dumps(["circle", "cross", "square"]))
    rc = validate_main(["--sim", "host", "--model", str(out), "-n", "1"])
    err = capsys.readouterr().err
    assert rc == 9
    assert (f"{out / 'classes.json'} names 3 classes, but the model has 4 outputs: the class "
            "names belong to another model") in err


def test_failed_conversion_leaves_the_old_one(models, snapshots, tmp_path, capsys):
    out = tmp_path / "keep"
    assert convert_main([str(models["A"]), "--target", "host", "--out", str(out), "-q"]) == 0
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(maxpool_model()[:300])
    assert convert_main([str(bad), "--target", "host", "--out", str(out)]) == 4
    assert tree(out) == snapshots["A"] and helpers_beside(out) == []


# ---- --out checked before the work --------------------------------------------------------------

def test_out_is_a_file(models, tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert convert_main([str(models["A"]), "--target", "host", "--out", str(f)]) == 3
    assert f"--out {f}: exists and is not a directory; choose another --out" in \
        capsys.readouterr().err


def test_out_with_foreign_files_is_not_replaced(models, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert convert_main([str(models["A"]), "--target", "host", "--out", str(out)]) == 2
    # A plain folder (no sqz manifest) names the user's files too, as docs/errors.md promises.
    assert (f"--out {out} holds files that sqz did not write (notes.txt); sqz replaces its "
            "output directory as a whole and would delete them: move them elsewhere or give a "
            "new or empty --out") in capsys.readouterr().err
    assert convert_main([str(models["A"]), "--target", "host", "--out", str(tmp_path / "o"),
                         "-q"]) == 0
    (tmp_path / "o" / "notes.txt").write_text("mine")
    assert convert_main([str(models["A"]), "--target", "host", "--out", str(tmp_path / "o")]) == 2
    assert "holds files that sqz did not write (notes.txt)" in capsys.readouterr().err
    assert (tmp_path / "o" / "notes.txt").read_text() == "mine"


def test_out_is_checked_before_the_slow_work(tmp_path, capsys):
    """A bad --out fails at once, before TensorFlow builds and quantizes anything."""
    f = tmp_path / "file"
    f.write_text("x")
    t0 = time.monotonic()
    rc = convert_main(["squeezenet1_1", "--target", "host", "--out", str(f / "sub")])
    assert rc == 3 and time.monotonic() - t0 < 5
    assert f"--out {f / 'sub'}: cannot create the directory {f}" in capsys.readouterr().err


def test_legacy_output_directory_is_replaced(models, snapshots, tmp_path):
    """A directory an older sqz wrote (no manifest, leftover .tmp files of an interrupted run)
    is recognised as sqz's own and replaced whole."""
    out = tmp_path / "legacy"
    out.mkdir()
    for name in ("model.c", "model.h", "sqz.json", "classes.json", "report.png",
                 ".model_data.c.tmp"):
        (out / name).write_text("old")
    assert convert_main([str(models["B"]), "--target", "host", "--out", str(out), "-q"]) == 0
    assert tree(out) == snapshots["B"]


# ---- the module itself ------------------------------------------------------------------------

def test_single_file_replaced_whole_or_not_at_all(tmp_path):
    p = tmp_path / "r.json"
    atomic.write_text(p, "old")
    with pytest.raises(RuntimeError), atomic.replacing(p) as tmp:
        tmp.write_text("half")
        raise RuntimeError
    assert p.read_text() == "old" and sorted(x.name for x in tmp_path.iterdir()) == ["r.json"]
    atomic.write_text(p, "new")
    assert p.read_text() == "new" and sorted(x.name for x in tmp_path.iterdir()) == ["r.json"]


def test_single_file_temporaries_of_killed_runs_are_removed(tmp_path):
    p = tmp_path / "r.json"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".r.json.sqz-tmp-{dead}-0000.json"
    stale.write_text("half")
    atomic.write_text(p, "new")
    assert not stale.exists()


def test_group_is_replaced_together(tmp_path):
    a, b = tmp_path / "m.keras", tmp_path / "m.keras.classes.json"
    with atomic.replacing_group([a, b]) as (ta, tb):
        assert ta.suffix == ".keras" and ta.parent == tmp_path
        ta.write_text("model")
        tb.write_text("[]")
    assert a.read_text() == "model" and b.read_text() == "[]"
    with pytest.raises(FileNotFoundError), atomic.replacing_group([a, b]) as (ta, tb):
        ta.write_text("model 2")  # b never written: nothing is replaced
    assert a.read_text() == "model"


def test_output_directory_api(tmp_path):
    out = tmp_path / "d"
    with atomic.output_directory(out, what="--export") as stage:
        stage.write_text("a.txt", "1")
        stage.write_text("sub/b.txt", "2")
        assert not out.exists()
    assert tree(out).keys() == {"a.txt", "sub/b.txt", atomic.MANIFEST}
    with pytest.raises(KeyboardInterrupt), atomic.output_directory(out) as stage:
        stage.write_text("c.txt", "3")
        raise KeyboardInterrupt
    assert tree(out).keys() == {"a.txt", "sub/b.txt", atomic.MANIFEST}
    with atomic.output_directory(out) as stage:
        stage.write_text("c.txt", "3")
    assert tree(out).keys() == {"c.txt", atomic.MANIFEST}
    assert helpers_beside(out) == []
    with pytest.raises(UsageError, match=r"holds files that sqz did not write \(d/\); .* give a "
                                         "new or empty --out"), \
            atomic.output_directory(tmp_path):
        pass
    with pytest.raises(InputFileError, match="--export .*exists and is not a directory"), \
            atomic.output_directory(out / "c.txt", what="--export"):
        pass


def test_symlinked_out_is_replaced_at_its_target(tmp_path):
    real = tmp_path / "real"
    with atomic.output_directory(real) as stage:
        stage.write_text("a", "1")
    link = tmp_path / "link"
    link.symlink_to(real)
    with atomic.output_directory(link) as stage:
        stage.write_text("b", "2")
    assert link.is_symlink() and (real / "b").is_file() and not (real / "a").exists()


def test_ctrl_c_inside_a_c_extension_import_is_an_interruption(capsys):
    """Seen once in 50 runs of the random-delay test: SIGINT during numpy's lazy import came
    out as 'ImportError: initialization failed' and was reported as an internal error (70)."""
    from converter.commands.common import run_cli

    def job(argv):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except KeyboardInterrupt:
            raise ImportError("initialization failed") from None
        return 0

    # As in a terminal (a shell's background job would have SIGINT ignored).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert run_cli(job, []) == 130
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    finally:
        signal.signal(signal.SIGINT, previous)
    assert capsys.readouterr().err == "sqz: interrupted\n"


def test_ctrl_c_while_a_tool_is_still_importing():
    """Once seen in 50 runs of the random-delay test on a loaded machine: SIGINT arrived while
    converter.commands.convert was still being imported, and Python printed a KeyboardInterrupt
    traceback."""
    code = ("import signal, os, sys, time; "
            "signal.signal(signal.SIGINT, signal.default_int_handler); "
            "sys.argv[0] = 'sqz-convert'; import converter; "
            "os.kill(os.getpid(), signal.SIGINT); time.sleep(5); print('not interrupted')")
    rc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (rc.returncode, rc.stdout, rc.stderr) == (130, "", "sqz: interrupted\n")
    # A program that uses sqz as a library keeps its own Ctrl-C.
    rc = subprocess.run([sys.executable, "-c", code.replace("sqz-convert", "myapp")],
                        capture_output=True, text=True, timeout=60)
    assert rc.returncode == -signal.SIGINT and "KeyboardInterrupt" in rc.stderr
