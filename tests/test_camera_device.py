"""Camera models on the device: raw frames sent row by row over the serial protocol are made
into the model's input on the device (the host mirror gives the same bytes) and the output is
bit-exact with LiteRT run on the mirror's bytes, on the host firmware and on the emulated
boards; frames of another format or size get a clear error, from the host and from the device,
which keeps serving."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from tflbuild import GraphBuilder, add_conv, pool_options

from converter.commands.convert import convert_main
from converter.commands.validate import validate_main
from converter.device import protocol as P
from converter.device.client import DeviceClient
from converter.device.hostsim import start_host_firmware
from converter.frontend import reference
from converter.frontend.camera import Camera, camera_params, frame_gradient, mirror
from converter.frontend.preprocess import Preprocessing
from converter.modeldir import load_model_dir

E = P.ErrorCode


def _model() -> bytes:
    """conv 3x3/2 (3 -> 8 channels) then a 2x2 max pool, on a 24x32x3 input."""
    rng = np.random.default_rng(7)
    g = GraphBuilder()
    q_in = (1 / 128, -1)
    x = g.tensor("image", (1, 24, 32, 3), "int8", *q_in)
    y, shape = add_conv(g, x, (1, 24, 32, 3), q_in, 8, (3, 3), (2, 2), "same", "relu",
                        [0.004] * 8, (0.05, -20), rng, name="conv1")
    z = g.tensor("pool", (1, shape[1] // 2, shape[2] // 2, 8), "int8", 0.05, -20)
    g.op("MAX_POOL_2D", [y], [z], "Pool2DOptions", pool_options((2, 2), (2, 2)))
    return g.build([x], [z])


def _convert(tmp: Path, camera: str, target: str = "host") -> Path:
    tfl = tmp / "cam.tflite"
    tfl.write_bytes(_model())
    pre = tmp / "pre.json"
    pre.write_text(json.dumps(Preprocessing(size=(24, 32), mean=(0.5, 0.5, 0.5),
                                            std=(0.5, 0.5, 0.5)).to_dict()))
    out = tmp / f"m-{target}-{camera.replace(':', '_')}"
    assert convert_main([str(tfl), "--target", target, "--camera", camera, "--preprocess",
                         str(pre), "--out", str(out), "-q"]) == 0
    return out


def _expected(model_dir: Path, frame: bytes) -> bytes:
    md = load_model_dir(model_dir, None)
    params = _params(model_dir)
    x = mirror(frame, params)[None]
    return reference.run_reference(md.tflite, x).outputs.tobytes()


def _params(model_dir: Path):
    md = load_model_dir(model_dir, None)
    return camera_params(md.camera, md.preprocessing, 1 / 128, -1, 24, 32, 3)


# (Every format, resize and fit is checked against the mirror in tests/test_camera.py; here the
# whole path, a frame over the protocol, for two of them.)
@pytest.mark.parametrize("camera", ["rgb565le:40x30", "yuyv:64x48:letterbox"])
def test_frames_on_the_host_firmware_are_bit_exact_with_the_mirror(tmp_path, camera) -> None:
    out = _convert(tmp_path, camera)
    cam = Camera.parse(camera)
    assert Camera.from_dict(json.loads((out / "camera.json").read_text())) == cam
    with start_host_firmware(out) as fw:
        dev = DeviceClient(fw.port)
        info = dev.hello()
        assert info.input_mode == P.InputMode.CAMERA
        assert (info.frame_width, info.frame_height, info.frame_bytes) == (
            cam.width, cam.height, cam.frame_bytes)
        assert 0 < info.input_slots < 24  # a ring of the model input's rows, never all 24
        for seed in range(3):
            frame = frame_gradient(cam, seed)
            r = dev.infer(frame, frame=True, per_layer=seed == 0)
            assert r.output == _expected(out, frame), seed
            if seed == 0:  # the input's own line: the preprocessing, counted
                assert r.layer_counts[0] > 0 and len(r.layer_counts) == 3


def test_the_device_refuses_frames_that_disagree_with_the_model_and_keeps_serving(
        tmp_path) -> None:
    out = _convert(tmp_path, "rgb565le:40x30")
    cam = Camera.parse("rgb565le:40x30")
    from test_host_firmware import RawLink

    with start_host_firmware(out) as fw:
        dev = DeviceClient(fw.port)
        info = dev.hello()
        link = RawLink(fw.port)
        seqs = iter(range(1000, 2000))

        def error(payload: bytes) -> P.DeviceErrorInfo:
            seq = next(seqs)
            link.send(payload[:2] + struct.pack("<H", seq) + payload[4:])
            return link.error(seq)

        frame_flag = int(P.BeginFlag.FRAME)
        cases = [
            (P.begin_request(1, frame_flag, info.frame_format + 1, 40, 30),
             "frame format differs from the model's"),
            (P.begin_request(1, frame_flag, info.frame_format, 30, 40),
             "frame size differs from the model's"),
            (P.begin_request(1, 0), "this model takes camera frames: BEGIN with the FRAME flag"),
            (P.write_input_request(1, 0, bytes(10)),
             "this model takes camera frames: BEGIN with the FRAME flag first"),
        ]
        for payload, text in cases:
            e = error(payload)
            assert e.code == E.BAD_ARGUMENT and text in e.message, (text, e.message)
        # A frame longer than the model's: refused at the chunk that goes past it.
        link.send(P.begin_request(1, frame_flag, info.frame_format, 40, 30))
        assert link.expect(1).header.type == P.Resp.ACK
        link.send(P.write_input_request(2, 0, bytes(cam.frame_bytes - 8)))
        assert link.expect(2).header.type == P.Resp.ACK
        e = error(P.write_input_request(1, cam.frame_bytes - 8, bytes(12)))
        assert e.code == E.BAD_OFFSET and "chunk ends past the input" in e.message
    # And it still serves: a good frame, bit-exact.
    with start_host_firmware(out) as fw:
        dev = DeviceClient(fw.port)
        dev.hello()
        frame = frame_gradient(cam, 5)
        assert dev.infer(frame, frame=True).output == _expected(out, frame)
    # The host refuses a frame of another size before sending anything.
    from converter.errors import UsageError

    with start_host_firmware(out) as fw:
        dev = DeviceClient(fw.port)
        dev.hello()
        with pytest.raises(UsageError, match="frame of 100 bytes does not fit"):
            dev.infer(bytes(100), frame=True)
        with pytest.raises(UsageError, match="takes camera frames"):
            dev.infer(bytes(24 * 32 * 3))


def test_validate_sends_raw_frames_and_refuses_a_frame_file_of_another_size(
        tmp_path, capsys) -> None:
    out = _convert(tmp_path, "rgb565le:40x30")
    cam = Camera.parse("rgb565le:40x30")
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        (frames / f"f{i}.raw").write_bytes(frame_gradient(cam, i))
    assert validate_main(["--sim", "host", "--model", str(out), "--inputs", str(frames)]) == 0
    text = capsys.readouterr().out
    assert "3 rgb565le:40x30" in text and "PASS: all 3 outputs bit-exact" in text
    (frames / "bad.raw").write_bytes(bytes(cam.frame_bytes - 2))
    rc = validate_main(["--sim", "host", "--model", str(out), "--inputs", str(frames)])
    err = capsys.readouterr().err
    assert rc != 0 and "bad.raw" in err and f"{cam.frame_bytes} bytes" in err
    assert "Traceback" not in err


# (mps2-an386-128k: the same firmware with less RAM, validated in tests/test_budget_ram.py.)
@pytest.mark.parametrize("target", ["mps2-an386", "esp32s3-qemu"])
def test_frames_on_the_emulated_boards_are_bit_exact(tmp_path, capsys, target) -> None:
    from qemu_batch import missing_tools

    from converter.device import qemu

    missing = missing_tools(target)
    if missing:
        pytest.skip(f"{', '.join(missing)} not found: {qemu.BOARDS[target].install_hint}")
    out = _convert(tmp_path, "rgb565le:40x30", target)
    rc = validate_main(["--sim", "qemu", "--model", str(out), "-n", "3", "--per-layer"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "PASS: all 3 outputs bit-exact" in text and "input" in text


def test_the_whole_frame_runs_from_memory_in_the_host_runner(tmp_path) -> None:
    """sqz_run_frame (a frame anywhere in memory): the host runner reads frames from stdin."""
    if shutil.which("cc") is None:
        pytest.skip("no C compiler")
    import subprocess

    from converter.device.build import build_runner

    out = _convert(tmp_path, "yuyv:48x36")
    cam = Camera.parse("yuyv:48x36")
    exe = build_runner(out, tmp_path / "runner", sanitize=True)
    frames = [frame_gradient(cam, s) for s in range(2)]
    proc = subprocess.run([str(exe)], input=b"".join(frames), capture_output=True, check=True)
    n = len(proc.stdout) // 2
    for i, f in enumerate(frames):
        assert proc.stdout[i * n:(i + 1) * n] == _expected(out, f)


def test_a_late_retry_of_a_frames_first_chunk_is_acknowledged_again(tmp_path) -> None:
    """docs/protocol.md: chunk 0 re-sent with its seq after the RUN that consumed it is a retry,
    on a camera model too (it is checked before the 'BEGIN first' refusal)."""
    from test_host_firmware import RawLink

    out = _convert(tmp_path, "rgb565le:40x30")
    cam = Camera.parse("rgb565le:40x30")
    frame = frame_gradient(cam, 2)
    with start_host_firmware(out) as fw:
        info = DeviceClient(fw.port).hello()
        link = RawLink(fw.port)
        link.send(P.begin_request(700, int(P.BeginFlag.FRAME), info.frame_format, 40, 30))
        link.expect(700)
        half = len(frame) // 2
        link.send(P.write_input_request(701, 0, frame[:half]))
        link.expect(701)
        link.send(P.write_input_request(702, half, frame[half:]))
        link.expect(702)
        link.send(P.run_request(703))
        assert link.expect(703).header.type == P.Resp.RESULT
        link.send(P.write_input_request(701, 0, frame[:half]))  # the late retry
        ack = link.expect(701).message
        assert (ack.filled, ack.total) == (half, cam.frame_bytes)
        link.send(P.read_request(704, P.ReadWhat.OUTPUT, 0, 1024))
        data = link.expect(704)
        assert data.header.type == P.Resp.DATA and data.message.data == _expected(out, frame)


def test_an_empty_array_of_frames_is_a_clear_error(tmp_path, capsys) -> None:
    out = _convert(tmp_path, "rgb565le:40x30")
    empty = tmp_path / "none.npy"
    np.save(empty, np.zeros((0, 2400), np.uint8))
    rc = validate_main(["--sim", "host", "--model", str(out), "--inputs", str(empty)])
    err = capsys.readouterr().err
    assert rc == 3 and "none.npy" in err and "give uint8 frames" in err
    assert "Traceback" not in err
