"""sqz-compress --sparsity auto: per-layer densities from measured sensitivity
(converter.compress.sensitivity), the greedy within --max-drop, the check on held-out images,
the report, and the option errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_compress import CLASSES, SIZE, _fails, _save_with_sidecars, _tiny

from converter.commands.compress import compress_main
from converter.compress.algorithm import compressible_layers
from converter.compress.options import parse_sparsity
from converter.compress.sensitivity import DENSITIES, Curve, analyse, choose, densities_of
from converter.compress.sidecar import report_paths
from converter.datasets import shapes
from converter.errors import UsageError


def _curve(name: str, weights: int, accs: list[float]) -> Curve:
    return Curve(name, weights, tuple(zip(DENSITIES[:len(accs)], accs, strict=False)))


def test_choose_prunes_the_insensitive_weights_first():
    """A large layer that loses nothing goes to its lowest density; a small sensitive one
    stays; a layer whose loss is not monotone is read on its monotone envelope (0.5 loses as
    much as 0.6 did)."""
    base = 0.9
    curves = [_curve("big", 100_000, [0.9] * 9),
              _curve("touchy", 1_000, [0.85, 0.7]),
              _curve("bumpy", 10_000, [0.9, 0.895, 0.9, 0.89])]
    steps = choose(curves, base, max_drop=0.01)
    chosen = densities_of(steps, [c.layer for c in curves])
    assert chosen == {"big": 0.1, "touchy": 1.0, "bumpy": 0.4}
    # Free steps first (by weights removed), then the one that costs.
    assert [s.layer for s in steps][:9] == ["big"] * 9
    assert steps[-1].layer == "bumpy" and steps[-1].predicted_drop == pytest.approx(0.005)
    assert sum(s.predicted_drop for s in steps) <= 0.01 + 1e-9


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 10_000),
                          st.lists(st.floats(0.0, 1.0), min_size=1, max_size=9)),
                min_size=1, max_size=6),
       st.floats(0.0, 0.2), st.floats(0.0, 1.0))
def test_choose_stays_within_the_budget_and_stops_only_when_nothing_fits(layers, max_drop,
                                                                        base):
    curves = [_curve(f"l{i}", w, accs) for i, (w, accs) in enumerate(layers)]
    steps = choose(curves, base, max_drop)
    assert sum(s.predicted_drop for s in steps) <= max_drop + 1e-9
    at = {c.layer: -1 for c in curves}
    for s in steps:  # each layer steps down its own curve, one density at a time
        c = next(c for c in curves if c.layer == s.layer)
        at[s.layer] += 1
        assert s.density == c.points[at[s.layer]][0]
    spent = sum(s.predicted_drop for s in steps)
    for c in curves:  # no further step fits
        i = at[c.layer]
        if i + 1 < len(c.points):
            d = c.drops(base)
            assert spent + d[i + 1] - (d[i] if i >= 0 else 0.0) > max_drop - 1e-9


def test_analyse_undoes_steps_until_the_check_fits():
    """Losses that add up faster than the curves predict: the check keeps the longest prefix
    of the steps whose pruned model is within --max-drop, and the model comes back as it
    was."""
    model = _tiny()
    names = [la.name for la in compressible_layers(model)][:4]
    before = {n: model.get_layer(n).get_weights()[0].copy() for n in names}

    def accuracy() -> float:  # 2 points per pruned layer alone, 8 for two, 18 for three
        pruned = sum(float(np.mean(model.get_layer(n).get_weights()[0] == 0)) > 0.1
                     for n in names)
        return 0.9 - 0.02 * pruned ** 2

    sens = analyse(model, names, {}, accuracy, max_drop=0.05, images=10)
    assert sens.baseline == pytest.approx(0.9)
    assert sens.undone, "the check should have undone steps"
    assert sens.baseline - sens.checked <= 0.05 + 1e-9
    assert sum(d < 1.0 for d in sens.chosen.values()) == 1
    assert len(sens.steps) + len(sens.undone) > len(sens.steps) > 0
    for n in names:
        assert np.array_equal(model.get_layer(n).get_weights()[0], before[n])
        assert [p[0] for p in next(c for c in sens.curves if c.layer == n).points] == \
            list(DENSITIES)


@pytest.fixture(scope="module")
def val_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("val")
    shapes.generate(root, n_per_class=4, size=SIZE, seed=9, classes=CLASSES)
    return root


def test_sparsity_auto_end_to_end(tmp_path, val_data):
    """sqz-compress --sparsity auto --val: every layer without an override gets a density
    from its curve (conv10 keeps its override), the check is within --max-drop, and the
    report and its JSON carry the curves, the choice and the accuracy before and after."""
    src = _save_with_sidecars(_tiny(), tmp_path / "m.keras")
    out = tmp_path / "auto.keras"
    assert compress_main([str(src), "-o", str(out), "-q", "--sparsity", "auto,conv10=0.5",
                          "--val", str(val_data), "--max-drop", "5"]) == 0
    md, js = report_paths(out)
    report = json.loads(js.read_text())
    sens = report["sensitivity"]
    assert report["sparsity"] == "auto,conv10=0.5"
    assert sens["max_drop"] == pytest.approx(0.05) and sens["images"] == 4 * len(CLASSES)
    assert sens["baseline_accuracy"] - sens["checked_accuracy"] <= 0.05 + 1e-9
    assert "conv10" not in sens["densities"]
    # The planned density (a 4-weight filter keeps at least one weight whatever it is).
    density = {r["layer"]: r["target_density"] for r in report["layers"]}
    assert density["conv10"] == pytest.approx(0.5, abs=1e-3)
    for layer, d in sens["densities"].items():
        assert d in (1.0, *DENSITIES)
        assert density[layer] == pytest.approx(d, abs=1e-3)
    assert report["val"]["accuracy_before"] == pytest.approx(sens["baseline_accuracy"])
    text = md.read_text()
    assert "## Sensitivity (`--sparsity auto`)" in text
    assert f"(baseline {sens['baseline_accuracy']:.2%})" in text
    assert f"On the held-out images `{val_data}` ({4 * len(CLASSES)} images, never trained " \
        "on)" in text


def test_parse_sparsity_auto():
    spec = parse_sparsity("auto,conv10=0.5")
    assert spec.auto and spec.default is None and spec.overrides == (("conv10", 0.5),)
    assert not parse_sparsity("paper").auto
    with pytest.raises(UsageError, match=r"--sparsity 'auto,0\.5': 'auto' is the value for all "
                                         r"layers, so no other may follow"):
        parse_sparsity("auto,0.5")


def test_val_and_finetune_classes_must_agree(tmp_path, capsys, val_data):
    """A model without a classes sidecar: the two folders are held to each other."""
    import json as _json

    from converter.frontend.preprocess import Preprocessing

    src = tmp_path / "bare.keras"
    _tiny().save(src)
    src.with_name(src.name + ".preprocess.json").write_text(
        _json.dumps(Preprocessing.simple((SIZE, SIZE)).to_dict()))
    other = tmp_path / "other"
    shapes.generate(other, n_per_class=2, size=SIZE, seed=3, classes=["circle", "cross", "star"])
    rc, err = _fails([str(src), "-o", str(tmp_path / "x.keras"), "--val", str(val_data),
                      "--finetune", str(other), "--epochs", "1"], capsys)
    assert rc == 3, err
    assert (f"--val {val_data}: its classes (circle, square, triangle) differ from --finetune "
            f"{other}'s (circle, cross, star)") in err
    assert not (tmp_path / "x.keras").exists()


@pytest.mark.parametrize("argv, code, message", [
    (["--sparsity", "auto"], 2, "--sparsity auto measures each layer's accuracy as it is "
                                "pruned: give --val DATA_DIR"),
    (["--max-drop", "2"], 2, "--max-drop bounds what --sparsity auto may lose; add "
                             "--sparsity auto"),
    (["--sparsity", "auto", "--val", "VAL", "--max-drop", "nan"], 2,
     "--max-drop nan: give the accuracy --sparsity auto may lose in percentage points"),
    (["--sparsity", "auto", "--val", "/nonexistent/val"], 3,
     "--val /nonexistent/val: no such folder"),
    (["--sparsity", "auto", "--val", "VAL", "--finetune", "VAL"], 2,
     "is also --finetune's folder: held-out images must be ones fine-tuning does not train "
     "on"),
])
def test_sparsity_auto_option_errors(tmp_path, capsys, val_data, argv, code, message):
    src = _save_with_sidecars(_tiny(), tmp_path / "m.keras")
    argv = [str(val_data) if a == "VAL" else a for a in argv]
    rc, err = _fails([str(src), "-o", str(tmp_path / "x.keras"), *argv], capsys)
    assert rc == code, err
    assert message in err
    assert not (tmp_path / "x.keras").exists()
