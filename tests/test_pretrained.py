"""The real ImageNet SqueezeNet 1.1 from ../shared/pretrained: int8 keeps the float top-1 on
the cat photo, and the generated C is bit-exact with the reference on it."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import PRETRAINED

from converter.commands.convert import convert_main
from converter.commands.validate import validate_main
from converter.frontend import reference, sources
from converter.frontend.preprocess import Preprocessing, load_image

WEIGHTS = PRETRAINED / "squeezenet1_1_imagenet.npz"
CAT = PRETRAINED / "cat.jpeg"

pytestmark = pytest.mark.skipif(
    not (WEIGHTS.is_file() and CAT.is_file()),
    reason=f"pretrained weights or photo not found in {PRETRAINED} (shared data beside the "
           "checkout)")


def _calibration(x: np.ndarray) -> np.ndarray:
    """A handful of variants of the one photo we have: flips, shifts, contrast."""
    v = [x, x[:, ::-1], np.roll(x, 12, axis=0), np.roll(x, -12, axis=1), x * 0.8, x * 1.2,
         x[::-1], np.roll(x[:, ::-1], 20, axis=0)]
    return np.stack(v).astype(np.float32)


@pytest.fixture(scope="module")
def cat_setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pretrained")
    x = load_image(CAT, Preprocessing.imagenet())
    np.save(tmp / "calib.npy", _calibration(x))
    return tmp, x


def test_int8_top1_equals_float_top1(cat_setup, sqz_runner):
    tmp, x = cat_setup
    src = sources.resolve("squeezenet1_1", weights=str(WEIGHTS), calib=str(tmp / "calib.npy"),
                          preprocess="imagenet")
    float_probs = np.asarray(src.keras_model.predict(x[None], verbose=0))[0]
    assert int(np.argmax(float_probs)) == 285  # Egyptian cat, per the data's README
    from converter.frontend.preprocess import quantize_input
    from converter.frontend.tflite_reader import read_model_bytes

    g = read_model_bytes(src.tflite)
    scale, zp = g.tensor(g.inputs[0]).quant.single()
    q = quantize_input(x[None], scale, zp)
    ref = reference.run_reference(src.tflite, q)
    assert not ref.softmax_aborted
    assert int(np.argmax(ref.outputs[0])) == 285
    ours = sqz_runner.run(src.tflite, q)
    assert np.array_equal(ours, ref.outputs.reshape(1, -1))


def test_validate_cat_on_host_device(cat_setup, tmp_path, capsys):
    tmp, _ = cat_setup
    out = tmp_path / "cat"
    assert convert_main(["squeezenet1_1", "--weights", str(WEIGHTS), "--preprocess", "imagenet",
                         "--calib", str(tmp / "calib.npy"), "--target", "host", "--out",
                         str(out), "-q"]) == 0
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "cat.jpeg").write_bytes(CAT.read_bytes())
    rc = validate_main(["--sim", "host", "--model", str(out), "--inputs", str(photos)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "1/1 outputs identical to LiteRT BUILTIN_REF" in text
    assert "vs float Keras model │ top-1 agreement 1/1" in text


def test_the_photos_as_320x240_rgb565_frames_through_the_device_camera_path(tmp_path,
                                                                             capsys):
    """The five photos, each made a 320x240 RGB565 frame: the host firmware makes the model
    input from the frame itself, bit-exact with LiteRT on the host mirror's bytes; its top-1
    is today's full-frame path's (host preprocessing of the same frame, int8 reference) on
    every photo, so it agrees with the float model on the originals as often."""
    import json

    from PIL import Image

    from converter.frontend.camera import Camera, frame_from_image
    from converter.frontend.preprocess import quantize_input
    from converter.frontend.tflite_reader import read_model_bytes
    from converter.modeldir import load_model_dir

    photos = tmp_path / "photos"
    photos.mkdir()
    for p in [CAT, *sorted((PRETRAINED / "photos").glob("*.jpg"))]:
        (photos / p.name).write_bytes(p.read_bytes())
    if len(list(photos.iterdir())) != 5:
        pytest.skip(f"the four photos of {PRETRAINED / 'photos'} are not there")
    out = tmp_path / "cam"
    assert convert_main(["squeezenet1_1", "--weights", str(WEIGHTS), "--preprocess", "imagenet",
                         "--calib", str(photos), "--camera", "rgb565le:320x240", "--target",
                         "host", "--out", str(out), "-q"]) == 0
    report = tmp_path / "r.json"
    rc = validate_main(["--sim", "host", "--model", str(out), "--inputs", str(photos),
                        "--report", str(report)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "5/5 outputs identical to LiteRT BUILTIN_REF" in text
    device = {r["input"]: r["device_top1"] for r in json.loads(report.read_text())["per_input"]}
    # Today's path on the same frame: the frame decoded to RGB, the host's preprocessing.
    md = load_model_dir(out, None)
    g = read_model_bytes(md.tflite)
    scale, zp = g.tensor(g.inputs[0]).quant.single()
    cam = Camera.parse("rgb565le:320x240")
    for name, top in device.items():
        px = np.frombuffer(frame_from_image(photos / name, cam), "<u2").reshape(240, 320)
        r, gr, b = (px >> 11) & 31, (px >> 5) & 63, px & 31
        rgb = np.stack([(r << 3) | (r >> 2), (gr << 2) | (gr >> 4), (b << 3) | (b >> 2)], -1)
        png = tmp_path / f"{name}.png"
        Image.fromarray(rgb.astype(np.uint8)).save(png)
        q = quantize_input(load_image(png, Preprocessing.imagenet())[None], scale, zp)
        host = int(np.argmax(reference.run_reference(md.tflite, q).outputs.reshape(-1)))
        assert top == host, (name, top, host)
