"""Talk to a board running the sqz firmware over a serial port (docs/protocol.md).

In the manner of esptool: every wait has a named timeout, every request is retried a bounded
number of times and the last problem seen is part of the final error, and the client
resynchronises by flushing its input. Requests are idempotent (WRITE_INPUT by its rules, RUN
because the device replays the result of a retried RUN, READ trivially), so a retry after a
lost or damaged frame is always safe.

Typical use (what sqz-validate does)::

    with open_port("/dev/ttyACM0", 921600) as port:
        dev = DeviceClient(port)
        info = dev.hello()
        dev.check_model(expected_sha256, expected_name)
        result = dev.infer(input_bytes, per_layer=True)
"""

from __future__ import annotations

import errno
import logging
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import (
    DeviceError,
    DeviceResetError,
    DeviceTimeoutError,
    InputFileError,
    ProtocolError,
    UsageError,
    WrongModelError,
)
from . import protocol as P

log = logging.getLogger("sqz.device")

DEFAULT_TIMEOUT = 2.0      # s to wait for the answer to a short request, per attempt
SYNC_TIMEOUT = 0.5         # s per HELLO while syncing with a board that may still be booting
SYNC_ATTEMPTS = 10         # HELLOs before giving up: covers a board reset by opening the port
RETRIES = 3                # extra attempts for WRITE_INPUT and READ
RUN_RETRIES = 2            # extra attempts for RUN (each waits a whole RUN timeout)
MIN_RUN_TIMEOUT = 10.0     # s; the RUN timeout is never shorter
RUN_CYCLES_PER_MAC = 40    # pessimistic cost of one int8 MAC, to size the first RUN timeout
RUN_TIMEOUT_FACTOR = 4.0   # later RUN timeouts: this many times the last RUN's wall time
FRAME_ERROR_GRACE = 0.25   # s to wait after a damaged frame before sending the request again
POLL_INTERVAL = 0.05       # s; the port's read timeout, the granularity of every wait


def _port_name(port: Any) -> str:
    for attr in ("port", "name", "portstr"):
        v = getattr(port, attr, None)
        if isinstance(v, str) and v:
            return v
    return repr(port)


def open_port(url: str, baud: int = 115200, timeout: float = POLL_INTERVAL):
    """An open pyserial port for a device path (/dev/ttyACM0, COM3) or a pyserial URL
    (socket://host:port, rfc2217://, loop://). Raises InputFileError or DeviceError."""
    import serial  # pyserial; imported here so the protocol code does not need it

    try:
        return serial.serial_for_url(url, baudrate=baud, timeout=timeout)
    except ValueError as e:
        raise InputFileError(
            f"cannot open serial port '{url}': {e}; give a device path (/dev/ttyUSB0, "
            "/dev/ttyACM0, COM3) or a pyserial URL (socket://host:port, loop://) and a "
            "standard baud rate") from e
    except (serial.SerialException, OSError) as e:
        code = getattr(e, "errno", None)
        text = str(e)
        if code == errno.ENOENT or "No such file" in text or "FileNotFoundError" in text:
            raise InputFileError(
                f"serial port '{url}' does not exist; check the cable and the port name "
                "(list ports with 'python -m serial.tools.list_ports')") from e
        if code == errno.EACCES or "Permission denied" in text or "Access is denied" in text:
            raise DeviceError(
                f"permission denied opening serial port '{url}'; on Linux add your user to "
                "the 'dialout' (or 'uucp') group and log in again") from e
        if code == errno.EBUSY or "busy" in text.lower():
            raise DeviceError(
                f"serial port '{url}' is busy; close the serial monitor or any other "
                "program that holds it") from e
        if url.startswith(("socket://", "rfc2217://")) and (
                code == errno.ECONNREFUSED or "refused" in text.lower()):
            raise DeviceError(
                f"nothing is listening at '{url}' (connection refused); start the program that "
                "serves the board there first (a serial-to-TCP bridge, an emulator such as "
                "QEMU with -serial tcp:...,server), and check the host and port number") from e
        raise DeviceError(f"cannot open serial port '{url}': {text}") from e


@dataclass(frozen=True)
class InferenceResult:
    output: bytes
    logits: bytes | None
    run: P.RunResult
    layer_counts: list[int] | None  # counter ticks per step, when asked for
    seconds: float                  # run.total_count converted with the counter's rate


class DeviceClient:
    """Client for one device on a pyserial-like port (read, write, timeout,
    reset_input_buffer; in_waiting and flush are used when present)."""

    def __init__(self, port: Any, *, timeout: float = DEFAULT_TIMEOUT, retries: int = RETRIES,
                 run_timeout: float | None = None, run_retries: int = RUN_RETRIES,
                 sync_timeout: float = SYNC_TIMEOUT, sync_attempts: int = SYNC_ATTEMPTS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.port = port
        self.port_name = _port_name(port)
        self.timeout = timeout
        self.retries = retries
        self.run_timeout = run_timeout
        self.run_retries = run_retries
        self.sync_timeout = sync_timeout
        self.sync_attempts = sync_attempts
        self.clock = clock
        self.info: P.DeviceInfo | None = None
        self.inference_count = 0     # infer() calls so far, for messages
        self.retries_used = 0        # requests sent again, over the client's life
        self.bad_frames = 0          # damaged frames received
        self.last_run_wall: float | None = None
        self._decoder = P.FrameDecoder()
        self._queue: deque[P.Response | P.FrameError] = deque()
        self._seq = 0
        self._boot_id: int | None = None  # None: not synced, no reset detection yet
        self._served = 0
        self._activity = "the session"
        if hasattr(port, "timeout"):
            port.timeout = POLL_INTERVAL

    # ---- public API ---------------------------------------------------------------------------

    def hello(self) -> P.DeviceInfo:
        """Syncs with the device (flushing whatever it sent before) and returns its INFO.
        Also (re)starts reset detection: call it again after a DeviceResetError."""
        self._boot_id = None
        self._flush()
        resp = self._transact(lambda seq: P.hello_request(seq), P.Resp.INFO, "HELLO",
                              self.sync_timeout, self.sync_attempts)
        info = resp.message
        assert isinstance(info, P.DeviceInfo)
        self.info = info
        self._boot_id = resp.header.boot_id
        self._served = resp.header.served
        self._decoder.max_frame = max(1 << 12, 2 * (info.max_payload + P.FRAME_OVERHEAD) + 64)
        return info

    def check_model(self, sha256: bytes, name: str | None = None) -> None:
        """Raises WrongModelError unless the device runs the model with this SHA-256."""
        info = self._require_info()
        if info.sha256 == sha256:
            return
        want = f"'{name}' " if name else ""
        raise WrongModelError(
            f"the device on {self.port_name} runs model '{info.model_name}' (sha256 "
            f"{info.sha256.hex()[:16]}…), not the model being validated {want}(sha256 "
            f"{sha256.hex()[:16]}…); build and flash the firmware generated from this model")

    def write_input(self, data: bytes, frame: bool = False) -> None:
        """Sends one complete input tensor (or camera frame), in chunks of the device's max
        payload."""
        info = self._require_info()
        data = bytes(data)
        self._check_input(info, data, frame)
        step = info.max_payload
        # A ring or camera model computes on each chunk's rows before it ACKs (with --stream
        # off, the whole run on the last chunk): such a chunk may take as long as a RUN.
        computes = info.input_mode != P.InputMode.WHOLE
        for off in range(0, len(data), step):
            piece = data[off:off + step]
            wait = self._timeout_for(len(piece))
            if computes:
                wait = max(wait, self.current_run_timeout())
            resp = self._transact(
                lambda seq, off=off, piece=piece: P.write_input_request(seq, off, piece),
                P.Resp.ACK, f"WRITE_INPUT at offset {off}", wait, 1 + self.retries,
                run_timeout=computes)
            ack = resp.message
            assert isinstance(ack, P.WriteAck)
            if ack.total != len(data) or ack.filled < off + len(piece):
                raise ProtocolError(
                    f"the device on {self.port_name} acknowledged input chunk {off}.."
                    f"{off + len(piece)} with {ack.filled} of {ack.total} bytes received; "
                    "this client and the firmware disagree, rebuild both from one sqz version")

    def _check_input(self, info: P.DeviceInfo, data: bytes, frame: bool) -> None:
        """The bytes fit what the device takes (a camera frame or a model input)."""
        if frame:
            if info.input_mode != P.InputMode.CAMERA:
                raise UsageError(f"the model on {self.port_name} takes no camera frames: "
                                 "convert it with --camera FORMAT:WxH")
            if len(data) != info.frame_bytes:
                raise UsageError(
                    f"frame of {len(data)} bytes does not fit the model on the device, which "
                    f"takes {info.frame_width}x{info.frame_height} frames of "
                    f"{info.frame_bytes} bytes")
        elif info.input_mode == P.InputMode.CAMERA:
            raise UsageError(f"the model on {self.port_name} takes camera frames "
                             f"({info.frame_width}x{info.frame_height}, {info.frame_bytes} "
                             "bytes), not model inputs: send frames (sqz-validate --inputs FRAMES)")
        elif len(data) != info.input.bytes:
            raise UsageError(
                f"input of {len(data)} bytes does not fit the model on the device, which takes "
                f"{'x'.join(map(str, info.input.dims))} int8 = {info.input.bytes} bytes")

    def begin(self, per_layer: bool = False, frame: tuple[int, int, int] | None = None
              ) -> None:
        """Starts a new input: needed where the device runs as the input's rows arrive (its
        run starts with the first rows, so per-layer counting is decided here). `frame`:
        (format code, width, height) of the camera frames that follow."""
        flags = (P.BeginFlag.LAYER_COUNTS if per_layer else 0) | (P.BeginFlag.FRAME if frame
                                                                   else 0)
        fmt, w, h = frame or (0, 0, 0)
        self._transact(lambda seq: P.begin_request(seq, flags, fmt, w, h), P.Resp.ACK,
                       "BEGIN", self.timeout, 1 + self.retries)

    def run(self, per_layer: bool = False) -> P.RunResult:
        """Runs one inference on the input written last (which RUN consumes)."""
        self._require_info()
        flags = P.RunFlag.LAYER_COUNTS if per_layer else 0
        timeout = self.current_run_timeout()
        t0 = self.clock()
        resp = self._transact(lambda seq: P.run_request(seq, flags), P.Resp.RESULT, "RUN",
                              timeout, 1 + self.run_retries, run_timeout=True)
        self.last_run_wall = self.clock() - t0
        result = resp.message
        assert isinstance(result, P.RunResult)
        return result

    def read_output(self) -> bytes:
        return self._read_all(P.ReadWhat.OUTPUT)

    def read_logits(self) -> bytes | None:
        """The logits of the last run, or None when the model keeps none."""
        if self._require_info().logits is None:
            return None
        return self._read_all(P.ReadWhat.LOGITS)

    def read_layer_counts(self) -> list[int]:
        """Counter ticks per step of the last RUN made with per_layer=True."""
        raw = self._read_all(P.ReadWhat.LAYER_COUNTS)
        return list(struct.unpack(f"<{len(raw) // 8}Q", raw[:len(raw) // 8 * 8]))

    def read_step_names(self) -> list[str]:
        raw = self._read_all(P.ReadWhat.STEP_NAMES)
        return [s.decode("utf-8", "replace") for s in raw.split(b"\x00")[:-1]]

    def infer(self, input_bytes: bytes, per_layer: bool = False,
              frame: bool = False) -> InferenceResult:
        """(BEGIN +) WRITE_INPUT + RUN + READ of the output (and logits, and layer counts if
        asked). `frame`: the bytes are a camera frame the device converts."""
        info = self._require_info()
        self.inference_count += 1
        self._activity = f"inference {self.inference_count}"
        try:
            self._check_input(info, bytes(input_bytes), frame)
            if frame or info.input_mode != P.InputMode.WHOLE:
                self.begin(per_layer=per_layer,
                           frame=(info.frame_format, info.frame_width, info.frame_height)
                           if frame else None)
            self.write_input(input_bytes, frame=frame)
            run = self.run(per_layer=per_layer)
            output = self.read_output()
            logits = self.read_logits()
            counts = self.read_layer_counts() if per_layer else None
        finally:
            self._activity = "the session"
        seconds = run.total_count / info.counter_hz if info.counter_hz else 0.0
        return InferenceResult(output, logits, run, counts, seconds)

    def current_run_timeout(self) -> float:
        """The RUN timeout: the user's, else from the last RUN's duration, else estimated from
        the model's MACs and the device's clock (pessimistically)."""
        if self.run_timeout is not None:
            return self.run_timeout
        if self.last_run_wall is not None:
            return max(MIN_RUN_TIMEOUT, self.timeout + RUN_TIMEOUT_FACTOR * self.last_run_wall)
        info = self.info
        estimate = MIN_RUN_TIMEOUT
        hz = (info.cpu_hz or info.counter_hz) if info else 0
        if info and hz:
            estimate = max(estimate, self.timeout + info.macs * RUN_CYCLES_PER_MAC / hz)
        return estimate

    # ---- internals ---------------------------------------------------------------------------

    def _require_info(self) -> P.DeviceInfo:
        if self.info is None:
            return self.hello()
        return self.info

    def _timeout_for(self, nbytes: int) -> float:
        """DEFAULT_TIMEOUT plus the time the bytes take on the wire (both directions)."""
        baud = getattr(self.port, "baudrate", None)
        wire = 2 * (nbytes + 64) * 10 / baud if isinstance(baud, int) and baud > 0 else 0.0
        return self.timeout + wire

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) % P.SEQ_NONE  # never SEQ_NONE
        return self._seq

    def _flush(self) -> None:
        try:
            self.port.reset_input_buffer()
        except Exception as e:  # any port failure is reported the same way
            raise self._port_gone(e) from e
        self._decoder.reset()
        self._queue.clear()

    def _port_gone(self, e: BaseException) -> DeviceError:
        if self._boot_id is not None:
            return DeviceResetError(
                f"the serial port {self.port_name} went away during {self._activity} ({e}); "
                "the board was unplugged or reset (a USB-serial device disappears while it "
                "reboots): check power/brown-out and the watchdog, then run again")
        return DeviceError(f"serial port {self.port_name} failed: {e}")

    def _write(self, frame: bytes) -> None:
        try:
            self.port.write(frame)
            flush = getattr(self.port, "flush", None)
            if flush is not None:
                flush()
        except Exception as e:
            raise self._port_gone(e) from e

    def _read_some(self) -> bytes:
        try:
            waiting = getattr(self.port, "in_waiting", 0) or 0
            return bytes(self.port.read(max(1, waiting)) or b"")
        except Exception as e:
            raise self._port_gone(e) from e

    def _next_item(self, deadline: float) -> P.Response | P.FrameError | None:
        """The next frame from the device (parsed), or None once the deadline passes."""
        while not self._queue:
            if self.clock() >= deadline:
                return None
            data = self._read_some()
            for item in self._decoder.feed(data):
                if isinstance(item, P.FrameError):
                    self._queue.append(item)
                    continue
                try:
                    self._queue.append(P.parse_response(item))
                except ValueError as e:
                    self._queue.append(P.FrameError("malformed", f"malformed response: {e}"))
        return self._queue.popleft()

    def _reset_error(self, why: str) -> DeviceResetError:
        return DeviceResetError(
            f"the device on {self.port_name} rebooted during {self._activity} ({why}); check "
            "its power supply (brown-out), the watchdog (a step longer than its timeout), "
            "stack and arena sizes, and the board's boot log on its serial console; then run "
            "again")

    def _check_reset(self, h: P.ResponseHeader) -> None:
        if self._boot_id is None:
            return
        if h.type == P.Resp.BOOT:
            raise self._reset_error("it sent a BOOT frame")
        if h.boot_id != self._boot_id:
            raise self._reset_error(f"boot id changed from {self._boot_id:#010x} to "
                                    f"{h.boot_id:#010x}")
        if h.seq != P.SEQ_NONE and h.served <= self._served:
            raise self._reset_error(f"its request counter went back from {self._served} to "
                                    f"{h.served}")
        if h.served < self._served:
            raise self._reset_error(f"its request counter went back from {self._served} to "
                                    f"{h.served}")
        self._served = h.served

    def _transact(self, build: Callable[[int], bytes], expect: int, what: str, timeout: float,
                  attempts: int, *, run_timeout: bool = False) -> P.Response:
        seq = self._next_seq()
        frame = P.encode_frame(build(seq))
        last = "no answer"
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                self.retries_used += 1
                log.debug("%s: attempt %d of %d after: %s", what, attempt, attempts, last)
            self._write(frame)
            deadline = self.clock() + timeout
            got_any = False
            while True:
                item = self._next_item(deadline)
                if item is None:
                    if not got_any:
                        last = f"no answer within {timeout:.2f} s"
                    break
                got_any = True
                if isinstance(item, P.FrameError):
                    self.bad_frames += 1
                    last = f"damaged frame from the device ({item})"
                    if not run_timeout:  # a board busy running may be logging: keep waiting
                        deadline = min(deadline, self.clock() + FRAME_ERROR_GRACE)
                    continue
                h = item.header
                self._check_reset(h)
                msg = item.message
                if h.type == P.Resp.BOOT:
                    last = "the device (re)booted"  # only while syncing: not an error yet
                    continue
                if h.seq == P.SEQ_NONE:
                    if isinstance(msg, P.DeviceErrorInfo):
                        last = f"device reported {msg.describe()}"
                        if msg.code in P.FRAME_ERRORS:
                            deadline = min(deadline, self.clock() + FRAME_ERROR_GRACE)
                    continue
                if h.seq != seq:
                    continue  # a late answer to an earlier request: already handled
                if isinstance(msg, P.DeviceErrorInfo):
                    raise self._device_error(what, msg)
                if h.version != P.PROTOCOL_VERSION:
                    raise ProtocolError(
                        f"the device on {self.port_name} answered {what} in protocol version "
                        f"{h.version}, this sqz speaks {P.PROTOCOL_VERSION}; flash firmware "
                        "built by this sqz version")
                if h.type != expect:
                    raise ProtocolError(
                        f"the device on {self.port_name} answered {what} with message type "
                        f"{h.type:#04x} instead of {expect:#04x}; the firmware and this client "
                        "do not match, rebuild and flash the firmware from this sqz version")
                return item
            self._flush()  # resync: drop whatever half-frame is still in the buffers
        hint = ("is the board powered and running the sqz firmware (reset it), is the port "
                "right, and is the baud rate the firmware's?")
        if run_timeout:
            hint = (f"the inference may take longer than the RUN timeout of {timeout:.1f} s "
                    "(give a longer one), or the board hung or rebooted silently")
        raise DeviceTimeoutError(
            f"no valid answer from the device on {self.port_name} to {what} after {attempts} "
            f"attempts of {timeout:.2f} s each (last problem: {last}); {hint}")

    def _device_error(self, what: str, e: P.DeviceErrorInfo) -> ProtocolError:
        if e.code == P.ErrorCode.UNSUPPORTED_VERSION:
            return ProtocolError(
                f"the device on {self.port_name} speaks protocol version {e.detail}, this sqz "
                f"speaks {P.PROTOCOL_VERSION}; flash firmware built by this sqz version")
        if e.code == P.ErrorCode.RUN_FAILED:
            status = P.STATUS_NAMES.get(e.detail, f"status {e.detail}")
            return ProtocolError(
                f"the inference failed on the device on {self.port_name}: step {e.detail2} "
                f"({e.message}) returned {status} ({e.detail}); the generated model and the "
                "runtime disagree, regenerate and rebuild the firmware")
        return ProtocolError(
            f"the device on {self.port_name} refused {what} with {e.describe()}; this client "
            "and the firmware disagree, rebuild and flash the firmware from this sqz version")

    def _read_all(self, what: P.ReadWhat) -> bytes:
        info = self._require_info()
        out = bytearray()
        total: int | None = None
        while total is None or len(out) < total:
            off = len(out)
            resp = self._transact(
                lambda seq, off=off: P.read_request(seq, what, off, info.max_payload),
                P.Resp.DATA, f"READ {what.name} at offset {off}",
                self._timeout_for(info.max_payload), 1 + self.retries)
            chunk = resp.message
            assert isinstance(chunk, P.DataChunk)
            if chunk.what != what or chunk.offset != off or (total is not None and
                                                             chunk.total != total):
                raise ProtocolError(
                    f"the device on {self.port_name} answered READ {what.name} at {off} with "
                    f"target {chunk.what} at {chunk.offset} of {chunk.total}; rebuild and "
                    "flash the firmware from this sqz version")
            total = chunk.total
            if not chunk.data and off < total:
                raise ProtocolError(f"the device on {self.port_name} sent an empty chunk of "
                                    f"{what.name} at {off} of {total}")
            out += chunk.data
        return bytes(out[:total])
