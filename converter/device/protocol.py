"""The host side of the serial protocol (docs/protocol.md): framing, constants and messages.

Mirrors firmware/src/app/protocol.h (tests/test_protocol.py checks that every constant agrees)
and firmware/src/app/frame.c. Nothing here touches a port: `converter.device` does the talking
and `converter.fakedevice` plays the board in unit tests.

Wire format of one frame::

    0x00 | COBS(payload | crc32(payload) as u32 LE) | 0x00

All multi-byte fields are little-endian.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum, IntFlag

PROTOCOL_VERSION = 3
REQ_HEADER_BYTES = 4
RESP_HEADER_BYTES = 12
CRC_BYTES = 4
FRAME_OVERHEAD = 32
SEQ_NONE = 0xFFFF
MIN_REPORTED_RAW = 9
MAX_STRING = 63

WRITE_HEADER_BYTES = 4
RUN_BYTES = 1
BEGIN_BYTES = 8
READ_BYTES = 12
INFO_FIXED_BYTES = 184
TENSOR_BYTES = 28
ACK_BYTES = 8
RESULT_BYTES = 20
DATA_HEADER_BYTES = 12
ERROR_FIXED_BYTES = 13


class Cmd(IntEnum):
    """Request commands (SQZ_PROTO_CMD_*)."""

    HELLO = 1
    WRITE_INPUT = 2
    RUN = 3
    READ = 4
    BEGIN = 5


class Resp(IntEnum):
    """Response types (SQZ_PROTO_RESP_*)."""

    INFO = 129
    ACK = 130
    RESULT = 131
    DATA = 132
    BOOT = 176
    ERROR = 238


class ReadWhat(IntEnum):
    """READ targets (SQZ_PROTO_READ_*)."""

    OUTPUT = 1
    LOGITS = 2
    LAYER_COUNTS = 3
    STEP_NAMES = 4


class RunFlag(IntFlag):
    """RUN flags (SQZ_PROTO_RUNF_*)."""

    LAYER_COUNTS = 1


class BeginFlag(IntFlag):
    """BEGIN flags (SQZ_PROTO_RUNF_LAYER_COUNTS and SQZ_PROTO_BEGINF_*)."""

    LAYER_COUNTS = 1
    FRAME = 2


class InputMode(IntEnum):
    """How the device takes its input (SQZ_PROTO_INPUT_*)."""

    WHOLE = 0
    RING = 1
    CAMERA = 2


class InfoFlag(IntFlag):
    """INFO flags (SQZ_PROTO_INFOF_*)."""

    ARENA_OK = 1
    HAS_LOGITS = 2


class ErrorCode(IntEnum):
    """Error codes of ERROR frames (SQZ_PROTO_ERR_*)."""

    BAD_CRC = 1
    BAD_FRAME = 2
    FRAME_TOO_LONG = 3
    BAD_LENGTH = 4
    UNSUPPORTED_VERSION = 5
    UNKNOWN_COMMAND = 6
    BAD_OFFSET = 7
    INPUT_INCOMPLETE = 8
    RUN_FAILED = 9
    NO_RESULT = 10
    BAD_ARGUMENT = 11
    NO_ARENA = 12
    BAD_SEQ = 13


# Errors about a frame the device could not read: the request never arrived, so it is safe and
# useful to send it again at once.
FRAME_ERRORS = frozenset({ErrorCode.BAD_CRC, ErrorCode.BAD_FRAME, ErrorCode.FRAME_TOO_LONG})

# sqz_status names (firmware/include/sqz/status.h), for messages.
STATUS_NAMES = {0: "ok", 1: "bad argument", 2: "shape mismatch", 3: "scratch buffer too small",
                4: "unsupported parameters", 5: "unknown op in schedule",
                6: "waiting for input rows"}


# ---- framing -------------------------------------------------------------------------------

def crc32(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def cobs_encode(data: bytes) -> bytes:
    """COBS without the delimiter. A run of 254 non-zero bytes ends its block (code 0xFF)."""
    out = bytearray()
    block = bytearray()
    for b in data:
        if b == 0:
            out.append(len(block) + 1)
            out += block
            block.clear()
        else:
            block.append(b)
            if len(block) == 254:
                out.append(0xFF)
                out += block
                block.clear()
    out.append(len(block) + 1)
    out += block
    return bytes(out)


class FrameError(ValueError):
    """A frame that cannot be decoded; `kind` is 'cobs', 'short', 'crc' or 'long'."""

    def __init__(self, kind: str, message: str, raw: int = 0) -> None:
        super().__init__(message)
        self.kind = kind
        self.raw = raw  # encoded length of the bad frame


def cobs_decode(data: bytes) -> bytes:
    """Inverse of cobs_encode (accepts both encodings of a final full block)."""
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        code = data[i]
        if code == 0:
            raise FrameError("cobs", "zero byte inside a COBS frame")
        end = i + code
        if end > n:
            raise FrameError("cobs", f"COBS block of {code - 1} bytes cut short at byte {n}")
        block = data[i + 1:end]
        if 0 in block:
            raise FrameError("cobs", "zero byte inside a COBS block")
        out += block
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


def encode_frame(payload: bytes) -> bytes:
    """A payload as it goes on the wire, with the CRC and both delimiters."""
    body = payload + struct.pack("<I", crc32(payload))
    return b"\x00" + cobs_encode(body) + b"\x00"


def decode_frame(raw: bytes) -> bytes:
    """The payload of one encoded frame (delimiters stripped); raises FrameError."""
    data = cobs_decode(raw)
    if len(data) < CRC_BYTES:
        raise FrameError("short", f"frame of {len(data)} bytes has no room for its CRC")
    payload, crc = data[:-CRC_BYTES], struct.unpack("<I", data[-CRC_BYTES:])[0]
    if crc32(payload) != crc:
        raise FrameError("crc", f"CRC mismatch in a {len(payload)}-byte frame")
    return payload


class FrameDecoder:
    """Incremental: feed() bytes as they arrive, get complete payloads or FrameErrors back.

    Bytes before the first delimiter and between frames are dropped as they end up in frames
    that fail their CRC; frames longer than `max_frame` encoded bytes are skipped whole.
    """

    def __init__(self, max_frame: int = 1 << 17) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._overflow = False

    def feed(self, data: bytes) -> Iterator[bytes | FrameError]:
        start = 0
        while True:
            z = data.find(0, start)
            chunk = data[start:] if z < 0 else data[start:z]
            if not self._overflow:
                self._buf += chunk
                if len(self._buf) > self.max_frame:
                    self._overflow = True
                    self._buf.clear()
            if z < 0:
                return
            start = z + 1
            if self._overflow:
                self._overflow = False
                yield FrameError("long", f"frame longer than {self.max_frame} bytes dropped",
                                 self.max_frame + 1)
            elif self._buf:
                raw = bytes(self._buf)
                self._buf.clear()
                try:
                    yield decode_frame(raw)
                except FrameError as e:
                    e.raw = len(raw)
                    yield e

    def reset(self) -> None:
        self._buf.clear()
        self._overflow = False


# ---- requests ------------------------------------------------------------------------------

def request(cmd: int, seq: int, body: bytes = b"", version: int = PROTOCOL_VERSION) -> bytes:
    """A request payload (not yet framed)."""
    return struct.pack("<BBH", version, cmd, seq) + body


def hello_request(seq: int) -> bytes:
    return request(Cmd.HELLO, seq)


def write_input_request(seq: int, offset: int, data: bytes) -> bytes:
    return request(Cmd.WRITE_INPUT, seq, struct.pack("<I", offset) + data)


def begin_request(seq: int, flags: int = 0, frame_format: int = 0, width: int = 0,
                  height: int = 0) -> bytes:
    """BEGIN: a new input; with FRAME, the frame's format code and size, which the device
    checks against its own."""
    return request(Cmd.BEGIN, seq, struct.pack("<BB2xHH", flags, frame_format, width, height))


def run_request(seq: int, flags: int = 0) -> bytes:
    return request(Cmd.RUN, seq, struct.pack("<B", flags))


def read_request(seq: int, what: int, offset: int, length: int) -> bytes:
    return request(Cmd.READ, seq, struct.pack("<B3xII", what, offset, length))


@dataclass(frozen=True)
class Request:
    version: int
    cmd: int
    seq: int
    body: bytes


def parse_request(payload: bytes) -> Request:
    if len(payload) < REQ_HEADER_BYTES:
        raise ValueError(f"request of {len(payload)} bytes is shorter than its header")
    version, cmd, seq = struct.unpack_from("<BBH", payload)
    return Request(version, cmd, seq, payload[REQ_HEADER_BYTES:])


# ---- responses -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ResponseHeader:
    version: int
    type: int
    seq: int
    served: int   # well-formed requests the device handled since it booted
    boot_id: int  # changes on every boot (with high probability; see docs/protocol.md)


@dataclass(frozen=True)
class TensorInfo:
    dims: tuple[int, int, int, int]  # n, h, w, c
    bytes: int
    scale_bits: int
    zero_point: int

    @property
    def scale(self) -> float:
        return struct.unpack("<f", struct.pack("<I", self.scale_bits))[0]


@dataclass(frozen=True)
class DeviceInfo:
    protocol_version: int
    flags: int
    n_steps: int
    arena_bytes: int
    macs: int
    sha256: bytes
    input: TensorInfo
    output: TensorInfo
    logits: TensorInfo | None
    cpu_hz: int
    counter_hz: int
    max_payload: int
    run_count: int
    uptime: int  # counter ticks since boot
    bad_frames: int
    firmware_version: str
    model_name: str
    target_name: str
    counter_unit: str
    input_mode: int = InputMode.WHOLE
    frame_format: int = 0  # camera format code (converter.ir.camera), 0: none
    frame_width: int = 0
    frame_height: int = 0
    frame_bytes: int = 0
    input_slots: int = 0  # rows of the input's ring (0: stored whole)

    @property
    def arena_ok(self) -> bool:
        return bool(self.flags & InfoFlag.ARENA_OK)


@dataclass(frozen=True)
class WriteAck:
    filled: int
    total: int


@dataclass(frozen=True)
class RunResult:
    status: int
    failed_step: int
    total_count: int  # counter ticks the inference took (SQZ_COUNTER_UNIT)
    run_count: int    # inferences the device ran since boot, this one included
    flags: int
    n_steps: int

    @property
    def per_layer(self) -> bool:
        return bool(self.flags & RunFlag.LAYER_COUNTS)


@dataclass(frozen=True)
class DataChunk:
    what: int
    offset: int
    total: int
    data: bytes


@dataclass(frozen=True)
class DeviceErrorInfo:
    code: int
    command: int
    detail: int
    detail2: int
    message: str

    @property
    def code_name(self) -> str:
        try:
            return ErrorCode(self.code).name
        except ValueError:
            return f"ERROR_{self.code}"

    def describe(self) -> str:
        return (f"{self.code_name} ({self.code}): {self.message or 'no message'} "
                f"[detail {self.detail}, {self.detail2}]")


@dataclass(frozen=True)
class Boot:
    protocol_version: int
    firmware_version: str


Message = DeviceInfo | WriteAck | RunResult | DataChunk | DeviceErrorInfo | Boot | bytes


@dataclass(frozen=True)
class Response:
    header: ResponseHeader
    message: Message  # the raw body (bytes) for a type this client does not know


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ValueError(f"message ends at byte {len(self.data)}, needs {self.pos + size}")
        v = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return v

    def bytes(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError(f"message ends at byte {len(self.data)}, needs {self.pos + n}")
        v = self.data[self.pos:self.pos + n]
        self.pos += n
        return v

    def string(self) -> str:
        (n,) = self.take("<B")
        return self.bytes(n).decode("utf-8", "replace")


def _tensor(r: _Reader) -> TensorInfo:
    n, h, w, c, nbytes, scale_bits, zp = r.take("<iiiiIIi")
    return TensorInfo((n, h, w, c), nbytes, scale_bits, zp)


def parse_info(body: bytes) -> DeviceInfo:
    r = _Reader(body)
    version, flags, n_steps, arena, macs = r.take("<BBHIQ")
    sha = r.bytes(32)
    t_in, t_out, t_logits = _tensor(r), _tensor(r), _tensor(r)
    cpu_hz, counter_hz, max_payload, run_count, uptime, bad = r.take("<QQIIQI")
    mode, fmt, fw_, fh, frame_bytes, slots = r.take("<BBHH2xII")
    fw, name, target, unit = r.string(), r.string(), r.string(), r.string()
    return DeviceInfo(version, flags, n_steps, arena, macs, sha, t_in, t_out,
                      t_logits if flags & InfoFlag.HAS_LOGITS else None, cpu_hz, counter_hz,
                      max_payload, run_count, uptime, bad, fw, name, target, unit,
                      mode, fmt, fw_, fh, frame_bytes, slots)


def parse_error(body: bytes) -> DeviceErrorInfo:
    r = _Reader(body)
    code, command, detail, detail2 = r.take("<HBxII")
    return DeviceErrorInfo(code, command, detail, detail2, r.string())


def parse_response(payload: bytes) -> Response:
    """Decodes a response payload; raises ValueError when it is malformed."""
    if len(payload) < RESP_HEADER_BYTES:
        raise ValueError(f"response of {len(payload)} bytes is shorter than its header")
    header = ResponseHeader(*struct.unpack_from("<BBHII", payload))
    body = payload[RESP_HEADER_BYTES:]
    t = header.type
    msg: Message
    if header.version != PROTOCOL_VERSION and t != Resp.ERROR:
        msg = body  # another version's layout: only the header (and ERROR) are stable
    elif t == Resp.INFO:
        msg = parse_info(body)
    elif t == Resp.ACK:
        msg = WriteAck(*_Reader(body).take("<II"))
    elif t == Resp.RESULT:
        msg = RunResult(*_Reader(body).take("<HHQIBxH"))
    elif t == Resp.DATA:
        r = _Reader(body)
        what, offset, total = r.take("<B3xII")
        msg = DataChunk(what, offset, total, body[DATA_HEADER_BYTES:])
    elif t == Resp.ERROR:
        msg = parse_error(body)
    elif t == Resp.BOOT:
        r = _Reader(body)
        (version,) = r.take("<B")
        msg = Boot(version, r.string())
    else:
        msg = body
    return Response(header, msg)


# ---- device side (used by converter.fakedevice and tests) ------------------------------------

def response(rtype: int, seq: int, served: int, boot_id: int, body: bytes = b"") -> bytes:
    return struct.pack("<BBHII", PROTOCOL_VERSION, rtype, seq, served, boot_id) + body


def _string(s: str) -> bytes:
    b = s.encode("utf-8")[:MAX_STRING]
    return bytes([len(b)]) + b


def _tensor_bytes(t: TensorInfo | None) -> bytes:
    if t is None:
        return bytes(TENSOR_BYTES)
    return struct.pack("<iiiiIIi", *t.dims, t.bytes, t.scale_bits, t.zero_point)


def info_body(info: DeviceInfo) -> bytes:
    return (struct.pack("<BBHIQ", info.protocol_version, info.flags, info.n_steps,
                        info.arena_bytes, info.macs) + info.sha256
            + _tensor_bytes(info.input) + _tensor_bytes(info.output)
            + _tensor_bytes(info.logits)
            + struct.pack("<QQIIQI", info.cpu_hz, info.counter_hz, info.max_payload,
                          info.run_count, info.uptime, info.bad_frames)
            + struct.pack("<BBHH2xII", info.input_mode, info.frame_format, info.frame_width,
                          info.frame_height, info.frame_bytes, info.input_slots)
            + _string(info.firmware_version) + _string(info.model_name)
            + _string(info.target_name) + _string(info.counter_unit))


def ack_body(filled: int, total: int) -> bytes:
    return struct.pack("<II", filled, total)


def result_body(r: RunResult) -> bytes:
    return struct.pack("<HHQIBxH", r.status, r.failed_step, r.total_count, r.run_count,
                       r.flags, r.n_steps)


def data_body(what: int, offset: int, total: int, data: bytes) -> bytes:
    return struct.pack("<B3xII", what, offset, total) + data


def error_body(code: int, command: int = 0, detail: int = 0, detail2: int = 0,
               message: str = "") -> bytes:
    return struct.pack("<HBxII", code, command, detail, detail2) + _string(message)


def boot_body(firmware_version: str) -> bytes:
    return struct.pack("<B", PROTOCOL_VERSION) + _string(firmware_version)
