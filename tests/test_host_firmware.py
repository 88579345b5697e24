"""The real firmware (runtime + app + host port + the tiny fixture model), built with ASan and
UBSan, served over a pseudo-terminal: INFO, bit-exact inference against numpy, the right error
frame for every bad request, survival of thousands of damaged frames, and clean exits."""

from __future__ import annotations

import os
import random
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np
import pytest

from converter.device import protocol as P
from converter.device.build import WARN_FLAGS, include_dirs, runtime_sources
from converter.device.client import DeviceClient
from converter.device.hostsim import (
    SANITIZER_ENV,
    HostFirmware,
    app_dir,
    build_host_firmware,
    host_port_source,
    start_host_firmware,
)

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "tiny_model"
E = P.ErrorCode


# ---- the fixture's math, independently in numpy ----------------------------------------------

def _c_array(text: str, name: str) -> np.ndarray:
    m = re.search(rf"\b{name}\[\d+\]\s*=\s*\{{(.*?)\}};", text, re.S)
    assert m, name
    return np.array([int(v) for v in m.group(1).replace("\n", " ").split(",") if v.strip()],
                    dtype=np.int64)


def _c_defines(text: str) -> dict[str, int]:
    return {k: int(v.strip("()").rstrip("u"))
            for k, v in re.findall(r"#define\s+(TINY_\w+)\s+(\S+)", text)}


def _srdhm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SaturatingRoundingDoublingHighMul on int64 arrays holding int32 values."""
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    q = ab + nudge
    r = np.where(q >= 0, q >> 31, -((-q) >> 31))  # C division truncates toward zero
    return np.where((a == -(2**31)) & (b == -(2**31)), 2**31 - 1, r)


def _rdbp(x: np.ndarray, e: np.ndarray) -> np.ndarray:
    mask = (np.int64(1) << e) - 1
    rem = x & mask
    thr = (mask >> 1) + (x < 0)
    return (x >> e) + (rem > thr)


def _mbqm(x: np.ndarray, mult, shift) -> np.ndarray:
    shift = np.asarray(shift, dtype=np.int64)
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    xs = ((x << left) + 2**31) % 2**32 - 2**31
    return _rdbp(_srdhm(xs, np.asarray(mult, dtype=np.int64)), right)


def reference(x: bytes) -> tuple[bytes, bytes]:
    """(output, logits) of the fixture model, following TFLite's int8 semantics."""
    model_c = (FIXTURE / "model.c").read_text()
    data_c = (FIXTURE / "model_data.c").read_text()
    d = _c_defines(model_c)
    # Rows are padded to 32 values (the kernel's layout for short filters); drop the padding.
    w = _c_array(data_c, "tiny_conv1_filter").reshape(8, 32)[:, :27].reshape(8, 3, 3, 3)
    folded = _c_array(data_c, "tiny_conv1_bias")
    mult = _c_array(data_c, "tiny_conv1_multiplier")
    shift = _c_array(data_c, "tiny_conv1_shift")
    zp_in, zp_conv, zp_out = d["TINY_IN_ZP"], d["TINY_CONV_ZP"], d["TINY_OUT_ZP"]
    bias = folded + zp_in * w.reshape(8, -1).sum(axis=1)  # undo the zero-point folding

    xi = np.frombuffer(x, dtype=np.int8).astype(np.int64).reshape(32, 32, 3) - zp_in
    xp = np.pad(xi, ((1, 1), (1, 1), (0, 0)))  # padding taps contribute nothing
    acc = np.zeros((32, 32, 8), dtype=np.int64) + bias
    for ky in range(3):
        for kx in range(3):
            acc += np.einsum("hwi,oi->hwo", xp[ky:ky + 32, kx:kx + 32], w[:, ky, kx, :])
    conv = np.clip(_mbqm(acc, mult, shift) + zp_conv, zp_conv, 127)
    pool = conv.reshape(16, 2, 16, 2, 8).max(axis=(1, 3))
    out = np.clip(_mbqm(pool - zp_conv, d["TINY_RQ_MULTIPLIER"], d["TINY_RQ_SHIFT"]) + zp_out,
                  -128, 127)
    return out.astype(np.int8).tobytes(), pool.astype(np.int8).tobytes()


def random_input(seed: int) -> bytes:
    return np.random.default_rng(seed).integers(-128, 128, 3072, dtype=np.int8).tobytes()


# ---- a raw link for hand-made frames -------------------------------------------------------

class RawLink:
    def __init__(self, port) -> None:
        self.port = port
        self.dec = P.FrameDecoder()
        self.seen: deque[P.Response] = deque()
        self.bad_frames = 0

    def send(self, payload: bytes) -> None:
        self.port.write(P.encode_frame(payload))

    def send_raw(self, data: bytes) -> None:
        self.port.write(data)

    def _pump(self) -> None:
        data = self.port.read(max(1, self.port.in_waiting))
        for item in self.dec.feed(data):
            if isinstance(item, P.FrameError):
                self.bad_frames += 1
            else:
                self.seen.append(P.parse_response(item))

    def expect(self, seq: int, timeout: float = 5.0) -> P.Response:
        """The answer with this seq; other frames stay in `seen`."""
        deadline = time.monotonic() + timeout
        while True:
            for r in self.seen:
                if r.header.seq == seq:
                    self.seen.remove(r)
                    return r
            assert time.monotonic() < deadline, f"no answer with seq {seq}"
            self._pump()

    def error(self, seq: int) -> P.DeviceErrorInfo:
        r = self.expect(seq)
        assert isinstance(r.message, P.DeviceErrorInfo), r
        return r.message

    def drain(self) -> list[P.Response]:
        out = list(self.seen)
        self.seen.clear()
        return out


@pytest.fixture(scope="module")
def exe() -> Path:
    return build_host_firmware(FIXTURE, sanitize=True)


@pytest.fixture(scope="module")
def fw(exe: Path):
    with HostFirmware(exe) as f:
        f.start()
        yield f
        assert f.alive(), f.stderr_text()
    assert f.proc is not None and f.proc.returncode == 0, f.stderr_text()
    assert f.stderr_text() == ""


# ---- tests ----------------------------------------------------------------------------------

class _FdPort:
    """The pty read with plain os calls: pyserial flushes input on open, and would drop the
    BOOT frame the firmware sent before anyone listened."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        self.in_waiting = 0

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def read(self, n: int) -> bytes:
        r, _, _ = select.select([self.fd], [], [], 0.05)
        return os.read(self.fd, 4096) if r else b""


def test_boot_frame_then_hello(exe: Path) -> None:
    proc = subprocess.Popen([str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, **SANITIZER_ENV})
    try:
        line = proc.stdout.readline().decode()
        assert line.startswith("SQZ-PTY /")
        port = _FdPort(line.split()[1])
        link = RawLink(port)
        boot = link.expect(P.SEQ_NONE)
        assert boot.header.type == P.Resp.BOOT and boot.header.served == 0
        assert boot.message == P.Boot(P.PROTOCOL_VERSION, "sqz-test 0.1.0")
        link.send(P.hello_request(7))
        info = link.expect(7)
        assert info.header.served == 1 and info.header.boot_id == boot.header.boot_id
        os.close(port.fd)
    finally:
        _, err = proc.communicate(timeout=5)  # closes stdin: the firmware exits
    assert proc.returncode == 0 and err == b""


def test_info_fields(fw: HostFirmware) -> None:
    client = DeviceClient(fw.port)
    info = client.hello()
    assert info.protocol_version == 3
    assert info.model_name == "tiny_model" and info.firmware_version == "sqz-test 0.1.0"
    assert info.target_name == "host" and info.counter_unit == "ns"
    assert info.cpu_hz == 1_000_000_000 and info.counter_hz == 1_000_000_000
    assert info.max_payload == 1024 and info.arena_bytes == 13568 and info.arena_ok
    assert info.n_steps == 3 and info.macs == 221184
    import hashlib
    assert info.sha256 == hashlib.sha256(b"sqz tiny_model fixture v1").digest()
    assert info.input == P.TensorInfo((1, 32, 32, 3), 3072, 0x3C000000, 5)
    assert info.input.scale == 1 / 128
    assert info.output == P.TensorInfo((1, 16, 16, 8), 2048, 0x3D8F5C29, 3)
    assert info.logits == P.TensorInfo((1, 16, 16, 8), 2048, 0x3D4CCCCD, -20)
    assert info.uptime > 0
    assert client.read_step_names() == ["conv1", "pool1", "quant_out"]


def test_info_bytes_match_docs_example(exe: Path) -> None:
    """The C firmware's INFO, byte for byte, is the one docs/protocol.md shows (boot id and
    uptime aside)."""
    text = (ROOT / "docs" / "protocol.md").read_text()
    m = re.search(r"INFO answer on the wire:\s*\n+```\n(.*?)```", text, re.S)
    documented = P.decode_frame(bytes.fromhex(re.sub(r"\s+", "", m.group(1)))[1:-1])
    with HostFirmware(exe) as f:
        f.start()
        f.port.write(P.encode_frame(P.hello_request(1)))
        dec = P.FrameDecoder()
        deadline = time.monotonic() + 5
        payload = b""
        while not payload and time.monotonic() < deadline:
            for item in dec.feed(f.port.read(max(1, f.port.in_waiting))):
                if isinstance(item, bytes) and item[1] == P.Resp.INFO:
                    payload = item
    assert payload, "no INFO"
    actual = bytearray(payload)
    uptime = P.RESP_HEADER_BYTES + 156
    actual[8:12] = documented[8:12]
    actual[uptime:uptime + 8] = documented[uptime:uptime + 8]
    assert bytes(actual) == documented


def test_inference_matches_numpy(fw: HostFirmware) -> None:
    client = DeviceClient(fw.port)
    client.hello()
    runs_before = client.info.run_count
    for seed in range(4):
        x = random_input(seed)
        res = client.infer(x, per_layer=seed % 2 == 0)
        want_out, want_logits = reference(x)
        assert res.output == want_out, f"seed {seed}"
        assert res.logits == want_logits, f"seed {seed}"
        assert res.run.run_count == runs_before + seed + 1
        assert res.run.total_count > 0 and res.seconds > 0
        if seed % 2 == 0:
            assert len(res.layer_counts) == 3 and all(c > 0 for c in res.layer_counts)
            assert sum(res.layer_counts) <= res.run.total_count
        else:
            assert res.layer_counts is None
    # Extremes saturate the same way.
    for x in (bytes([0x80]) * 3072, bytes([0x7F]) * 3072, bytes(3072)):
        assert client.infer(x).output == reference(x)[0]


def test_every_bad_request_gets_its_error(fw: HostFirmware) -> None:
    DeviceClient(fw.port).hello()
    fw.port.reset_input_buffer()
    link = RawLink(fw.port)
    W, R, D = P.Cmd.WRITE_INPUT, P.Cmd.RUN, P.Cmd.READ

    def err(payload: bytes, seq: int) -> P.DeviceErrorInfo:
        link.send(payload)
        return link.error(seq)

    def wr(seq: int, offset: int, data: bytes) -> bytes:
        return P.write_input_request(seq, offset, data)

    e = err(P.request(0x42, 1), 1)
    assert (e.code, e.command, e.detail) == (E.UNKNOWN_COMMAND, 0x42, 0x42)
    assert err(P.request(P.Cmd.HELLO, 2, b"x"), 2).code == E.BAD_LENGTH
    e = err(P.request(P.Cmd.HELLO, 3, version=1), 3)
    assert (e.code, e.detail, e.detail2) == (E.UNSUPPORTED_VERSION, P.PROTOCOL_VERSION, 1)
    # BAD_LENGTH counts body bytes in both details: received / longest allowed (4 + 1024).
    e = err(P.request(W, 4, struct.pack("<I", 0)), 4)
    assert (e.code, e.detail, e.detail2) == (E.BAD_LENGTH, 4, 1028)
    e = err(wr(5, 0, bytes(1025)), 5)
    assert (e.code, e.detail, e.detail2) == (E.BAD_LENGTH, 1029, 1028)
    e = err(wr(6, 3000, bytes(100)), 6)
    assert (e.code, e.detail2) == (E.BAD_OFFSET, 3072)
    assert err(wr(7, 0xFFFFFFF0, bytes(100)), 7).code == E.BAD_OFFSET
    # A fresh input, then a gap.
    link.send(wr(8, 0, bytes(1024)))
    ack = link.expect(8).message
    assert ack == P.WriteAck(1024, 3072)
    e = err(wr(9, 2048, bytes(10)), 9)
    assert (e.code, e.detail, e.detail2) == (E.BAD_OFFSET, 1024, 3072)
    assert "gap" in e.message
    e = err(P.run_request(10), 10)
    assert (e.code, e.detail, e.detail2) == (E.INPUT_INCOMPLETE, 1024, 3072)
    assert err(P.run_request(11, 0x80), 11).code == E.BAD_ARGUMENT
    assert err(P.request(R, 12, b"\x00\x00"), 12).code == E.BAD_LENGTH
    assert err(P.read_request(13, 9, 0, 16), 13).code == E.BAD_ARGUMENT
    assert err(P.read_request(14, P.ReadWhat.STEP_NAMES, 0, 1025), 14).code == E.BAD_LENGTH
    assert err(P.request(D, 15, b"\x01\x00"), 15).code == E.BAD_LENGTH
    assert err(P.read_request(16, P.ReadWhat.OUTPUT, 0, 16), 16).code == E.NO_RESULT
    assert err(P.read_request(17, P.ReadWhat.LAYER_COUNTS, 0, 16), 17).code == E.NO_RESULT
    e = err(P.read_request(18, P.ReadWhat.STEP_NAMES, 1000, 16), 18)
    names = b"conv1\0pool1\0quant_out\0"
    assert (e.code, e.detail, e.detail2) == (E.BAD_OFFSET, 1000, len(names))
    # Retrying the same chunk (same seq) is harmless; so is re-sending it with a new seq.
    link.send(wr(19, 1024, bytes(1024)))
    assert link.expect(19).message == P.WriteAck(2048, 3072)
    link.send(wr(19, 1024, bytes(1024)))
    assert link.expect(19).message == P.WriteAck(2048, 3072)
    link.send(wr(8, 0, bytes(1024)))  # the first chunk again, its seq unchanged
    assert link.expect(8).message == P.WriteAck(2048, 3072)

    # Frame-level damage: answered with seq NONE.
    hello = P.hello_request(20)
    bad_crc = struct.pack("<I", P.crc32(hello) ^ 0x100)
    link.send_raw(b"\x00" + P.cobs_encode(hello + bad_crc) + b"\x00")
    e = link.error(P.SEQ_NONE)
    assert e.code == E.BAD_CRC
    link.send_raw(b"\x00" + bytes([0x55]) * 2000 + b"\x00")
    e = link.error(P.SEQ_NONE)
    assert (e.code, e.detail) == (E.FRAME_TOO_LONG, 1024 + P.FRAME_OVERHEAD)
    link.send_raw(b"\x00\x30" + b"\x11" * 12 + b"\x00")  # block claims 47 bytes, has 12
    assert link.error(P.SEQ_NONE).code == E.BAD_FRAME
    link.send_raw(P.encode_frame(b"\x01\x02"))  # valid CRC, shorter than a header
    assert link.error(P.SEQ_NONE).code == E.BAD_LENGTH
    # Short noise is not answered: the next frame is the INFO.
    link.send_raw(b"\x00\x07\x13\x00\x99\x00")
    link.send(P.hello_request(21))
    assert link.expect(21).header.type == P.Resp.INFO
    assert link.drain() == []
    assert fw.alive()


def _info(link: RawLink, seq: int) -> P.Response:
    link.send(P.hello_request(seq))
    r = link.expect(seq)
    assert isinstance(r.message, P.DeviceInfo)
    return r


def test_protocol_v2_rules(fw: HostFirmware) -> None:
    """The five points where version 1 of the firmware and of docs/protocol.md disagreed."""
    DeviceClient(fw.port).hello()
    fw.port.reset_input_buffer()
    link = RawLink(fw.port)
    first = _info(link, 100)
    bad0, served0 = first.message.bad_frames, first.header.served

    # Every non-empty frame is served or counted in bad_frames, too-long ones included.
    link.send_raw(b"\x00" + bytes([0x55]) * 2000 + b"\x00")  # too long
    assert link.error(P.SEQ_NONE).code == E.FRAME_TOO_LONG
    link.send_raw(P.encode_frame(b"\x02\x01"))  # valid CRC, shorter than a header
    assert link.error(P.SEQ_NONE).code == E.BAD_LENGTH
    link.send_raw(b"\x00\x07\x13\x00")  # noise
    # The reserved seq is refused, not served: BAD_SEQ with the request's command.
    link.send(P.hello_request(P.SEQ_NONE))
    e = link.error(P.SEQ_NONE)
    assert (e.code, e.command, e.detail) == (E.BAD_SEQ, P.Cmd.HELLO, P.SEQ_NONE)
    assert "reserved" in e.message
    second = _info(link, 101)
    assert second.message.bad_frames == bad0 + 4
    assert second.header.served == served0 + 1  # only the HELLO

    # filled never decreases within one input; RUN consumes it (filled 0 afterwards).
    x = random_input(7)
    for i, off in enumerate(range(0, 3072, 1024)):
        link.send(P.write_input_request(110 + i, off, x[off:off + 1024]))
        assert link.expect(110 + i).message == P.WriteAck(off + 1024, 3072)
    link.send(P.run_request(113))
    assert link.expect(113).header.type == P.Resp.RESULT
    link.send(P.write_input_request(114, 1024, x[:10]))
    e = link.error(114)
    assert (e.code, e.detail, e.detail2) == (E.BAD_OFFSET, 0, 3072)
    link.send(P.run_request(115))
    e = link.error(115)
    assert (e.code, e.detail, e.detail2) == (E.INPUT_INCOMPLETE, 0, 3072)

    # The documented order when several errors apply.
    cases = [
        (P.request(0x42, P.SEQ_NONE, version=9), E.BAD_SEQ, P.SEQ_NONE),  # seq before version
        (P.request(0x42, 120, version=9), E.UNSUPPORTED_VERSION, 120),  # version before command
        (P.request(P.Cmd.RUN, 121, b"\x80\x00"), E.BAD_LENGTH, 121),  # length before flags
        (P.request(P.Cmd.READ, 122, b"\x09"), E.BAD_LENGTH, 122),  # length before what
        (P.read_request(123, 9, 0, 5000), E.BAD_LENGTH, 123),  # len before what
        (P.read_request(124, P.ReadWhat.LAYER_COUNTS, 10**6, 16), E.NO_RESULT, 124),  # offset
        (P.read_request(126, P.ReadWhat.OUTPUT, 10**6, 16), E.BAD_OFFSET, 126),  # a result
        (P.write_input_request(125, 10**6, b""), E.BAD_LENGTH, 125),  # length before offset
    ]
    for payload, code, seq in cases:
        link.send(payload)
        assert link.error(seq).code == code, (payload, code)
    assert fw.alive()


def _random_request(rng: random.Random, seq: int) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:
        return P.request(rng.randrange(256), seq, rng.randbytes(rng.randrange(20)))
    if kind == 1:
        return P.write_input_request(seq, rng.choice([0, 1024, 2048, 3071, rng.getrandbits(32)]),
                                     rng.randbytes(rng.randrange(1, 1100)))
    if kind == 2:
        return P.read_request(seq, rng.randrange(6), rng.choice([0, 5, 2047, 2**32 - 1]),
                              rng.choice([0, 1, 1024, 1025, 2**32 - 1]))
    if kind == 3:
        return P.run_request(seq, rng.randrange(256))
    if kind == 4:
        return P.request(P.Cmd.HELLO, seq, version=rng.randrange(256))
    return P.request(rng.randrange(1, 5), seq, rng.randbytes(rng.randrange(40)))


def test_survives_thousands_of_bad_frames(fw: HostFirmware) -> None:
    client = DeviceClient(fw.port)
    client.hello()
    x = random_input(99)
    before = client.infer(x).output
    assert before == reference(x)[0]

    fw.port.reset_input_buffer()
    link = RawLink(fw.port)
    rng = random.Random(1234)
    answered = 0
    sent_frames = 0
    for batch in range(250):
        expected: list[int] = []
        for _ in range(12):
            sent_frames += 1
            kind = rng.randrange(5)
            if kind == 0:  # random bytes
                link.send_raw(rng.randbytes(rng.randrange(1, 300)))
            elif kind == 1:  # a truncated frame
                wire = P.encode_frame(_random_request(rng, 1))
                link.send_raw(wire[:rng.randrange(1, len(wire) - 1)])  # some content lost
            elif kind == 2:  # a frame with a flipped bit
                wire = bytearray(P.encode_frame(_random_request(rng, 1)))
                i = rng.randrange(1, len(wire) - 1)
                wire[i] ^= 1 << rng.randrange(8)
                link.send_raw(bytes(wire))
            elif kind == 3:  # oversize
                link.send_raw(b"\x00" + bytes(rng.randrange(1, 256) for _ in range(1200)))
            else:  # well-formed, mostly bad: each that fits must get exactly one answer
                seq = 1 + batch * 16 + len(expected)
                req = _random_request(rng, seq)
                if len(req) + P.CRC_BYTES <= 1024 + P.FRAME_OVERHEAD:
                    expected.append(seq)  # longer ones are FRAME_TOO_LONG, seq unknown
                link.send(req)
        fence = 40000 + batch
        link.send(P.hello_request(fence))
        assert link.expect(fence, timeout=10).header.type == P.Resp.INFO
        for seq in expected:
            link.expect(seq, timeout=1)
            answered += 1
        stray = [r for r in link.drain() if r.header.seq != P.SEQ_NONE]
        assert stray == [], "answers without a request"
        assert fw.alive(), fw.stderr_text()
    assert sent_frames == 3000 and answered > 400

    client = DeviceClient(fw.port)
    client.hello()
    assert client.infer(x).output == before
    assert client.info.bad_frames > 0


def test_stdin_eof_and_sigterm_exit_cleanly(exe: Path) -> None:
    with HostFirmware(exe) as f:
        f.start()
        f.proc.stdin.close()
        assert f.proc.wait(timeout=3) == 0
    with HostFirmware(exe) as f:
        f.start()
        f.proc.send_signal(signal.SIGTERM)
        assert f.proc.wait(timeout=3) == 0
    assert f.stderr_text() == ""


def test_firmware_dies_with_its_parent(exe: Path) -> None:
    """Started by a process that is then SIGKILLed, with stdin not watched."""
    script = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([{str(exe)!r}, '--ignore-stdin'], stdin=subprocess.DEVNULL,"
        " stdout=subprocess.PIPE)\n"
        "p.stdout.readline()\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        child = int(parent.stdout.readline())
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                break
            # a zombie re-parented to init/subreaper still answers kill(0): check its state
            stat = Path(f"/proc/{child}/stat")
            if stat.exists() and stat.read_text().split()[2] == "Z":
                break
            time.sleep(0.05)
        else:
            os.kill(child, signal.SIGKILL)
            pytest.fail("the host firmware outlived its parent")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        parent.stdout.close()


def test_start_host_firmware_always_stops(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        with start_host_firmware(FIXTURE, build_dir=tmp_path) as f:
            proc = f.proc
            raise RuntimeError("boom")
    assert proc.poll() is not None
    # The unchanged firmware is not rebuilt.
    exe = build_host_firmware(FIXTURE, tmp_path)
    mtime = exe.stat().st_mtime_ns
    assert build_host_firmware(FIXTURE, tmp_path).stat().st_mtime_ns == mtime


def _c_files() -> list[Path]:
    return [*runtime_sources(), *sorted(app_dir().glob("*.c")), FIXTURE / "model.c",
            FIXTURE / "model_data.c"]


@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_host_build_warning_free(cc: str, tmp_path: Path) -> None:
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} is not installed")
    inc = [f"-I{p}" for p in [*include_dirs(), FIXTURE, app_dir()]]
    cmd = [cc, *WARN_FLAGS, "-O2", *inc, *map(str, _c_files()), str(host_port_source()),
           "-o", str(tmp_path / "fw")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_app_builds_for_cortex_m4(tmp_path: Path) -> None:
    cc = "arm-none-eabi-gcc"
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} is not installed")
    inc = [f"-I{p}" for p in [*include_dirs(), FIXTURE, app_dir()]]
    for src in _c_files():
        cmd = [cc, *WARN_FLAGS, "-O2", "-mcpu=cortex-m4", "-mthumb", *inc, "-c", str(src),
               "-o", str(tmp_path / (src.stem + ".o"))]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0 and proc.stderr == "", f"{src.name}: {proc.stderr}"


def test_a_late_retry_of_chunk_0_after_the_run_keeps_the_results(fw: HostFirmware) -> None:
    """Issue 25, item 8: chunk 0 re-sent with its seq after the RUN that consumed its input is a
    retry (docs/protocol.md): ACKed again, the results kept, the retried RUN answered from
    memory; a RUN with a new seq finds the input consumed (INPUT_INCOMPLETE, the input kept)."""
    DeviceClient(fw.port).hello()
    fw.port.reset_input_buffer()
    link = RawLink(fw.port)
    x = random_input(11)
    link.send(P.write_input_request(900, 0, x[:1000]))
    assert link.expect(900).header.type == P.Resp.ACK
    link.send(P.write_input_request(901, 1000, x[1000:2000]))
    link.expect(901)
    link.send(P.write_input_request(902, 2000, x[2000:3000]))
    link.expect(902)
    link.send(P.write_input_request(906, 3000, x[3000:]))
    link.expect(906)
    link.send(P.run_request(903))
    first = link.expect(903)
    assert first.header.type == P.Resp.RESULT
    link.send(P.write_input_request(900, 0, x[:1000]))  # the late retry
    ack = link.expect(900).message
    assert (ack.filled, ack.total) == (1000, 3072)
    link.send(P.run_request(903))  # the retried RUN: the same outcome, not run again
    again = link.expect(903)
    assert again.message == first.message
    link.send(P.read_request(904, P.ReadWhat.OUTPUT, 0, 1024))
    assert link.expect(904).header.type == P.Resp.DATA  # the results are still there
    link.send(P.run_request(905))
    e = link.error(905)
    assert (e.code, e.detail, e.detail2) == (E.INPUT_INCOMPLETE, 0, 3072)
