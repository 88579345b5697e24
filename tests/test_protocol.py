"""Framing and message encoding of the serial protocol (converter/device/protocol.py), and
agreement of its constants with firmware/src/app/protocol.h and of its worked example with the
docs."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from converter.device import protocol as P

ROOT = Path(__file__).resolve().parents[1]
PROTOCOL_H = ROOT / "firmware" / "src" / "app" / "protocol.h"
PROTOCOL_MD = ROOT / "docs" / "protocol.md"


# ---- constants agree with the C header ----

def c_defines() -> dict[str, int]:
    text = PROTOCOL_H.read_text()
    out = {}
    for name, value in re.findall(r"^#define\s+SQZ_PROTO_(\w+)\s+(\S+)", text, re.M):
        out[name] = int(value, 0)
    return out


def python_constants() -> dict[str, int]:
    out = {
        "VERSION": P.PROTOCOL_VERSION,
        "REQ_HEADER_BYTES": P.REQ_HEADER_BYTES,
        "RESP_HEADER_BYTES": P.RESP_HEADER_BYTES,
        "CRC_BYTES": P.CRC_BYTES,
        "FRAME_OVERHEAD": P.FRAME_OVERHEAD,
        "SEQ_NONE": P.SEQ_NONE,
        "MIN_REPORTED_RAW": P.MIN_REPORTED_RAW,
        "MAX_STRING": P.MAX_STRING,
        "WRITE_HEADER_BYTES": P.WRITE_HEADER_BYTES,
        "RUN_BYTES": P.RUN_BYTES,
        "BEGIN_BYTES": P.BEGIN_BYTES,
        "READ_BYTES": P.READ_BYTES,
        "INFO_FIXED_BYTES": P.INFO_FIXED_BYTES,
        "TENSOR_BYTES": P.TENSOR_BYTES,
        "ACK_BYTES": P.ACK_BYTES,
        "RESULT_BYTES": P.RESULT_BYTES,
        "DATA_HEADER_BYTES": P.DATA_HEADER_BYTES,
        "ERROR_FIXED_BYTES": P.ERROR_FIXED_BYTES,
    }
    for prefix, enum in (("CMD", P.Cmd), ("RESP", P.Resp), ("READ", P.ReadWhat),
                         ("RUNF", P.RunFlag), ("INFOF", P.InfoFlag), ("ERR", P.ErrorCode),
                         ("BEGINF", P.BeginFlag), ("INPUT", P.InputMode)):
        for member in enum:
            out[f"{prefix}_{member.name}"] = int(member)
    return out


def test_constants_match_c_header() -> None:
    c, py = c_defines(), python_constants()
    assert "VERSION" in c and c["VERSION"] == 3
    missing_in_py = sorted(set(c) - set(py))
    missing_in_c = sorted(set(py) - set(c))
    assert not missing_in_py, f"protocol.h defines these, protocol.py lacks them: {missing_in_py}"
    assert not missing_in_c, f"protocol.py has these, protocol.h lacks them: {missing_in_c}"
    diff = {k: (c[k], py[k]) for k in c if c[k] != py[k]}
    assert not diff, f"C vs Python values differ: {diff}"


def test_struct_sizes_match_constants() -> None:
    info = P.DeviceInfo(1, 3, 2, 100, 5, bytes(32), P.TensorInfo((1, 2, 3, 4), 24, 7, -1),
                        P.TensorInfo((1, 1, 1, 10), 10, 8, 3), None, 1, 2, 256, 0, 0, 0,
                        "", "", "", "")
    assert len(P.info_body(info)) == P.INFO_FIXED_BYTES + 4
    assert len(P.ack_body(1, 2)) == P.ACK_BYTES
    assert len(P.result_body(P.RunResult(0, 0, 1, 1, 0, 3))) == P.RESULT_BYTES
    assert len(P.data_body(1, 0, 0, b"")) == P.DATA_HEADER_BYTES
    assert len(P.error_body(1)) == P.ERROR_FIXED_BYTES
    assert len(P.read_request(1, 1, 0, 0)) == P.REQ_HEADER_BYTES + P.READ_BYTES
    assert len(P.response(P.Resp.ACK, 1, 1, 1)) == P.RESP_HEADER_BYTES


# ---- framing ----

def test_cobs_known_vectors() -> None:
    assert P.cobs_encode(b"") == b"\x01"
    assert P.cobs_encode(b"\x00") == b"\x01\x01"
    assert P.cobs_encode(b"\x11\x22\x00\x33") == b"\x03\x11\x22\x02\x33"
    assert P.cobs_encode(b"\x11\x00\x00\x00") == b"\x02\x11\x01\x01\x01"
    run = bytes(range(1, 255))  # 254 non-zero bytes: one full block
    assert P.cobs_encode(run) == b"\xff" + run + b"\x01"
    assert P.cobs_decode(b"\xff" + run) == run  # the shorter encoding is accepted too
    assert P.cobs_decode(b"\xff" + run + b"\x01") == run


@given(st.binary(max_size=2000))
@settings(max_examples=300, deadline=None)
def test_frame_round_trip(payload: bytes) -> None:
    wire = P.encode_frame(payload)
    assert wire[0] == 0 and wire[-1] == 0 and 0 not in wire[1:-1]
    assert len(wire) <= len(payload) + 4 + (len(payload) + 4) // 254 + 3
    assert P.decode_frame(wire[1:-1]) == payload
    crc = struct.unpack("<I", P.cobs_decode(wire[1:-1])[-4:])[0]
    assert crc == zlib.crc32(payload)


@given(st.lists(st.binary(max_size=600), max_size=8), st.data())
@settings(max_examples=200, deadline=None)
def test_decoder_any_split(payloads: list[bytes], data) -> None:
    stream = b"".join(P.encode_frame(p) for p in payloads)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    dec = P.FrameDecoder()
    got = []
    prev = 0
    for c in [*cuts, len(stream)]:
        got += list(dec.feed(stream[prev:c]))
        prev = c
    assert got == payloads


def test_corrupted_crc_is_reported() -> None:
    wire = bytearray(P.encode_frame(b"hello world"))
    wire[3] ^= 0x10
    items = list(P.FrameDecoder().feed(bytes(wire)))
    assert len(items) == 1 and isinstance(items[0], P.FrameError)
    assert items[0].kind == "crc"
    assert items[0].raw == len(wire) - 2


def test_truncated_block_is_reported() -> None:
    wire = P.encode_frame(b"abcdef")
    items = list(P.FrameDecoder().feed(wire[:-3] + b"\x00"))
    assert len(items) == 1 and items[0].kind in ("cobs", "crc")


@given(st.binary(max_size=300), st.binary(min_size=1, max_size=200))
@settings(max_examples=200, deadline=None)
def test_resync_after_garbage(garbage: bytes, payload: bytes) -> None:
    dec = P.FrameDecoder()
    items = list(dec.feed(garbage)) + list(dec.feed(P.encode_frame(payload)))
    good = [i for i in items if not isinstance(i, P.FrameError)]
    # Garbage may decode to a valid frame only if it happens to carry a valid CRC; the real
    # frame is always the last item.
    assert good and good[-1] == payload


def test_overlong_frame_dropped_then_next_frame_ok() -> None:
    dec = P.FrameDecoder(max_frame=64)
    items = list(dec.feed(P.encode_frame(bytes(range(1, 200))) + P.encode_frame(b"ok")))
    assert isinstance(items[0], P.FrameError) and items[0].kind == "long"
    assert items[1] == b"ok"


# ---- messages ----

def test_info_round_trip() -> None:
    info = P.DeviceInfo(1, int(P.InfoFlag.ARENA_OK | P.InfoFlag.HAS_LOGITS), 26, 123456,
                        349_000_000, bytes(range(32)),
                        P.TensorInfo((1, 224, 224, 3), 150528, 0x3C010204, -1),
                        P.TensorInfo((1, 1, 1, 1000), 1000, 0x3B800000, -128),
                        P.TensorInfo((1, 1, 1, 1000), 1000, 0x3E000000, 12),
                        240_000_000, 240_000_000, 4096, 7, 99, 1, "sqz 0.1.0",
                        "squeezenet1_1", "esp32s3", "cycles")
    resp = P.parse_response(P.response(P.Resp.INFO, 9, 3, 0xDEADBEEF, P.info_body(info)))
    assert resp.header == P.ResponseHeader(P.PROTOCOL_VERSION, P.Resp.INFO, 9, 3, 0xDEADBEEF)
    assert resp.message == info
    assert info.input.scale == struct.unpack("<f", struct.pack("<I", 0x3C010204))[0]


def test_other_messages_round_trip() -> None:
    def body(rtype, b):
        return P.parse_response(P.response(rtype, 1, 2, 3, b)).message

    assert body(P.Resp.ACK, P.ack_body(10, 20)) == P.WriteAck(10, 20)
    rr = P.RunResult(0, 0, 2**40 + 5, 3, 1, 26)
    assert body(P.Resp.RESULT, P.result_body(rr)) == rr
    assert body(P.Resp.DATA, P.data_body(2, 8, 100, b"xyz")) == P.DataChunk(2, 8, 100, b"xyz")
    err = body(P.Resp.ERROR, P.error_body(7, 2, 5, 6, "gap"))
    assert err == P.DeviceErrorInfo(7, 2, 5, 6, "gap") and err.code_name == "BAD_OFFSET"
    assert body(P.Resp.BOOT, P.boot_body("fw 1")) == P.Boot(P.PROTOCOL_VERSION, "fw 1")
    assert body(0x99, b"future") == b"future"
    other = P.PROTOCOL_VERSION + 1
    v2 = P.parse_response(bytes([other]) + P.response(P.Resp.INFO, 1, 2, 3, b"new layout")[1:])
    assert v2.header.version == other and v2.message == b"new layout"
    with pytest.raises(ValueError):
        P.parse_response(P.response(P.Resp.ACK, 1, 2, 3, b"\x01"))


def test_strings_are_cut_to_max() -> None:
    e = P.parse_error(P.error_body(1, message="x" * 200))
    assert e.message == "x" * P.MAX_STRING


# ---- the worked example in docs/protocol.md decodes as it says ----

def _hex_block(text: str, label: str) -> bytes:
    m = re.search(rf"{label}:\s*\n+```\n(.*?)```", text, re.S)
    assert m, f"docs/protocol.md has no '{label}:' hex block"
    return bytes.fromhex(re.sub(r"\s+", "", m.group(1)))


def test_docs_worked_example() -> None:
    text = PROTOCOL_MD.read_text()
    req = _hex_block(text, "HELLO request on the wire")
    assert req == P.encode_frame(P.hello_request(1))
    info_wire = _hex_block(text, "INFO answer on the wire")
    assert info_wire[0] == 0 and info_wire[-1] == 0
    resp = P.parse_response(P.decode_frame(info_wire[1:-1]))
    assert resp.header.seq == 1 and resp.header.type == P.Resp.INFO
    assert isinstance(resp.message, P.DeviceInfo)
    assert resp.message.model_name == "tiny_model"
    assert resp.message.input.dims == (1, 32, 32, 3)
