"""sqz-compress: pruning densities, codebook sizes before and after int8 quantization, exact
zeros, determinism, the sidecar and its effect on sqz-convert's quantizer, fine-tuning, the
report's numbers, and bad input. Small models (40x40, 3 classes, narrow fire modules)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from converter import convert, targets
from converter.commands.compress import compress_main
from converter.compress.algorithm import (
    compressible_layers,
    int8_filter,
    kept_count,
    kmeans_1d,
    prune_mask,
    share_weights,
)
from converter.compress.options import (
    BYPASS_DENSITY,
    DEFAULT_BITS,
    LayerValues,
    paper_density,
    parse_bits,
    parse_sparsity,
)
from converter.compress.report import pct
from converter.compress.sidecar import report_paths
from converter.datasets import shapes
from converter.errors import ModelError
from converter.frontend import reference, sources
from converter.frontend.compression import SIDECAR_FORMAT, filters_by_layer, sidecar_path
from converter.frontend.preprocess import Preprocessing, quantize_input
from converter.frontend.tflite_reader import read_model_bytes
from converter.ir import packing
from converter.ir.steps import ConvStep
from converter.models.squeezenet import SqueezeNetConfig, build_squeezenet

CLASSES = ["circle", "square", "triangle"]
SIZE = 40


def _tiny(version: str = "1.1", bypass: str = "none", seed: int = 0):
    model = build_squeezenet(SqueezeNetConfig(version=version, input_shape=(SIZE, SIZE, 3),
                                              classes=len(CLASSES), bypass=bypass, base_e=8,
                                              incr_e=8, seed=seed))
    # Small positive biases keep the ReLUs of a random network from going all zero.
    rng = np.random.default_rng(seed)
    for layer in compressible_layers(model):
        kernel, bias = layer.get_weights()
        layer.set_weights([kernel, rng.uniform(0.01, 0.1, bias.shape).astype(np.float32)])
    return model


def _save_with_sidecars(model, path: Path) -> Path:
    model.save(path)
    path.with_name(path.name + ".preprocess.json").write_text(
        json.dumps(Preprocessing.simple((SIZE, SIZE)).to_dict()))
    path.with_name(path.name + ".classes.json").write_text(json.dumps(CLASSES))
    return path


@pytest.fixture(scope="module")
def tiny_keras(tmp_path_factory) -> Path:
    return _save_with_sidecars(_tiny(), tmp_path_factory.mktemp("tiny") / "tiny.keras")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    shapes.generate(root, n_per_class=6, size=SIZE, seed=5, classes=CLASSES)
    return root


def _compress(src: Path, out: Path, *extra: str) -> dict:
    assert compress_main([str(src), "-o", str(out), "-q", *extra]) == 0
    return json.loads(report_paths(out)[1].read_text())


@pytest.fixture(scope="module")
def compressed(tiny_keras: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("c6") / "c6.keras"
    _compress(tiny_keras, out)
    return out


def _kernels(path: Path) -> dict[str, np.ndarray]:
    model = sources.load_keras(path)
    return {la.name: la.get_weights()[0] for la in compressible_layers(model)}


def _quantized(path: Path) -> tuple[bytes, object]:
    src = sources.resolve(str(path))
    return src.tflite, src


# --- schedule and options --------------------------------------------------------------------

def test_paper_schedule_by_layer_name():
    # Iandola et al. 2016, Table 1: the fraction kept per layer.
    assert paper_density("conv1") == 1.0
    assert paper_density("conv10") == 0.20
    assert [paper_density(f"fire2_{n}") for n in ("squeeze1x1", "expand1x1", "expand3x3")] \
        == [1.0, 1.0, 0.33]
    assert [paper_density(f"fire6_{n}") for n in ("squeeze1x1", "expand1x1", "expand3x3")] \
        == [1.0, 0.5, 0.33]
    assert [paper_density(f"fire7_{n}") for n in ("squeeze1x1", "expand1x1", "expand3x3")] \
        == [0.5, 1.0, 0.33]
    assert [paper_density(f"fire9_{n}") for n in ("squeeze1x1", "expand1x1", "expand3x3")] \
        == [0.5, 1.0, 0.30]
    assert paper_density("fire4_bypass_conv") == BYPASS_DENSITY
    assert paper_density("dense_1") is None


def test_option_syntax():
    s = parse_sparsity("paper,conv10=0.9,fire*_expand3x3=0.5")
    assert s.default is None and s.value("conv10") == 0.9 and s.value("fire3_expand3x3") == 0.5
    assert s.value("fire3_expand1x1") is None  # the paper's
    s = parse_sparsity("0.6, conv1=0")
    assert s.value("fire2_squeeze1x1") == 0.6 and s.value("conv1") == 0.0
    assert parse_sparsity("none").value("conv10") == 0.0
    b = parse_bits("4,conv1=8")
    assert b.value("conv1") == 8 and b.value("conv10") == 4
    assert parse_bits("conv1=8").value("fire2_squeeze1x1") == DEFAULT_BITS


def test_pruning_densities_exact_per_layer(tiny_keras, compressed):
    before = _kernels(tiny_keras)
    after = _kernels(compressed)
    for name, k in after.items():
        want = kept_count(k.size, paper_density(name))
        assert np.count_nonzero(k) == want, name
        # Magnitude pruning: no pruned weight is larger than a kept one.
        orig = np.abs(before[name])
        if want < k.size:
            assert orig[k == 0].max() <= orig[k != 0].min(), name


def test_sparsity_overrides_and_bypass_convs(tmp_path):
    model = _save_with_sidecars(_tiny(bypass="complex"), tmp_path / "bp.keras")
    out = tmp_path / "bp_c.keras"
    _compress(model, out, "--sparsity", "0.5,fire9_expand3x3=0.7,conv1=0", "--bits",
              "4,conv10=8")
    side = {la["name"]: la for la in json.loads(sidecar_path(out).read_text())["layers"]}
    kernels = _kernels(out)
    assert "fire2_bypass_conv" in side
    for name, k in kernels.items():
        density = {"fire9_expand3x3": 0.3, "conv1": 1.0}.get(name, 0.5)
        assert np.count_nonzero(k) == kept_count(k.size, density), name
        assert side[name]["bits"] == (8 if name == "conv10" else 4)


# --- weight sharing ---------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 300), k=st.integers(1, 64), seed=st.integers(0, 2**16))
def test_kmeans_labels_are_nearest_centroids(n, k, seed):
    rng = np.random.default_rng(seed)
    values = rng.standard_normal(n) * rng.choice([1e-3, 1.0, 30.0])
    c, labels = kmeans_1d(values, k)
    assert c.size <= k and np.all(np.diff(c) > 0)
    dist = np.abs(values[:, None] - c[None, :])
    assert np.allclose(dist[np.arange(n), labels], dist.min(axis=1))


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("bits", [2, 4, 6])
def test_codebook_size_includes_zero(bits, per_channel):
    rng = np.random.default_rng(bits)
    kernel = rng.standard_normal((3, 3, 16, 24)).astype(np.float32)
    mask = prune_mask(kernel, 0.4)
    code = share_weights("w", kernel, mask, bits, per_channel, 0.4)
    code.snap_to_int8()
    assert code.values_per_group() <= 2**bits
    q = int8_filter(code.kernel(), per_channel)
    groups = q.reshape(q.shape[0], -1) if per_channel else q.reshape(1, -1)
    assert max(len(np.unique(r)) for r in groups) <= 2**bits
    # Zero takes one entry, the nonzero values the rest (at 6 bits some centroids of a bell
    # curve's crowded middle are closer than one int8 step and merge).
    nonzero = max(len(np.unique(r[r != 0])) for r in groups)
    assert nonzero == 2**bits - 1 if bits <= 4 else 2**bits // 2 < nonzero < 2**bits
    # Pruned weights are exact zeros, kept ones never round to zero.
    assert np.array_equal(np.moveaxis(mask, -1, 0), q != 0)
    # Snapping puts the float weights exactly on the int8 grid.
    scale = np.abs(code.kernel()).max() / 127 if not per_channel else None
    if scale is not None:
        assert np.allclose(code.kernel() / scale, np.round(code.kernel() / scale), atol=1e-4)


def test_unpruned_layer_uses_all_entries():
    kernel = np.random.default_rng(0).standard_normal((1, 1, 32, 64)).astype(np.float32)
    code = share_weights("w", kernel, np.ones(kernel.shape, bool), 3, False, 1.0)
    code.snap_to_int8()
    assert len(np.unique(code.kernel())) == 8


# --- int8 quantization and the sidecar ---------------------------------------------------------

def test_int8_structure_survives_per_tensor(compressed):
    buf, src = _quantized(compressed)
    g = read_model_bytes(buf)
    kernels = _kernels(compressed)
    filters = filters_by_layer(g, list(kernels))
    assert set(filters) == set(kernels)
    for name, k in kernels.items():
        t = filters[name]
        q = t.array()
        assert not t.quant.per_channel, name  # one scale: one int8 table per tensor
        assert len(np.unique(q)) <= 2**6, name
        assert np.array_equal(q != 0, np.moveaxis(k, -1, 0) != 0), name
        # The report's int8 filter is exactly TFLite's.
        assert np.array_equal(q, int8_filter(k, per_channel=False)), name
    assert src.compression is not None
    assert src.compression["weight_quantization"] == "per-tensor"


def test_per_channel_codebook_keeps_per_channel_scales(tiny_keras, tmp_path):
    out = tmp_path / "ch.keras"
    _compress(tiny_keras, out, "--codebook", "channel", "--bits", "3")
    buf, _ = _quantized(out)
    g = read_model_bytes(buf)
    kernels = _kernels(out)
    for name, t in filters_by_layer(g, list(kernels)).items():
        q = t.array()
        assert t.quant.per_channel or q.shape[0] == 1, name
        assert max(len(np.unique(r)) for r in q.reshape(q.shape[0], -1)) <= 8, name
        assert np.array_equal(q, int8_filter(kernels[name], per_channel=True)), name


def test_sidecar_decides_the_quantization(compressed, tmp_path):
    bare = tmp_path / "bare.keras"
    bare.write_bytes(compressed.read_bytes())  # the same weights, no sidecar
    buf, src = _quantized(bare)
    assert src.compression is None
    g = read_model_bytes(buf)
    filters = filters_by_layer(g, list(_kernels(bare)))
    # TFLite's default: a scale per channel, so one tensor codebook becomes many int8 tables.
    assert all(t.quant.per_channel or t.shape[0] == 1 for t in filters.values())
    q = max((t.array() for t in filters.values()), key=lambda a: a.size)
    assert len(np.unique(q)) > 2**6


def test_broken_structure_fails_clearly(compressed, tmp_path):
    model = tmp_path / "m.keras"
    model.write_bytes(compressed.read_bytes())
    side = json.loads(sidecar_path(compressed).read_text())
    side["layers"][3]["bits"] = 2
    sidecar_path(model).write_text(json.dumps(side))
    with pytest.raises(ModelError, match=r"layer 'fire2_expand3x3': its int8 filter takes "
                                         r"\d+ distinct values per tensor, more than 2\^2 = 4"):
        _quantized(model)
    side = json.loads(sidecar_path(compressed).read_text())
    side["layers"][0]["kept"] = 10
    sidecar_path(model).write_text(json.dumps(side))
    with pytest.raises(ModelError, match="layer 'conv1': the int8 filter has 1,728 nonzero "
                                         "weights but sqz-compress kept 10"):
        _quantized(model)


def test_litert_reference_and_sqz_run_it_bit_exact(compressed, sqz_runner):
    buf, _ = _quantized(compressed)
    g = read_model_bytes(buf)
    scale, zp = g.tensor(g.inputs[0]).quant.single()
    x = np.random.default_rng(3).random((2, SIZE, SIZE, 3)).astype(np.float32)
    q = quantize_input(x, scale, zp)
    ref = reference.run_reference(buf, q, want_logits=True)
    assert np.unique(ref.logits.reshape(2, -1)).size > 1  # not a dead network
    outputs, logits = sqz_runner.run(buf, q, logits=True)
    assert np.array_equal(logits, ref.logits.reshape(2, -1))
    if not ref.softmax_aborted:
        assert np.array_equal(outputs, ref.outputs.reshape(2, -1))


@pytest.mark.parametrize("board", ["mps2-an386", "mps3-an547", "esp32s3-qemu"])
def test_compressed_network_bit_exact_on_the_boards(compressed, board, tmp_path):
    """The whole compressed network on each emulated board, with its packed kernels: as
    sqz-convert packs it by default (--packing auto: every filter, as these boards have the
    RAM), as --packing ram packs it (conv1 kept plain), and with every filter packed at fixed
    rows per call and blocks (3 rows and 64-channel blocks, and one row per call
    unstreamed)."""
    from qemu_batch import QemuBatch, missing_tools

    from converter.device import qemu

    missing = missing_tools(board)
    if missing:
        pytest.skip(f"{', '.join(missing)} not found: {qemu.BOARDS[board].install_hint}")
    buf, _ = _quantized(compressed)
    g = read_model_bytes(buf)
    scale, zp = g.tensor(g.inputs[0]).quant.single()
    q = quantize_input(np.random.default_rng(5).random((2, SIZE, SIZE, 3)).astype(np.float32),
                       scale, zp)
    batch = QemuBatch(board, tmp_path)
    for kw in ({}, {"packing": "ram"},
               {"packing": "flash", "rows_per_call": 3, "decode_block": 64},
               {"packing": "flash", "stream": "off", "rows_per_call": 1}):
        batch.add(buf, q, **kw)
    packed = [s for s in batch.cases[2].conv.lowered.steps
              if getattr(s, "packed", None) is not None]
    assert packed and any(s.rows_per_call == 3 for s in packed)
    ref = reference.run_reference(buf, q).outputs.reshape(len(q), -1)
    for i, ours in enumerate(batch.run()):
        assert np.array_equal(ours, ref), f"variant {i} differs on {board}"


@pytest.mark.parametrize("target", ["host", "mps2-an386", "mps3-an547", "esp32s3-qemu"])
def test_packing_keeps_the_peak_arena_of_plain_filters(compressed, target):
    """--packing ram packs a filter only where the peak arena stays that of plain
    filters: here conv1's decoded block would raise it on every board, so conv1 stays int8 and
    says so in the report and the flash advice; --packing flash packs it and the arena grows."""
    from converter.errors import BudgetError
    from converter.passes.budget import check_budget
    from converter.report import build_report

    buf, _ = _quantized(compressed)
    conv = {mode: convert.convert_tflite(buf, targets.load(target), model_name="m",
                                         source_name="m.tflite", packing=mode, psram_budget=0)
            for mode in ("ram", "flash", "off")}
    arena = {mode: c.layout.arena_bytes for mode, c in conv.items()}
    flash = {mode: c.budget.weight_bytes for mode, c in conv.items()}
    assert arena["ram"] == arena["off"] < arena["flash"]
    assert flash["flash"] < flash["ram"] < flash["off"]
    steps = zip(conv["ram"].lowered.steps, conv["flash"].lowered.steps, strict=True)
    kept = []
    for ram, every in ((r, f) for r, f in steps if isinstance(r, ConvStep)):
        if every.packed is None:  # packing does not shrink it: plain in every mode
            assert ram.packed is None and ram.kept_plain is None
            continue
        assert (ram.packed is None) == (ram.kept_plain is not None)
        if ram.kept_plain:
            kept.append(ram)
            assert ram.kept_plain.encoding.stream == every.packed.stream
            assert ram.kept_plain.arena_growth > 0
            assert ram.kept_plain.flash_saving == ram.weight_bytes - every.weight_bytes
    assert [s.name for s in kept] == ["conv1"]
    saving = kept[0].kept_plain.flash_saving
    assert flash["ram"] - flash["flash"] == saving

    text = build_report(conv["ram"], calibration="test").markdown()
    assert (f"1 filter(s) stay plain int8 although packing shrinks them (conv1): their decoded "
            f"block would raise the peak arena, and `--packing ram` keeps it that of plain "
            f"filters. `--packing flash` packs them ({saving:,} B less flash)") in text
    growth = kept[0].kept_plain.arena_growth
    assert f"| conv1 | int8 (packed: {saving:,} B less, arena +{growth:,} B) |" in text
    c = conv["ram"]
    with pytest.raises(BudgetError) as e:
        check_budget(c.lowered, c.layout, c.target, flash_budget=1000)
    assert f"--packing flash packs 1 more filter(s), {saving / 1024:.1f} KiB ({saving:,} B) " \
        "less, for a larger arena" in str(e.value)
    assert "| packing (`--packing`) | ram |" in text
    with pytest.raises(BudgetError) as e:
        check_budget(conv["flash"].lowered, conv["flash"].layout, c.target, ram_budget=1000,
                     psram_budget=0, packing="flash")
    assert "; --packing ram keeps the arena of plain int8 filters;" in str(e.value)
    with pytest.raises(BudgetError) as e:
        check_budget(conv["off"].lowered, conv["off"].layout, c.target, flash_budget=1000,
                     packing="off")
    assert "filter(s) with few distinct values would be stored packed" in str(e.value)


def test_auto_packing_packs_what_the_boards_ram_allows(compressed, tmp_path):
    """--packing auto (the default) packs every filter packing shrinks while the whole
    firmware's RAM fits the board's SRAM: on mps2-an386 (4 MiB) all of them, as --packing
    flash, and the report says what the arena grew by; with a RAM budget that leaves the arena
    less than that, the filters whose blocks would not fit stay plain, and the report says
    why; the rest of the room goes to rows per call and blocks. sqz.json records the bound, so
    the export plans the same filters packed, with the same rows."""
    from converter.export import ModelCode
    from converter.passes.budget import arena_room
    from converter.report import build_report

    buf, _ = _quantized(compressed)
    board = targets.load("mps2-an386")

    def conv(mode: str, **kw):
        return convert.convert_tflite(buf, board, model_name="m", source_name="m.tflite",
                                      packing=mode, psram_budget=0, **kw)

    plain, ram, flash, auto = conv("off"), conv("ram"), conv("flash"), conv("auto")
    assert auto.packing_room == arena_room(board, auto.lowered)
    assert [s.packed is not None for s in auto.lowered.steps if isinstance(s, ConvStep)] == \
        [s.packed is not None for s in flash.lowered.steps if isinstance(s, ConvStep)]
    assert auto.budget.weight_bytes == flash.budget.weight_bytes < ram.budget.weight_bytes
    grew = auto.layout.arena_bytes - plain.layout.arena_bytes
    assert grew > 0 and auto.lowered.plain_arena == plain.layout.arena_bytes
    text = build_report(auto, calibration="test").markdown()
    assert (f"| packing (`--packing`) | auto: the arena grew by {grew:,} B over plain int8 "
            f"filters' {plain.layout.arena_bytes:,} B (the board's RAM leaves it "
            f"{auto.packing_room:,} B) |") in text
    assert "run on the portable packed kernel" not in text  # Armv7E-M has a packed variant
    # The room also buys rows per call and larger blocks: less decoding (as modelled) than the
    # same filters packed at the arena packing left (--packing flash), within the room.
    from converter.passes import rows

    def decoding(c) -> int:
        return sum(rows._decode_overhead(c.lowered, s) for s in c.lowered.steps
                   if rows.makes_rows(s))

    assert decoding(auto) < decoding(flash)
    assert flash.layout.arena_bytes < auto.layout.arena_bytes <= auto.packing_room
    s3 = convert.convert_tflite(buf, targets.load("esp32s3"), model_name="m",
                                source_name="m.tflite", psram_budget=0)
    assert {s.kernel for s in s3.lowered.steps if getattr(s, "packed", None) is not None} == \
        {"sqz_conv_s8_pie_packed_row"}  # and so has the ESP32-S3
    assert "run on the portable packed kernel" not in \
        build_report(s3, calibration="test").markdown()
    # Helium's kernels take plain filters only: the report says what packing costs.
    m55 = convert.convert_tflite(buf, targets.load("mps3-an547"), model_name="m",
                                 source_name="m.tflite", psram_budget=0)
    names = [s.name for s in m55.lowered.steps if getattr(s, "packed", None) is not None]
    assert names and (f"{len(names)} packed filter(s) run on the portable packed kernel "
                      f"({', '.join(names)}): this board's own kernels do not take them packed"
                      ) in build_report(m55, calibration="test").markdown()

    # A budget whose room lies between plain filters' arena and every filter packed.
    others = -arena_room(board, auto.lowered, ram_budget=0)
    room = (ram.layout.arena_bytes + flash.layout.arena_bytes) // 2
    tight = conv("auto", ram_budget=others + room)
    assert tight.packing_room == room
    assert ram.layout.arena_bytes <= tight.layout.arena_bytes <= room  # rows included
    assert flash.budget.weight_bytes <= tight.budget.weight_bytes <= ram.budget.weight_bytes
    kept = [s for s in tight.lowered.steps if getattr(s, "kept_plain", None)]
    assert kept and all(s.kept_plain.arena_bound == room for s in kept)
    text = build_report(tight, calibration="test").markdown()
    assert (f"their decoded block would take the arena past the {room:,} B the board's RAM "
            "leaves it (`--packing auto`)") in text
    assert tight.budget.ram.internal <= others + room

    out = tmp_path / "m"
    convert.write(tight, buf, out)
    meta = json.loads((out / "sqz.json").read_text())
    assert (meta["packing"], meta["packing_room"]) == ("auto", room)
    again = ModelCode(out, None, board, buf).render("lib_")
    assert again == tight.render("lib_")


# --- determinism, sidecars, report ------------------------------------------------------------

def test_deterministic(tiny_keras, compressed, tmp_path):
    again = tmp_path / "again.keras"
    _compress(tiny_keras, again)
    assert sidecar_path(again).read_bytes() == \
        sidecar_path(compressed).read_bytes()
    a, b = _kernels(compressed), _kernels(again)
    assert all(np.array_equal(a[n], b[n]) for n in a)
    md_a = report_paths(compressed)[0].read_text()
    md_b = report_paths(again)[0].read_text()
    assert md_a == md_b


def test_sidecars_carried_over(tiny_keras, compressed):
    for suffix in (".preprocess.json", ".classes.json"):
        assert compressed.with_name(compressed.name + suffix).read_text() and \
            json.loads(compressed.with_name(compressed.name + suffix).read_text()) == \
            json.loads(tiny_keras.with_name(tiny_keras.name + suffix).read_text())
    side = json.loads(sidecar_path(compressed).read_text())
    assert side["format"] == SIDECAR_FORMAT
    assert side["weight_quantization"] == "per-tensor"
    conv10 = next(la for la in side["layers"] if la["name"] == "conv10")
    assert conv10["codebook"] == "tensor" and conv10["bits"] == 6
    assert conv10["target_density"] == 0.2 and conv10["paper_density"] == 0.2
    k = _kernels(compressed)["conv10"]
    assert sorted(set(np.unique(k)) - {0.0}) == pytest.approx(conv10["centroids"][0])


def test_report_numbers(compressed):
    md, js = report_paths(compressed)
    report = json.loads(js.read_text())
    kernels = _kernels(compressed)
    rows = {r["layer"]: r for r in report["layers"]}
    assert set(rows) == set(kernels)
    for name, k in kernels.items():
        r = rows[name]
        q = int8_filter(k, per_channel=False)
        assert r["weights"] == k.size and r["kept"] == np.count_nonzero(k)
        assert r["density"] == pytest.approx(r["kept"] / r["weights"])
        assert r["shape_ohwi"] == list(q.shape) and r["dense_bytes"] == q.size
        oc = q.shape[0]
        assert r["bias_bytes"] == 4 * oc and r["requant_bytes"] == 5 * oc
    # Bytes on the device: the packing module's encoding of the real int8 filter.
    enc = packing.encode(int8_filter(kernels["fire9_expand3x3"], per_channel=False))
    assert rows["fire9_expand3x3"]["filter_bytes"] == enc.nbytes
    assert rows["fire9_expand3x3"]["encoding"] == enc.kind
    t = report["totals"]
    assert t["filter_bytes"] == sum(r["filter_bytes"] for r in rows.values())
    assert t["flash_bytes"] == t["filter_bytes"] + t["bias_bytes"] + t["requant_bytes"]
    assert t["filter_bytes"] < t["dense_bytes"]
    text = md.read_text()
    assert f"**{t['flash_bytes']:,} B**" in text
    r = rows["conv10"]
    assert (f"| conv10 | {'x'.join(map(str, r['shape_ohwi']))} | {r['weights']:,} | 20% | "
            f"{pct(r['density'])} | {r['kept']:,} | 6 | tensor |") in text
    assert "| fire9 | 197,184 | 77,581 |" in text  # Table 1 beside ours
    assert "Post-training compression" in text


# --- fine-tuning ------------------------------------------------------------------------------

def test_finetune_keeps_mask_and_codebook(tiny_keras, compressed, tiny_data, tmp_path):
    out = tmp_path / "ft.keras"
    report = _compress(tiny_keras, out, "--finetune", str(tiny_data), "--epochs", "3",
                       "--retrain-epochs", "0", "--batch-size", "6", "--lr", "3e-3",
                       "--val-split", "0.34")
    post, tuned = _kernels(compressed), _kernels(out)
    changed = 0
    for name, k in tuned.items():
        assert np.array_equal(k != 0, post[name] != 0), name  # the mask stays
        assert len(np.unique(k)) <= 2**6, name
        # Weights that shared a centroid still share one: the assignment is fixed, only the
        # centroids moved.
        before, after = post[name][k != 0], k[k != 0]
        for v in np.unique(before):
            assert len(np.unique(after[before == v])) == 1, name
        changed += not np.array_equal(k, post[name])
    ft = report["finetune"]
    # The centroids moved where gradients reach them (behind the 1-filter squeezes of this
    # narrow random network, some ReLUs are dead and some kernels get no gradient).
    # The kept epoch is the best by held-out accuracy, then loss, the start (0) included.
    history = ft["centroids"]["history"]
    best = max(history, key=lambda h: (h["val_accuracy"], -h["val_loss"], -h["epoch"]))
    assert ft["centroids"]["best_epoch"] == best["epoch"] > 0
    assert ft["centroids"]["heldout_accuracy_after"] == pytest.approx(best["val_accuracy"])
    assert changed >= 3 and not np.array_equal(tuned["conv10"], post["conv10"])
    assert ft["retrain"] is None and ft["centroids"]["epochs"] == 3
    assert ft["train_images"] + ft["heldout_images"] == 18
    assert len(history) == 4
    buf, _ = _quantized(out)  # still passes sqz-convert's structure check
    assert buf


def test_retrain_then_share_keeps_mask(tiny_keras, compressed, tiny_data, tmp_path):
    out = tmp_path / "rt.keras"
    report = _compress(tiny_keras, out, "--finetune", str(tiny_data), "--epochs", "1",
                       "--retrain-epochs", "1", "--batch-size", "6", "--bits", "4",
                       "--val-split", "0.34", "--augment", "none")
    post, tuned = _kernels(compressed), _kernels(out)
    for name, k in tuned.items():
        assert np.array_equal(k != 0, post[name] != 0), name  # same mask as post-training
        assert len(np.unique(k)) <= 2**4, name
    ft = report["finetune"]
    assert ft["retrain"]["epochs"] == 1 and ft["centroids"]["epochs"] == 1
    assert ft["augment"] == []
    text = report_paths(out)[0].read_text()
    assert "the kept weights retrained for 1 epoch(s)" in text
    assert "the centroids trained for 1 epoch(s)" in text


def test_centroid_gradient_is_sum_of_weight_gradients():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    kernel = rng.standard_normal((3, 3, 4, 5)).astype(np.float32)
    code = share_weights("w", kernel, prune_mask(kernel, 0.5), 3, False, 0.5)
    book = tf.Variable(code.padded().astype(np.float32))
    x = tf.constant(rng.standard_normal((2, 6, 6, 4)).astype(np.float32))
    mask = tf.constant(code.mask.astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        w = tf.gather(tf.reshape(book, [-1]), code.group_index()) * mask
        tape.watch(w)
        loss = tf.reduce_sum(tf.nn.conv2d(x, w, 1, "SAME") ** 2)
    dw = tape.gradient(loss, w).numpy()
    dc = tape.gradient(loss, book).numpy().reshape(-1)
    want = np.bincount(code.group_index()[code.mask], weights=dw[code.mask],
                       minlength=dc.size)
    assert np.allclose(dc, want, rtol=1e-4, atol=1e-3)


# --- bad input --------------------------------------------------------------------------------

def _fails(argv, capsys) -> tuple[int, str]:
    rc = compress_main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, " ".join(err.split())


@pytest.mark.parametrize("argv, code, message", [
    (["--bits", "9"], 2, "--bits: bits must be a whole number from 2 to 8"),
    (["--bits", "six"], 2, "--bits: bits must be a whole number from 2 to 8"),
    (["--bits", "6,conv1=1"], 2, "--bits conv1=1: bits must be a whole number from 2 to 8"),
    (["--sparsity", "1"], 2, "--sparsity: a sparsity is the fraction of weights set to zero, a "
                             "number from 0 up to (not including) 1"),
    (["--sparsity", "paper,conv10=-0.1"], 2, "--sparsity conv10=-0.1: a sparsity is the "
                                             "fraction"),
    (["--sparsity", "0.5,0.6"], 2, "more than one value for all layers"),
    (["--sparsity", "0.5,,conv1=0"], 2, "empty item"),
    (["--sparsity", "fire99_expand3x3=0.7"], 2, "--sparsity: no layer of the model matches "
                                                "'fire99_expand3x3'; its layers are conv1, "
                                                "fire2_squeeze1x1"),
    (["--codebook", "row"], 2, "argument --codebook: invalid choice: 'row'"),
    (["--epochs", "2"], 2, "--epochs set fine-tuning options; add --finetune DATA_DIR"),
    (["--finetune", "/nonexistent/data"], 3, "--finetune /nonexistent/data: no such folder"),
])
def test_cli_errors(tiny_keras, tmp_path, capsys, argv, code, message):
    rc, err = _fails([str(tiny_keras), "-o", str(tmp_path / "x.keras"), *argv], capsys)
    assert rc == code, err
    assert message in err
    assert not (tmp_path / "x.keras").exists()


def test_cli_errors_model_and_output(tiny_keras, tmp_path, capsys):
    rc, err = _fails([str(tiny_keras), "-o", str(tmp_path / "x.tflite")], capsys)
    assert rc == 2 and "the compressed model must be a .keras file" in err
    t = tmp_path / "m.tflite"
    t.write_bytes(b"x")
    rc, err = _fails([str(t), "-o", str(tmp_path / "x.keras")], capsys)
    assert rc == 2 and "a .tflite is already int8; sqz-compress needs the float model" in err
    rc, err = _fails(["nosuchnet", "-o", str(tmp_path / "x.keras")], capsys)
    assert rc == 3 and "nosuchnet: no such model file or builtin model" in err
    rc, err = _fails([str(tiny_keras), "-o", str(tmp_path / "no" / "x.keras")], capsys)
    assert rc == 3 and "does not exist" in err


def test_finetune_class_mismatch(tiny_keras, tmp_path, capsys):
    data = tmp_path / "data"
    shapes.generate(data, n_per_class=2, size=SIZE, seed=1, classes=["circle", "square"])
    rc, err = _fails([str(tiny_keras), "-o", str(tmp_path / "x.keras"), "--finetune",
                      str(data)], capsys)
    assert rc == 3 and "2 class subfolders but the model has 3 outputs" in err


def test_layer_values_last_override_wins():
    v = LayerValues(0.1, (("fire*", 0.2), ("fire2_*", 0.3)))
    assert (v.value("conv1"), v.value("fire3_squeeze1x1"), v.value("fire2_expand1x1")) == \
        (0.1, 0.2, 0.3)


def test_finetune_deterministic(tiny_keras, tiny_data, tmp_path):
    args = ["--finetune", str(tiny_data), "--epochs", "1", "--retrain-epochs", "1",
            "--batch-size", "6", "--val-split", "0.34"]
    a, b = tmp_path / "a.keras", tmp_path / "b.keras"
    _compress(tiny_keras, a, *args)
    _compress(tiny_keras, b, *args)
    assert sidecar_path(a).read_bytes() == sidecar_path(b).read_bytes()
    ka, kb = _kernels(a), _kernels(b)
    assert all(np.array_equal(ka[n], kb[n]) for n in ka)


def test_sqz_convert_keeps_the_record(compressed, tmp_path):
    from converter.commands.convert import convert_main

    out = tmp_path / "host"
    assert convert_main([str(compressed), "--target", "host", "--out", str(out), "-q"]) == 0
    assert json.loads((out / "compress.json").read_text()) == \
        json.loads(sidecar_path(compressed).read_text())
    g = read_model_bytes((out / "model.tflite").read_bytes())
    assert not any(t.quant.per_channel
                   for t in filters_by_layer(g, list(_kernels(compressed))).values())
