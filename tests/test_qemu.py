"""The Cortex-M4 firmware in QEMU (mps2-an386, UART0 on TCP): the tiny fixture model bit-exact
and equal to the host firmware, instruction counts that repeat exactly, no byte lost in bursts,
QEMU stopped whatever ends the session, sizes and overflows reported with numbers, and
sqz-validate --sim qemu on a converted SqueezeNet."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from clirun import cli, with_arena
from test_host_firmware import random_input, reference

from converter import __version__, codegen, targets
from converter.device import protocol as P
from converter.device import qemu
from converter.device.client import DeviceClient
from converter.device.hostsim import start_host_firmware
from converter.errors import BudgetError, BuildError, UsageError

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "tiny_model"
MISSING = [t for t in (qemu.QEMU, qemu.CC, qemu.SIZE) if shutil.which(t) is None]
needs_qemu = pytest.mark.skipif(
    bool(MISSING), reason=f"{', '.join(MISSING)} not installed: {qemu.APT_HINT}")


def _mps2_model_dir(dest: Path) -> Path:
    """The tiny fixture with the sqz_target.h sqz-convert renders for mps2-an386."""
    shutil.copytree(FIXTURE, dest)
    t = targets.load(qemu.TARGET)
    header = codegen.environment().get_template("sqz_target.h.j2").render(
        target=dataclasses.asdict(t), placement={"arena_in_psram": 0},
        banner={"tool_version": __version__, "sha256": "-", "source": "tiny_model fixture",
                "target": t.name}, symbols=codegen.symbols())
    (dest / "sqz_target.h").write_text(header)
    return dest


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("qemu-build")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return _mps2_model_dir(tmp_path_factory.mktemp("qemu") / "tiny")


def _gone(pid: int, timeout: float = 5.0) -> bool:
    """True once no process has this pid (or only a zombie, about to be reaped by init)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return True
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return True
        time.sleep(0.05)
    return False


# ---- without QEMU -----------------------------------------------------------------------------

def test_missing_tools_say_how_to_install(tiny, monkeypatch) -> None:
    monkeypatch.setattr(qemu.shutil, "which", lambda name: None)
    with pytest.raises(BuildError, match="apt-get install qemu-system-arm gcc-arm-none-eabi "
                                         "libnewlib-arm-none-eabi"):
        with qemu.start_qemu_firmware(tiny):
            pass


def test_a_model_for_another_target_is_refused(tmp_path) -> None:
    with pytest.raises(UsageError, match="generated for target 'host'.*--target mps2-an386"):
        qemu.build_qemu_firmware(FIXTURE, tmp_path)


# ---- the firmware in QEMU --------------------------------------------------------------------

@needs_qemu
def test_tiny_model_bit_exact_and_equal_to_the_host(tiny, build_dir) -> None:
    inputs = [random_input(seed) for seed in range(4)]
    with qemu.start_qemu_firmware(tiny, build_dir=build_dir) as q:
        assert "mps2-an386" in q.description and "127.0.0.1" in q.description
        dev = DeviceClient(q.port)
        info = dev.hello()
        assert (info.target_name, info.counter_unit) == ("mps2-an386", "instructions")
        assert info.max_payload == targets.load("mps2-an386").max_frame_payload
        on_qemu = [dev.infer(x) for x in inputs]
    with start_host_firmware(FIXTURE, build_dir=build_dir) as fw:
        dev = DeviceClient(fw.port)
        on_host = [dev.infer(x) for x in inputs]
    for x, a, b in zip(inputs, on_qemu, on_host, strict=True):
        out, logits = reference(x)
        assert a.output == b.output == out
        assert a.logits == b.logits == logits


@needs_qemu
def test_instruction_counts_repeat_exactly(tiny, build_dir) -> None:
    x, y = random_input(11), random_input(12)
    runs = []
    for _ in range(2):  # two boots: the host's timing differs, the counts must not
        with qemu.start_qemu_firmware(tiny, build_dir=build_dir) as q:
            dev = DeviceClient(q.port)
            runs.append([dev.infer(x, per_layer=True), dev.infer(y), dev.infer(x, per_layer=True)])
    first = runs[0][0]
    # Exact instructions, not SysTick ticks: multiples of 40 throughout would mean the phase
    # search is not working.
    assert any(c % 40 for c in [*first.layer_counts, first.run.total_count,
                                runs[0][1].run.total_count])
    assert len(first.layer_counts) == 3 and all(c > 0 for c in first.layer_counts)
    assert sum(first.layer_counts) <= first.run.total_count
    for boot in runs:
        assert boot[0].run.total_count == boot[2].run.total_count == first.run.total_count
        assert boot[0].layer_counts == boot[2].layer_counts == first.layer_counts
        assert boot[1].run.total_count == runs[0][1].run.total_count


@needs_qemu
def test_pipelined_bursts_lose_no_byte(tiny, build_dir) -> None:
    """Many requests in one write (about 13 KB): QEMU feeds the one-byte UART buffer only as
    the polling firmware empties it, so the socket holds the rest and nothing is dropped."""
    inputs = [random_input(100 + i) for i in range(4)]
    burst = b""
    seq = 1
    expect = {}
    for x in inputs:
        for off in range(0, len(x), 1024):
            burst += P.encode_frame(P.write_input_request(seq, off, x[off:off + 1024]))
            expect[seq] = P.Resp.ACK
            seq += 1
        burst += P.encode_frame(P.run_request(seq))
        expect[seq] = P.Resp.RESULT
        seq += 1
        for off in range(0, 2048, 1024):
            burst += P.encode_frame(P.read_request(seq, P.ReadWhat.OUTPUT, off, 1024))
            expect[seq] = P.Resp.DATA
            seq += 1
    with qemu.start_qemu_firmware(tiny, build_dir=build_dir) as q:
        DeviceClient(q.port).hello()
        q.port.write(burst)
        dec = P.FrameDecoder()
        got = {}
        deadline = time.monotonic() + 30
        while len(got) < len(expect) and time.monotonic() < deadline:
            for item in dec.feed(q.port.read(max(1, q.port.in_waiting))):
                assert not isinstance(item, P.FrameError), item
                r = P.parse_response(item)
                got[r.header.seq] = r
    assert len(burst) > 12_000
    assert {s: r.header.type for s, r in got.items()} == expect
    data = [got[s].message.data for s in sorted(got) if got[s].header.type == P.Resp.DATA]
    outputs = [b"".join(data[i:i + 2]) for i in range(0, len(data), 2)]
    assert outputs == [reference(x)[0] for x in inputs]


class _Boom(Exception):
    pass


@needs_qemu
@pytest.mark.parametrize("ending", ["normal", "exception", "ctrl-c"])
def test_qemu_is_stopped_whatever_ends_the_block(tiny, build_dir, ending) -> None:
    raised = {"normal": None, "exception": _Boom, "ctrl-c": KeyboardInterrupt}[ending]
    pid = None
    try:
        with qemu.start_qemu_firmware(tiny, build_dir=build_dir) as q:
            pid = q.proc.pid
            DeviceClient(q.port).hello()
            if raised:
                raise raised()
    except (_Boom, KeyboardInterrupt) as e:
        assert type(e) is raised
    assert pid is not None and _gone(pid, timeout=0.5)


@needs_qemu
def test_qemu_dies_with_the_python_process_that_started_it(tiny, build_dir) -> None:
    script = textwrap.dedent(f"""
        import sys, time
        from converter.device.qemu import start_qemu_firmware
        with start_qemu_firmware({str(tiny)!r}, build_dir={str(build_dir)!r}) as q:
            print(q.proc.pid, flush=True)
            time.sleep(60)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                              text=True, cwd=ROOT)
    try:
        pid = int(parent.stdout.readline())
        assert not _gone(pid, timeout=0.2)
        parent.send_signal(signal.SIGKILL)  # no finally block runs: only the kernel can help
        parent.wait()
        assert _gone(pid), f"QEMU (pid {pid}) outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


@needs_qemu
def test_image_size_splits_flash_and_ram(tiny, build_dir) -> None:
    elf = qemu.build_qemu_firmware(tiny, build_dir)
    size = qemu.image_size(elf)
    assert size["flash"] == size["text"] + size["data"]
    assert size["ram"] == size["data"] + size["bss"]
    arena = 13568  # SQZ_MODEL_ARENA_BYTES of the fixture
    assert size["ram"] > arena + 16 * 1024  # the arena and the stack
    assert 10_000 < size["flash"] < 64 * 1024
    assert size["flash_limit"] == size["ram_limit"] == 4 * 1024 * 1024


@needs_qemu
def test_an_arena_too_big_for_the_board_is_reported_with_numbers(tiny, tmp_path) -> None:
    big = with_arena(tiny, tmp_path / "big", 5000000)
    with pytest.raises(BudgetError) as e:
        qemu.build_qemu_firmware(big, tmp_path / "build")
    text = str(e.value)
    assert "does not fit mps2-an386" in text and "RAM:" in text and "4,194,304 B" in text
    assert re.search(r"over by [\d,]+ B", text) and "arena is 5,000,000 B" in text
    assert "--input-size" in text


# ---- sqz-validate --sim qemu on a real network ------------------------------------------------

@needs_qemu
def test_sqz_validate_sim_qemu_squeezenet_bit_exact(tmp_path) -> None:
    """The whole path as a user runs it (about 25 s: conversion, build, two inferences)."""
    out = tmp_path / "sq96"
    conv = subprocess.run([*cli("sqz-convert"), "squeezenet1_1", "--target", "mps2-an386",
                           "--input-size", "96", "--classes", "10", "--out", str(out)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert conv.returncode == 0, conv.stdout + conv.stderr
    val = subprocess.run([*cli("sqz-validate"), "--sim", "qemu", "--model", str(out), "-n",
                          "2"], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "COLUMNS": "200"})
    text = val.stdout + val.stderr
    assert val.returncode == 0, text
    assert "PASS: all 2 outputs bit-exact" in text
    assert "mps2-an386" in text and "counter in instructions" in text
    counts = [int(c.replace(",", "")) for c in
              re.findall(r"min ([\d,]+) +median [\d,]+ +max ([\d,]+)", text)[0]]
    # 42.8 M MACs: the Armv7E-M kernels take about one instruction per MAC, the portable C 4.7.
    assert 20e6 < counts[0] <= counts[1] < 1e9
    np.testing.assert_allclose(counts[0], counts[1], rtol=0.01)  # inputs differ, cost hardly


def _convert_and_validate(tmp_path, name: str, size: str, classes: str) -> str:
    out = tmp_path / f"{name}-{size}"
    conv = subprocess.run([*cli("sqz-convert"), name, "--target", "mps2-an386",
                           "--input-size", size, "--classes", classes, "--out", str(out)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert conv.returncode == 0, conv.stdout + conv.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["image"]["flash"] > report["weight_bytes"]
    assert report["image"]["ram"] > report["arena_bytes"]
    val = subprocess.run([*cli("sqz-validate"), "--sim", "qemu", "--model", str(out), "-n",
                          "1"], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "COLUMNS": "200"})
    text = val.stdout + val.stderr
    assert val.returncode == 0, text
    return text


def test_squeezenet1_1_224_bit_exact_on_qemu(tmp_path) -> None:
    """The ImageNet shape (about 40 s: the 150 KB input crosses QEMU's UART at ~20 KB/s)."""
    text = _convert_and_validate(tmp_path, "squeezenet1_1", "224", "1000")
    assert ("PASS: all 1 outputs bit-exact" in text or "PASS: all 1 logits bit-exact" in text)


def test_squeezenet1_0_bypass_224_bit_exact_on_qemu(tmp_path) -> None:
    """Streamed row by row (sqz-convert's default picks it at this size). The complex bypass
    has the simple one's adds and its 1x1 convs besides; the simple one runs at 224 on the
    emulated ESP32-S3 (test_qemu_esp32s3) and both streamed on the host (test_networks)."""
    text = _convert_and_validate(tmp_path, "squeezenet1_0_complex_bypass", "224", "1000")
    assert ("PASS: all 1 outputs bit-exact" in text or "PASS: all 1 logits bit-exact" in text)
