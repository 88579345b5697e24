"""The README's main job on the bundled example: no model argument, then labelled validation
on the simulated device with float, int8 and device accuracy side by side."""

from __future__ import annotations

import json
import shutil

from conftest import REPO

from converter.commands.convert import convert_main
from converter.commands.validate import validate_main

HELDOUT = REPO / "examples" / "shapes" / "heldout"


def test_default_conversion_and_labelled_validation(tmp_path, capsys):
    out = tmp_path / "host"
    assert convert_main(["--target", "host", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "No model given: using the bundled example" in text
    assert "calibration: 65 images from calib" in text
    assert "Next: sqz-validate --sim host --model" in text
    assert json.loads((out / "classes.json").read_text())[0] == "circle"
    report = tmp_path / "r.json"
    rc = validate_main(["--sim", "host", "--model", str(out), "--inputs", str(HELDOUT),
                        "--report", str(report)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "accuracy on 200 labelled images" in text
    assert "200/200 outputs identical to LiteRT BUILTIN_REF" in text
    acc = json.loads(report.read_text())["accuracy"]
    assert set(acc) == {"float Keras", "int8 reference", "device"}
    assert acc["device"] == acc["int8 reference"]  # bit-exact, so the same answers
    assert acc["float Keras"] >= 0.95
    assert acc["float Keras"] - acc["device"] <= 0.01  # int8 loses at most one point


def test_board_conversion_says_what_to_do_next(tmp_path, capsys):
    assert convert_main(["--target", "esp32s3", "--out", str(tmp_path / "e")]) == 0
    text = capsys.readouterr().out
    assert "Next: pio run -t upload (env esp32s3), then sqz-validate --port" in text


def test_class_folders_must_match_the_model(tmp_path, capsys):
    out = tmp_path / "host"
    assert convert_main(["--target", "host", "--out", str(out), "-q"]) == 0
    odd = tmp_path / "odd"
    (odd / "hexagon").mkdir(parents=True)
    first = next((HELDOUT / "circle").iterdir())
    shutil.copy(first, odd / "hexagon" / first.name)
    rc = validate_main(["--sim", "host", "--model", str(out), "--inputs", str(odd)])
    err = capsys.readouterr().err
    assert rc == 3
    assert "class folders ['hexagon'] are not among the model's classes" in err


def test_readme_order_then_another_model_into_the_same_directory(tmp_path, capsys):
    """Issue 13, defect 1: the example, then a random-weight SqueezeNet into the same --out.
    Nothing of the example may survive: no classes.json beside a 3-class model, no float model
    of another shape, and no accuracy table computed with the example's class names."""
    out = tmp_path / "host"
    assert convert_main(["--target", "host", "--out", str(out), "-q"]) == 0
    assert (out / "classes.json").is_file() and (out / "float_model.keras").is_file()
    assert convert_main(["squeezenet1_1", "--input-size", "40", "--classes", "3", "--target",
                         "host", "--out", str(out), "-q"]) == 0
    assert not (out / "classes.json").exists()
    assert json.loads((out / "preprocess.json").read_text())["size"] == [40, 40]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["host"]  # no helper, no lock file
    capsys.readouterr()
    assert validate_main(["--sim", "host", "--model", str(out), "-n", "2", "-q"]) == 0
    assert capsys.readouterr().out == "PASS: all 2 outputs bit-exact\n"  # float model: 40x40
    rc = validate_main(["--sim", "host", "--model", str(out), "--inputs", str(HELDOUT)])
    err = capsys.readouterr().err
    assert rc == 3
    assert (f"{HELDOUT}: 5 class folders (circle, cross, square, star, triangle) but the model "
            "has 3 outputs and records no class names (classes.json)") in err
