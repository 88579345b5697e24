"""sqz-compress on the real ImageNet SqueezeNet 1.1 from ../shared/pretrained: the compressed
model passes sqz-convert's structure check and runs in LiteRT; weight sharing alone keeps the
int8 model's answers on the five photos, while pruning to the paper's densities without
retraining (there is no ImageNet data here) does not. The figures are in
docs/benchmarks.md."""

from __future__ import annotations

import importlib.util
import math

import pytest
from conftest import PRETRAINED, REPO

from converter.compress.algorithm import compressible_layers, kept_count
from converter.compress.options import paper_density
from converter.frontend.quantize import captured_output

SCRIPT = REPO / "examples" / "deep_compression" / "imagenet_agreement.py"

pytestmark = pytest.mark.skipif(
    not (PRETRAINED / "squeezenet1_1_imagenet.npz").is_file()
    or not (PRETRAINED / "photos").is_dir(),
    reason=f"pretrained weights or photos not found in {PRETRAINED} (shared data beside the "
           "checkout)")


@pytest.fixture(scope="module")
def agreement():
    spec = importlib.util.spec_from_file_location("imagenet_agreement", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.agreement


def test_weight_sharing_alone_keeps_the_answers(agreement, tmp_path):
    with captured_output():
        r = agreement(PRETRAINED, tmp_path, bits=6, sparsity="none")
    assert len(r["photos"]) == 5 and r["kept"] == r["weights"] == 1_231_552
    # Where int8 top-1 changes, it swaps with the runner-up (cat: 285 vs 281 at p 0.57 / 0.39).
    for p in r["photos"]:
        assert p["uncompressed_top5"][0] in p["compressed_top5"][:2], p
    assert r["top5_overlap"] >= 20


def test_paper_sparsity_post_training(agreement, tmp_path):
    with captured_output():
        r = agreement(PRETRAINED, tmp_path, bits=6)  # checked by sources.resolve on the way
    want = sum(kept_count(n, d) for n, d in _layer_sizes())
    assert r["kept"] == want
    # Without retraining, pruning two thirds of the weights loses most top-5 classes.
    assert r["top5_overlap"] <= 12


def _layer_sizes():
    from converter.models.squeezenet import build_squeezenet, config_for_builtin

    model = build_squeezenet(config_for_builtin("squeezenet1_1"))
    for layer in compressible_layers(model):
        yield math.prod(layer.kernel.shape), paper_density(layer.name)
