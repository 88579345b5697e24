"""A board in Python: the device side of the protocol, for fast tests of the client.

`FakeDevice` follows the same rules as firmware/src/app/app.c (docs/protocol.md) around a
trivial model whose output is a deterministic function of the input, and has knobs to make
the link misbehave. `FakeSerial` is the host's end of the link, a pyserial look-alike; the
device answers synchronously inside `write()`, so tests need no threads.

    dev = FakeDevice(max_payload=64)
    port = FakeSerial(dev)
    dev.drop_responses = 1          # the next answer is lost
"""

from __future__ import annotations

import hashlib
import struct
import time
from dataclasses import dataclass, field

from . import protocol as P


@dataclass
class FakeModel:
    """output[k] = (7 * sum(x[j] for j = k mod n_out) + k) mod 256, as int8 bytes;
    logits[k] = x[k] xor 0x5A."""

    name: str = "fake_model"
    sha256: bytes = hashlib.sha256(b"sqz fake model").digest()
    input_dims: tuple[int, int, int, int] = (1, 16, 16, 3)
    output_dims: tuple[int, int, int, int] = (1, 1, 1, 10)
    step_names: list[str] = field(default_factory=lambda: ["conv1", "fire2/squeeze", "pool"])
    macs: int = 123456
    has_logits: bool = True

    @property
    def input_bytes(self) -> int:
        n, h, w, c = self.input_dims
        return n * h * w * c

    @property
    def output_bytes(self) -> int:
        n, h, w, c = self.output_dims
        return n * h * w * c

    def output(self, x: bytes) -> bytes:
        n = self.output_bytes
        return bytes((7 * sum(x[k::n]) + k) & 0xFF for k in range(n))

    def logits(self, x: bytes) -> bytes:
        return bytes(b ^ 0x5A for b in x[:self.output_bytes])

    def layer_counts(self, run_number: int) -> list[int]:
        return [1000 * (i + 1) + run_number for i in range(len(self.step_names))]


class FakeDevice:
    """The device end. Knobs (plain attributes, change them any time):

    silent             never answer (the port goes quiet); requests are still counted
    drop_responses     lose the next N answers
    corrupt_responses  flip a byte in the next N answers
    corrupt_requests   the next N request frames arrive damaged (the device reports BAD_CRC)
    reset_on_run       reboot instead of answering the RUN with this 1-based number
    send_boot_on_reset announce that reboot with a BOOT frame (False: a silent reset)
    noise              bytes sent before every answer (like a board's log output)
    boot_id_repeats    keep the same boot id across reboots (as a board without entropy may)
    run_status         a non-zero sqz_status makes every RUN fail at step 1
    arena_ok           False: the port gave no arena (WRITE_INPUT and RUN get NO_ARENA)
    protocol_version   the version the device speaks
    """

    def __init__(self, model: FakeModel | None = None, *, max_payload: int = 256,
                 sha256: bytes | None = None, counter_hz: int = 240_000_000,
                 firmware_version: str = "sqz-fake 1.0", target_name: str = "fake") -> None:
        self.model = model or FakeModel()
        self.sha256 = sha256 if sha256 is not None else self.model.sha256
        self.max_payload = max_payload
        self.counter_hz = counter_hz
        self.firmware_version = firmware_version
        self.target_name = target_name
        self.protocol_version = P.PROTOCOL_VERSION
        self.silent = False
        self.drop_responses = 0
        self.corrupt_responses = 0
        self.corrupt_requests = 0
        self.reset_on_run: int | None = None
        self.send_boot_on_reset = True
        self.noise = b""
        self.boot_id_repeats = False
        self.run_status = 0
        self.arena_ok = True
        self.outbox = bytearray()
        self.requests: list[P.Request] = []  # every well-formed request, retries included
        self.boots = 0
        self.runs_received = 0               # RUN requests, replays and resets included
        self._decoder = P.FrameDecoder(max_frame=2 * (max_payload + P.FRAME_OVERHEAD) + 16)
        self._boot()

    # ---- state ----

    def _boot(self) -> None:
        self.boots += 1
        if self.boots == 1 or not self.boot_id_repeats:
            self.boot_id = (0x1000 * self.boots + 0xB007) & 0xFFFFFFFF
        self.served = 0
        self.bad_frames = 0
        self.run_count = 0
        self.input = bytearray(self.model.input_bytes)
        self.input_started = False
        self.begun = False
        self.consumed_seq: int | None = None
        self.input_filled = 0
        self.input_seq = -1
        self.result: tuple[bytes, bytes] | None = None
        self.counts: list[int] | None = None
        self.run_cache: tuple[int, bytes] | None = None  # (seq, answer payload)
        self._decoder.reset()
        self._send(P.response(P.Resp.BOOT, P.SEQ_NONE, 0, self.boot_id,
                              P.boot_body(self.firmware_version)))

    def reboot(self) -> None:
        """A reset: all state lost, a BOOT frame (if send_boot_on_reset)."""
        if self.send_boot_on_reset:
            self._boot()
        else:
            silent, self.silent = self.silent, True
            self._boot()
            self.silent = silent

    @property
    def info(self) -> P.DeviceInfo:
        m = self.model
        def t(dims, nbytes, zp):
            return P.TensorInfo(dims, nbytes, 0x3C000000, zp)
        flags = ((P.InfoFlag.ARENA_OK if self.arena_ok else 0)
                 | (P.InfoFlag.HAS_LOGITS if m.has_logits else 0))
        return P.DeviceInfo(
            self.protocol_version, int(flags), len(m.step_names), 65536, m.macs, self.sha256,
            t(m.input_dims, m.input_bytes, -1), t(m.output_dims, m.output_bytes, -128),
            t(m.output_dims, m.output_bytes, 3) if m.has_logits else None, 240_000_000,
            self.counter_hz, self.max_payload, self.run_count, 12345, self.bad_frames,
            self.firmware_version, m.name, self.target_name, "cycles")

    # ---- wire ----

    def _send(self, payload: bytes) -> None:
        if self.silent:
            return
        if self.drop_responses > 0:
            self.drop_responses -= 1
            return
        frame = bytearray(P.encode_frame(payload))
        if self.corrupt_responses > 0:
            self.corrupt_responses -= 1
            i = len(frame) // 2
            frame[i] = (frame[i] ^ 0x41) or (frame[i] ^ 0x42)  # never a 0x00 delimiter
        self.outbox += self.noise + frame

    def _reply(self, rtype: int, seq: int, body: bytes = b"") -> bytes:
        payload = P.response(rtype, seq, self.served, self.boot_id, body)
        self._send(payload)
        return payload

    def _error(self, seq: int, cmd: int, code: int, detail: int = 0, detail2: int = 0,
               message: str = "") -> bytes:
        return self._reply(P.Resp.ERROR, seq, P.error_body(code, cmd, detail, detail2, message))

    def receive(self, data: bytes) -> None:
        """Bytes from the host."""
        for item in self._decoder.feed(bytes(data)):
            if isinstance(item, P.FrameError):
                self._bad_frame(item.kind, item.raw)
            elif self.corrupt_requests > 0:
                self.corrupt_requests -= 1
                self._bad_frame("crc", P.MIN_REPORTED_RAW)
            else:
                self._handle(item)

    def _bad_frame(self, kind: str, raw: int) -> None:
        self.bad_frames += 1
        if kind != "long" and raw < P.MIN_REPORTED_RAW:
            return
        code = {"crc": P.ErrorCode.BAD_CRC, "long": P.ErrorCode.FRAME_TOO_LONG}.get(
            kind, P.ErrorCode.BAD_FRAME)
        self._error(P.SEQ_NONE, 0, code, raw, 0, "bad frame")

    # ---- requests ----

    def _handle(self, payload: bytes) -> None:
        # The checks in the order of docs/protocol.md, "When several errors apply".
        if len(payload) < P.REQ_HEADER_BYTES:
            self.bad_frames += 1
            self._error(P.SEQ_NONE, 0, P.ErrorCode.BAD_LENGTH, len(payload), 4, "short")
            return
        req = P.parse_request(payload)
        if req.seq == P.SEQ_NONE:
            self.bad_frames += 1
            self._error(P.SEQ_NONE, req.cmd, P.ErrorCode.BAD_SEQ, req.seq, 0, "seq reserved")
            return
        self.served += 1
        self.requests.append(req)
        if req.version != self.protocol_version:
            self._error(req.seq, req.cmd, P.ErrorCode.UNSUPPORTED_VERSION,
                        self.protocol_version, req.version, "unsupported protocol version")
            return
        handler = {P.Cmd.HELLO: self._hello, P.Cmd.WRITE_INPUT: self._write_input,
                   P.Cmd.RUN: self._run, P.Cmd.READ: self._read,
                   P.Cmd.BEGIN: self._begin}.get(req.cmd)
        if handler is None:
            self._error(req.seq, req.cmd, P.ErrorCode.UNKNOWN_COMMAND, req.cmd, 0,
                        "unknown command")
            return
        handler(req)

    def _hello(self, req: P.Request) -> None:
        if req.body:
            self._error(req.seq, req.cmd, P.ErrorCode.BAD_LENGTH, len(req.body), 0, "HELLO")
            return
        self._reply(P.Resp.INFO, req.seq, P.info_body(self.info))

    def _begin(self, req: P.Request) -> None:
        """BEGIN as for a model stored whole: a new input (the fake takes no camera frames)."""
        if len(req.body) != P.BEGIN_BYTES:
            self._error(req.seq, req.cmd, P.ErrorCode.BAD_LENGTH, len(req.body), P.BEGIN_BYTES)
            return
        flags = req.body[0]
        if flags & ~int(P.BeginFlag.LAYER_COUNTS) or any(req.body[1:]):  # no camera here
            self._error(req.seq, req.cmd, P.ErrorCode.BAD_ARGUMENT, flags, 3,
                        "unknown BEGIN flags" if not flags & P.BeginFlag.FRAME else
                        "this model takes no camera frames: convert it with --camera")
            return
        if not self.arena_ok:
            self._error(req.seq, req.cmd, P.ErrorCode.NO_ARENA, 0, 0, "no arena")
            return
        self.input_started, self.input_seq, self.input_filled = True, req.seq, 0
        self.begun = True
        self.consumed_seq = None
        self.result = self.counts = self.run_cache = None
        self._reply(P.Resp.ACK, req.seq, P.ack_body(0, self.model.input_bytes))

    def _write_input(self, req: P.Request) -> None:
        body, total = req.body, self.model.input_bytes
        if len(body) <= P.WRITE_HEADER_BYTES or len(body) - 4 > self.max_payload:
            self._error(req.seq, req.cmd, P.ErrorCode.BAD_LENGTH, len(body),
                        P.WRITE_HEADER_BYTES + self.max_payload)
            return
        if not self.arena_ok:
            self._error(req.seq, req.cmd, P.ErrorCode.NO_ARENA, 0, 0, "no arena")
            return
        (offset,) = struct.unpack_from("<I", body)
        data = body[4:]
        if offset + len(data) > total:
            self._error(req.seq, req.cmd, P.ErrorCode.BAD_OFFSET, self.input_filled, total,
                        "chunk ends past the input tensor")
            return
        if offset != 0 and (not self.input_started or offset > self.input_filled):
            self._error(req.seq, req.cmd, P.ErrorCode.BAD_OFFSET, self.input_filled, total,
                        "chunk leaves a gap")
            return
        if offset == 0 and not self.input_started and self.consumed_seq == req.seq:
            # A late retry of the chunk that began the input the last RUN took: ACKed again.
            self._reply(P.Resp.ACK, req.seq, P.ack_body(len(data), total))
            return
        if offset == 0 and not self.begun and not (self.input_started
                                                   and self.input_seq == req.seq):
            self.consumed_seq = None
            self.input_started, self.input_seq, self.input_filled = True, req.seq, 0
            self.result = self.counts = self.run_cache = None
        if offset == 0 and self.begun:
            self.input_seq = req.seq
        self.begun = False
        # Bytes already received are not written again (a ring input may have consumed them).
        new = max(offset, self.input_filled)
        self.input[new:offset + len(data)] = data[new - offset:]
        self.input_filled = max(self.input_filled, offset + len(data))
        self._reply(P.Resp.ACK, req.seq, P.ack_body(self.input_filled, total))

    def _run(self, req: P.Request) -> None:
        self.runs_received += 1
        if len(req.body) != 1:
            self._error(req.seq, req.cmd, P.ErrorCode.BAD_LENGTH, len(req.body), 1)
            return
        flags = req.body[0]
        if flags & ~int(P.RunFlag.LAYER_COUNTS):
            self._error(req.seq, req.cmd, P.ErrorCode.BAD_ARGUMENT, flags, 1, "unknown flags")
            return
        if self.run_cache is not None and self.run_cache[0] == req.seq:
            self._send(self.run_cache[1])
            return
        if not self.arena_ok:
            self._error(req.seq, req.cmd, P.ErrorCode.NO_ARENA, 0, 0, "no arena")
            return
        if not self.input_started or self.input_filled < self.model.input_bytes:
            self._error(req.seq, req.cmd, P.ErrorCode.INPUT_INCOMPLETE,
                        self.input_filled if self.input_started else 0,
                        self.model.input_bytes, "write the whole input before RUN")
            return
        if self.reset_on_run is not None and self.runs_received == self.reset_on_run:
            self.reboot()
            return
        self.run_count += 1
        x = bytes(self.input)
        self.consumed_seq = self.input_seq
        self.input_started, self.input_filled, self.begun = False, 0, False
        if self.run_status:
            payload = self._error(req.seq, req.cmd, P.ErrorCode.RUN_FAILED, self.run_status, 1,
                                  f"{self.model.step_names[1]}: failed")
        else:
            self.result = (self.model.output(x), self.model.logits(x))
            counts = self.model.layer_counts(self.run_count)
            self.counts = counts if flags else None
            payload = self._reply(P.Resp.RESULT, req.seq, P.result_body(P.RunResult(
                0, 0, sum(counts), self.run_count, flags, len(counts))))
        self.run_cache = (req.seq, payload)

    def _read(self, req: P.Request) -> None:
        if len(req.body) != P.READ_BYTES:
            self._error(req.seq, req.cmd, P.ErrorCode.BAD_LENGTH, len(req.body), P.READ_BYTES)
            return
        what, offset, n = struct.unpack("<B3xII", req.body)
        if n > self.max_payload:
            self._error(req.seq, req.cmd, P.ErrorCode.BAD_LENGTH, n, self.max_payload)
            return
        if what == P.ReadWhat.STEP_NAMES:
            blob = b"".join(s.encode() + b"\x00" for s in self.model.step_names)
        elif what == P.ReadWhat.LAYER_COUNTS:
            if self.counts is None:
                self._error(req.seq, req.cmd, P.ErrorCode.NO_RESULT, what, 0, "no counts")
                return
            blob = struct.pack(f"<{len(self.counts)}Q", *self.counts)
        elif what in (P.ReadWhat.OUTPUT, P.ReadWhat.LOGITS):
            if self.result is None or (what == P.ReadWhat.LOGITS and not self.model.has_logits):
                self._error(req.seq, req.cmd, P.ErrorCode.NO_RESULT, what, 0, "no result")
                return
            blob = self.result[0] if what == P.ReadWhat.OUTPUT else self.result[1]
        else:
            self._error(req.seq, req.cmd, P.ErrorCode.BAD_ARGUMENT, what, 0, "unknown target")
            return
        if offset > len(blob):
            self._error(req.seq, req.cmd, P.ErrorCode.BAD_OFFSET, offset, len(blob))
            return
        self._reply(P.Resp.DATA, req.seq,
                    P.data_body(what, offset, len(blob), blob[offset:offset + n]))


class FakeSerial:
    """The host's end of a link to a FakeDevice, with the pyserial calls the client uses."""

    def __init__(self, device: FakeDevice, name: str = "fake://sqz") -> None:
        self.device = device
        self.port = name
        self.timeout: float | None = 0.05
        self.baudrate = 115200
        self.is_open = True
        self.bytes_written = 0

    @property
    def in_waiting(self) -> int:
        return len(self.device.outbox)

    def write(self, data: bytes) -> int:
        self.bytes_written += len(data)
        self.device.receive(bytes(data))
        return len(data)

    def read(self, size: int = 1) -> bytes:
        box = self.device.outbox
        if not box and self.timeout:
            time.sleep(self.timeout)  # nobody else can fill it: just let the time pass
        out = bytes(box[:size])
        del box[:size]
        return out

    def reset_input_buffer(self) -> None:
        self.device.outbox.clear()

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.is_open = False
