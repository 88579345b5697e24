"""The compression report: per layer the density, bits, weights kept and the bytes of the int8
filter on the device, beside the paper's Table 1 (OUT.report.md / OUT.report.json)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .algorithm import LayerCode, int8_filter
from .options import BIAS_BYTES, PAPER_PARAMS, PAPER_TOTAL, REQUANT_BYTES, module_of, paper_density

# --- the report --------------------------------------------------------------------------------

def layer_rows(model, codes: list[LayerCode]) -> list[dict[str, Any]]:
    """Per layer: what was done and what its int8 filter costs on the device."""
    from ..ir import packing

    rows = []
    for c in codes:
        kernel = model.get_layer(c.name).get_weights()[0]
        q = int8_filter(kernel, c.per_channel)
        enc = packing.encode(q)
        groups = q.reshape(q.shape[0], -1) if c.per_channel else q.reshape(1, -1)
        kept = int(np.count_nonzero(q))
        rows.append({
            "layer": c.name,
            "shape_ohwi": list(q.shape),
            "weights": c.size,
            "paper_density": paper_density(c.name),
            "target_density": c.target_density,
            "kept": kept,
            "density": kept / c.size,
            "bits": c.bits,
            "codebook": "channel" if c.per_channel else "tensor",
            "int8_values_max": max(len(np.unique(r)) for r in groups),
            "encoding": enc.kind,
            "index_bits": enc.bits,
            "filter_bytes": enc.nbytes,
            "dense_bytes": int(q.size),
            "bias_bytes": BIAS_BYTES * c.out_channels,
            "requant_bytes": REQUANT_BYTES * c.out_channels,
        })
    return rows


def totals(rows: list[dict[str, Any]]) -> dict[str, int]:
    t = {k: sum(r[k] for r in rows) for k in ("weights", "kept", "filter_bytes", "dense_bytes",
                                               "bias_bytes", "requant_bytes")}
    t["flash_bytes"] = t["filter_bytes"] + t["bias_bytes"] + t["requant_bytes"]
    t["dense_flash_bytes"] = t["dense_bytes"] + t["bias_bytes"] + t["requant_bytes"]
    return t


def paper_modules(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Parameters (weights + biases) per module beside Table 1's, for the modules it lists."""
    out = []
    for module, (before, after) in PAPER_PARAMS.items():
        mine = [r for r in rows if module_of(r["layer"]) == module]
        if not mine:
            continue
        biases = sum(r["bias_bytes"] // BIAS_BYTES for r in mine)
        out.append({"module": module, "paper_before": before, "paper_after": after,
                    "before": sum(r["weights"] for r in mine) + biases,
                    "after": sum(r["kept"] for r in mine) + biases})
    return out


def pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.0f}%" if abs(100 * v - round(100 * v)) < 1e-9 \
        else f"{100 * v:.1f}%"


def report_markdown(record: dict[str, Any]) -> str:
    rows, t = record["layers"], record["totals"]
    lines = [
        f"# sqz-compress report: {record['model']}",
        "",
        f"Source: `{record['source']}`. Sparsity `{record['sparsity']}`, bits `{record['bits']}`, "
        f"codebook per {record['codebook']}; the int8 weights are quantized "
        f"{record['weight_quantization']}.",
        "",
        "Density is the fraction of weights kept (what the paper's Table 1 calls sparsity). "
        "Bytes are the int8 filter on the device in its smallest encoding (converter.packing: "
        "dense int8, packed b-bit codebook indices, or sparse with Rice-coded zero runs), "
        "codebooks and headers included.",
        "",
        "| layer | filter (OHWI) | weights | paper density | density | kept | bits | codebook | "
        "int8 values | encoding | bytes | dense int8 B |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['layer']} | {'x'.join(map(str, r['shape_ohwi']))} | {r['weights']:,} | "
            f"{pct(r['paper_density'])} | {pct(r['density'])} | {r['kept']:,} | {r['bits']} | "
            f"{r['codebook']} | {r['int8_values_max']} | {r['encoding']}"
            f"{'' if r['encoding'] == 'dense' else ' ' + str(r['index_bits']) + '-bit'} | "
            f"{r['filter_bytes']:,} | {r['dense_bytes']:,} |")
    lines += [
        f"| **total** | | {t['weights']:,} | | {pct(t['kept'] / t['weights'])} | "
        f"{t['kept']:,} | | | | | **{t['filter_bytes']:,}** | {t['dense_bytes']:,} |",
        "",
        "Flash for the weights on the device with every filter packed, as "
        "`sqz-convert --packing flash` stores them (per output channel: an int32 bias, "
        f"{BIAS_BYTES} B, and a requantization multiplier and shift, {REQUANT_BYTES} B). The "
        "default, `--packing auto`, packs them all while the whole firmware's RAM fits the "
        "board's SRAM and keeps plain int8 the filters whose decoded blocks would not fit: "
        "its report.md names them and says what the arena grew by.",
        "",
        "| | compressed | dense int8 |",
        "|---|---:|---:|",
        f"| filters | {t['filter_bytes']:,} B | {t['dense_bytes']:,} B |",
        f"| biases (int32) | {t['bias_bytes']:,} B | {t['bias_bytes']:,} B |",
        f"| requantization constants | {t['requant_bytes']:,} B | {t['requant_bytes']:,} B |",
        f"| **total** | **{t['flash_bytes']:,} B** | {t['dense_flash_bytes']:,} B |",
    ]
    modules = record.get("paper_modules") or []
    if modules:
        lines += [
            "",
            "Parameters (weights and biases) per module beside Iandola et al. 2016, Table 1 "
            "(SqueezeNet v1.0 at 1000 classes; other versions and sizes differ in shape):",
            "",
            "| module | paper before | paper after | before | after |",
            "|---|---:|---:|---:|---:|",
        ]
        for m in modules:
            lines.append(f"| {m['module']} | {m['paper_before']:,} | {m['paper_after']:,} | "
                         f"{m['before']:,} | {m['after']:,} |")
        lines.append(f"| **total** | {PAPER_TOTAL[0]:,} | {PAPER_TOTAL[1]:,} | "
                     f"{sum(m['before'] for m in modules):,} | "
                     f"{sum(m['after'] for m in modules):,} |")
    ft = record.get("finetune")
    if ft:
        rt, cs = ft["retrain"], ft["centroids"]
        steps = (f"the kept weights retrained for {rt['epochs']} epoch(s) (kept epoch "
                 f"{rt['best_epoch']}, held-out accuracy {rt['heldout_accuracy_before']:.2%} "
                 f"pruned -> {rt['heldout_accuracy_after']:.2%}), then " if rt else "")
        lines += [
            "",
            f"Fine-tuned on `{ft['data']}` ({ft['train_images']} images, {ft['heldout_images']} "
            f"held out) at peak learning rate {ft['lr']:g}: {steps}the centroids trained for "
            f"{cs['epochs']} epoch(s) (kept epoch {cs['best_epoch']}, held-out accuracy "
            f"{cs['heldout_accuracy_before']:.2%} shared -> {cs['heldout_accuracy_after']:.2%}, "
            "float).",
        ]
    else:
        lines += ["", "Post-training compression: no fine-tuning."]
    lines += _val_lines(record)
    return "\n".join(lines) + "\n"


def _lost(drop: float) -> str:
    return f"{100 * drop:.1f} points lost" if drop > 0 else "none lost"


def _val_lines(record: dict[str, Any]) -> list[str]:
    """The held-out images (--val): the accuracy before and after, and --sparsity auto's
    sensitivity curves, choice and check."""
    val, sens = record.get("val"), record.get("sensitivity")
    lines = []
    if val:
        lost = val["accuracy_before"] - val["accuracy_after"]
        lines += ["", f"On the held-out images `{val['data']}` ({val['images']} images, never "
                      f"trained on), float: accuracy {val['accuracy_before']:.2%} before, "
                      f"{val['accuracy_after']:.2%} compressed ({_lost(lost)})."]
    if not sens:
        return lines
    base = sens["baseline_accuracy"]
    lines += [
        "", "## Sensitivity (`--sparsity auto`)", "",
        f"Each layer pruned alone to each density, the accuracy on the held-out images "
        f"(baseline {base:.2%}); probing a layer stops once it has lost 10 points. The "
        f"densities were then chosen for the fewest weights within {100 * sens['max_drop']:g} "
        f"point(s) of predicted loss, and checked with every layer pruned together: "
        f"{sens['checked_accuracy']:.2%} ({_lost(base - sens['checked_accuracy'])}).",
        ""]
    densities = sorted({p["density"] for c in sens["curves"] for p in c["points"]},
                       reverse=True)
    lines += ["| layer | weights | chosen | " + " | ".join(f"{d:g}" for d in densities) + " |",
              "|---|---:|---:|" + "---:|" * len(densities)]
    for c in sens["curves"]:
        at = {p["density"]: p["accuracy"] for p in c["points"]}
        cells = [f"{at[d]:.1%}" if d in at else "" for d in densities]
        lines.append(f"| {c['layer']} | {c['weights']:,} | "
                     f"{pct(sens['densities'][c['layer']])} | " + " | ".join(cells) + " |")
    if base - sens["checked_accuracy"] > sens["max_drop"] + 1e-12:
        lines += ["", f"Over the budget: the `--sparsity` overrides alone lose "
                      f"{100 * (base - sens['checked_accuracy']):.1f} points, so no other layer "
                      "was pruned."]
    if sens["undone"]:
        lines += ["", "Undone after the check: " + ", ".join(
            f"{s['layer']} at {s['density']:g}" for s in sens["undone"]) + "."]
    return lines
