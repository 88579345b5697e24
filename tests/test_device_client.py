"""DeviceClient against the in-Python fake device: the happy path and every way the link or
the board can misbehave."""

from __future__ import annotations

import hashlib

import pytest

from converter.device import protocol as P
from converter.device.client import DeviceClient, open_port
from converter.device.fake import FakeDevice, FakeModel, FakeSerial
from converter.errors import (
    DeviceError,
    DeviceResetError,
    DeviceTimeoutError,
    InputFileError,
    ProtocolError,
    UsageError,
    WrongModelError,
)

T = 0.1  # short timeouts keep the failure tests fast


def make(max_payload: int = 64, **device_kwargs) -> tuple[FakeDevice, FakeSerial, DeviceClient]:
    dev = FakeDevice(max_payload=max_payload, **device_kwargs)
    port = FakeSerial(dev)
    client = DeviceClient(port, timeout=T, retries=3, sync_timeout=T, sync_attempts=4,
                          run_timeout=T, run_retries=2)
    return dev, port, client


def sample_input(model: FakeModel, seed: int = 1) -> bytes:
    return bytes((seed * 31 + 7 * i) & 0xFF for i in range(model.input_bytes))


def test_happy_path() -> None:
    dev, port, client = make()
    info = client.hello()
    assert info.model_name == "fake_model"
    assert info.sha256 == dev.model.sha256
    assert info.max_payload == 64 and info.input.bytes == 768
    assert info.logits is not None and info.arena_ok
    client.check_model(dev.model.sha256, "fake_model")

    for seed in range(3):
        x = sample_input(dev.model, seed)
        res = client.infer(x, per_layer=True)
        assert res.output == dev.model.output(x)
        assert res.logits == dev.model.logits(x)
        assert res.layer_counts == dev.model.layer_counts(seed + 1)
        assert res.run.run_count == seed + 1 and res.run.status == 0
        assert res.seconds == pytest.approx(sum(res.layer_counts) / dev.counter_hz)
    assert client.read_step_names() == dev.model.step_names
    # 768 input bytes in 64-byte chunks: 12 WRITE_INPUTs per inference
    writes = [r for r in dev.requests if r.cmd == P.Cmd.WRITE_INPUT]
    assert len(writes) == 36
    assert client.retries_used == 0


def test_no_layer_counts_unless_asked() -> None:
    dev, _, client = make()
    client.hello()
    res = client.infer(sample_input(dev.model))
    assert res.layer_counts is None
    with pytest.raises(ProtocolError, match="NO_RESULT"):
        client.read_layer_counts()


def test_silent_port_times_out_after_bounded_retries() -> None:
    dev, _, client = make()
    dev.silent = True
    with pytest.raises(DeviceTimeoutError) as exc:
        client.hello()
    msg = str(exc.value)
    assert "fake://sqz" in msg
    assert "HELLO after 4 attempts of 0.10 s each" in msg
    assert "last problem: no answer within 0.10 s" in msg
    assert [r.cmd for r in dev.requests] == [P.Cmd.HELLO] * 4
    assert client.retries_used == 3


def test_port_goes_silent_mid_session() -> None:
    dev, _, client = make()
    client.hello()
    dev.silent = True
    with pytest.raises(DeviceTimeoutError, match=r"WRITE_INPUT at offset 0 after 4 attempts"):
        client.infer(sample_input(dev.model))
    assert sum(r.cmd == P.Cmd.WRITE_INPUT for r in dev.requests) == 4


def test_dropped_and_corrupted_answers_are_retried() -> None:
    dev, _, client = make()
    client.hello()
    x = sample_input(dev.model, 5)
    expected = dev.model.output(x)
    for knob in ("drop_responses", "corrupt_responses", "corrupt_requests"):
        setattr(dev, knob, 2)
        before = client.retries_used
        assert client.infer(x).output == expected
        assert client.retries_used - before == 2, knob


def test_lost_run_result_is_replayed_not_rerun() -> None:
    dev, _, client = make()
    client.hello()
    client.write_input(sample_input(dev.model))
    dev.drop_responses = 1  # the RESULT is lost; the retried RUN must not need the input
    res = client.run()
    assert res.run_count == 1 and dev.run_count == 1
    assert dev.runs_received == 2


def test_noise_between_frames_is_ignored() -> None:
    dev, _, client = make()
    dev.noise = b"I (1234) boot: log line\r\n"
    client.hello()
    x = sample_input(dev.model)
    assert client.infer(x).output == dev.model.output(x)
    assert client.bad_frames > 0


def test_reset_mid_run_with_boot_frame() -> None:
    dev, _, client = make()
    client.hello()
    client.infer(sample_input(dev.model))
    dev.reset_on_run = 2
    with pytest.raises(DeviceResetError) as exc:
        client.infer(sample_input(dev.model, 2))
    msg = str(exc.value)
    assert "rebooted during inference 2" in msg
    assert "BOOT" in msg and "brown-out" in msg and "watchdog" in msg
    # After a new hello the session goes on.
    client.hello()
    x = sample_input(dev.model, 3)
    assert client.infer(x).output == dev.model.output(x)


def test_silent_reset_detected_by_request_counter() -> None:
    dev, _, client = make()
    client.hello()
    dev.reset_on_run = 1
    dev.send_boot_on_reset = False
    dev.boot_id_repeats = True
    with pytest.raises(DeviceResetError, match="request counter went back"):
        client.infer(sample_input(dev.model))


def test_reset_between_requests_detected() -> None:
    dev, port, client = make()
    client.hello()
    client.infer(sample_input(dev.model))
    dev.reboot()  # e.g. a watchdog between two inferences; BOOT is waiting in the buffer
    with pytest.raises(DeviceResetError, match="rebooted during inference 2"):
        client.infer(sample_input(dev.model))


def test_wrong_model_hash() -> None:
    dev, _, client = make(sha256=hashlib.sha256(b"another model").digest())
    info = client.hello()
    assert info.sha256 != dev.model.sha256
    with pytest.raises(WrongModelError) as exc:
        client.check_model(dev.model.sha256, "fake_model")
    assert "fake_model" in str(exc.value) and "flash" in str(exc.value)


def test_protocol_version_mismatch() -> None:
    dev, _, client = make()
    dev.protocol_version = P.PROTOCOL_VERSION + 1
    with pytest.raises(ProtocolError, match=f"speaks protocol version {P.PROTOCOL_VERSION + 1}"):
        client.hello()


def test_answer_in_another_version() -> None:
    dev, port, client = make()
    real_send = dev._send
    future = P.PROTOCOL_VERSION + 1
    dev._send = lambda payload: real_send(bytes([future]) + payload[1:])  # a future firmware
    with pytest.raises(ProtocolError, match=f"in protocol version {future}"):
        client.hello()


def test_run_failure_is_reported_with_step() -> None:
    dev, _, client = make()
    client.hello()
    dev.run_status = 2
    with pytest.raises(ProtocolError) as exc:
        client.infer(sample_input(dev.model))
    msg = str(exc.value)
    assert "step 1" in msg and "fire2/squeeze" in msg and "shape mismatch" in msg


def test_input_size_checked() -> None:
    _, _, client = make()
    client.hello()
    with pytest.raises(UsageError, match="1x16x16x3 int8 = 768 bytes"):
        client.write_input(b"\x00" * 100)


def test_model_without_logits() -> None:
    dev, _, client = make(model=FakeModel(has_logits=False))
    info = client.hello()
    assert info.logits is None
    res = client.infer(sample_input(dev.model))
    assert res.logits is None and res.output == dev.model.output(sample_input(dev.model))


def test_run_timeout_estimates() -> None:
    dev, port, _ = make()
    client = DeviceClient(port, timeout=1.0)
    client.hello()
    info = client.info
    assert info is not None
    # No run yet: the MAC-based estimate, never below the minimum.
    assert client.current_run_timeout() == 10.0
    dev.model.macs = 350_000_000
    client.hello()
    assert client.current_run_timeout() == pytest.approx(1.0 + 350e6 * 40 / 240e6)
    client.last_run_wall = 5.0
    assert client.current_run_timeout() == pytest.approx(21.0)
    client.run_timeout = 3.0
    assert client.current_run_timeout() == 3.0


def test_large_payload_device() -> None:
    dev, _, client = make(max_payload=4096)
    client.hello()
    x = sample_input(dev.model)
    assert client.infer(x).output == dev.model.output(x)
    assert sum(r.cmd == P.Cmd.WRITE_INPUT for r in dev.requests) == 1


def test_open_port_errors() -> None:
    with pytest.raises(InputFileError, match="does not exist"):
        open_port("/dev/ttyDOESNOTEXIST42", 115200)
    with pytest.raises((InputFileError, DeviceError)):
        open_port("nosuchscheme://x", 115200)
    port = open_port("loop://", 115200)
    try:
        # loop:// echoes our own requests back: they are not valid answers.
        client = DeviceClient(port, sync_timeout=0.05, sync_attempts=2)
        with pytest.raises(DeviceTimeoutError, match="loop://"):
            client.hello()
    finally:
        port.close()


def test_fake_device_follows_the_v2_rules() -> None:
    """The Python stand-in keeps docs/protocol.md's order of errors and its reserved seq."""
    dev = FakeDevice()
    dev.arena_ok = False
    dec = P.FrameDecoder()
    dev.outbox.clear()

    def ask(payload: bytes) -> P.Response:
        dev.receive(P.encode_frame(payload))
        (item,) = list(dec.feed(bytes(dev.outbox)))
        dev.outbox.clear()
        return P.parse_response(item)

    r = ask(P.write_input_request(1, 0, b""))  # bad length and no arena: the length first
    assert (r.message.code, r.message.detail, r.message.detail2) == (
        P.ErrorCode.BAD_LENGTH, 4, 4 + dev.max_payload)
    assert ask(P.write_input_request(2, 0, b"x")).message.code == P.ErrorCode.NO_ARENA
    assert ask(P.run_request(3)).message.code == P.ErrorCode.NO_ARENA
    served = dev.served
    r = ask(P.hello_request(P.SEQ_NONE))
    assert r.header.seq == P.SEQ_NONE and r.message.code == P.ErrorCode.BAD_SEQ
    assert dev.served == served and dev.bad_frames == 1
