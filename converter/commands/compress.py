"""sqz-compress: the command (options, the run, the summary); the work is in converter.compress."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from .. import __version__, atomic
from ..compress.algorithm import Plan, plan_layers, prune_model, share_model, weight_codes
from ..compress.finetune import FinetuneOptions, finetune
from ..compress.options import (
    CODEBOOKS,
    DEFAULT_BITS,
    MAX_BITS,
    MIN_BITS,
    LayerValues,
    parse_bits,
    parse_sparsity,
)
from ..compress.report import layer_rows, paper_modules, pct, report_markdown, totals
from ..compress.sensitivity import DEFAULT_MAX_DROP, analyse
from ..compress.sidecar import json_bytes, report_paths, sidecar_record
from ..errors import InputFileError, UsageError
from ..frontend.compression import sidecar_path

# --- the command -------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    from ..training.core import DEFAULT_AUGMENT, parse_augment
    from .common import Parser, parse_size

    p = Parser(prog="sqz-compress",
                description="Deep Compression for the device: prune, share weights with k-means "
                            "codebooks, optionally fine-tune; writes OUT.keras, its sidecars "
                            "and OUT.report.md/.json.")
    p.add_argument("model", help="a builtin name (squeezenet1_0, squeezenet1_1, ...) or a "
                                 ".keras/.h5 float model")
    p.add_argument("-o", "--output", required=True, type=Path, help="model to write (.keras)")
    p.add_argument("--weights", help="builtin models: load weights from an .npz")
    p.add_argument("--input-size", type=parse_size, help="builtin models: N or HxW")
    p.add_argument("--channels", type=int, help="builtin models: input channels")
    p.add_argument("--classes", type=int, help="builtin models: number of classes")
    p.add_argument("--preprocess", help="imagenet, simple, or a preprocessing JSON file "
                   "(default: the model's own .preprocess.json); written beside the output")
    c = p.add_argument_group("compression")
    c.add_argument("--sparsity", type=parse_sparsity, default=LayerValues(None),
                   help="fraction of each layer's weights set to zero: 'paper' (Table 1 of "
                        "the SqueezeNet paper, default), 'auto' (from each layer's measured "
                        "sensitivity on --val images, within --max-drop), 'none', a fraction "
                        "for every layer (e.g. 0.6), and/or per-layer overrides "
                        "LAYER=FRACTION, where LAYER may be a glob; comma-separated, e.g. "
                        "paper,conv10=0.9")
    c.add_argument("--val", metavar="DATA_DIR",
                   help="held-out labelled images, one subfolder per class, never trained on: "
                        "--sparsity auto measures and checks on them; the report gives the "
                        "accuracy on them before and after")
    c.add_argument("--max-drop", type=float, metavar="POINTS",
                   help="accuracy --sparsity auto may lose on --val, in percentage points "
                        f"(default {DEFAULT_MAX_DROP:g})")
    c.add_argument("--bits", type=parse_bits, default=LayerValues(DEFAULT_BITS),
                   help=f"codebook size 2^bits, zero included ({MIN_BITS}..{MAX_BITS}, default "
                        f"{DEFAULT_BITS}), and/or LAYER=BITS overrides, e.g. 4,conv1=8")
    c.add_argument("--codebook", choices=CODEBOOKS, default="tensor",
                   help="one codebook per weight tensor (default; the model is then quantized "
                        "with per-tensor scales) or per output channel")
    f = p.add_argument_group("fine-tuning (optional; the pruning mask stays): retrain the kept "
                             "weights, share them, train the centroids")
    f.add_argument("--finetune", metavar="DATA_DIR",
                   help="labelled images, one subfolder per class (the model's classes)")
    f.add_argument("--retrain-epochs", type=int,
                   help="first retrain the kept weights after pruning for this many epochs, as "
                        "Deep Compression does (default: as many as --epochs; 0 skips it)")
    f.add_argument("--epochs", type=int,
                   help="then train the centroids for this many epochs (default 8)")
    f.add_argument("--lr", type=float, help="peak Adam learning rate, cosine decay (default 3e-4)")
    f.add_argument("--batch-size", type=int, help="batch size (default 64)")
    f.add_argument("--augment", type=parse_augment,
                   help=f"as sqz-train: comma-separated augmentations or none (default "
                        f"{DEFAULT_AUGMENT})")
    f.add_argument("--val-split", type=float,
                   help="share of each class held out to pick the best epoch (default 0.1)")
    f.add_argument("--seed", type=int, help="seed for the split and shuffling (default 0)")
    p.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    p.add_argument("-V", "--version", action="version", version=f"sqz {__version__}")
    return p


def _finetune_options(args) -> FinetuneOptions | None:
    from ..training.core import DEFAULT_AUGMENT

    given = [n for n in ("epochs", "retrain_epochs", "lr", "batch_size", "augment",
                         "val_split", "seed")
             if getattr(args, n) is not None]
    if args.finetune is None:
        if given:
            raise UsageError(f"{', '.join('--' + g.replace('_', '-') for g in given)} set "
                             "fine-tuning options; add --finetune DATA_DIR (labelled images) "
                             "or drop them for post-training compression")
        return None
    defaults = FinetuneOptions(data=args.finetune, augment=tuple(DEFAULT_AUGMENT.split(",")))
    opts = dataclasses.replace(defaults, **{n: getattr(args, n) for n in given})
    if opts.retrain_epochs is None:
        opts = dataclasses.replace(opts, retrain_epochs=opts.epochs)
    for name, value, low in (("--epochs", opts.epochs, 1), ("--batch-size", opts.batch_size, 1),
                             ("--retrain-epochs", opts.retrain_epochs, 0),
                             ("--seed", opts.seed, 0)):
        if value < low:
            raise UsageError(f"{name} must be at least {low}, got {value}")
    if not (math.isfinite(opts.lr) and opts.lr > 0):
        raise UsageError(f"--lr must be a positive number, got {opts.lr}")
    if not 0.0 < opts.val_split < 1.0:
        raise UsageError(f"--val-split must be between 0 and 1 (exclusive), got "
                         f"{opts.val_split}")
    return opts


def _check_val_options(args, ft: FinetuneOptions | None) -> None:
    if args.sparsity.auto and args.val is None:
        raise UsageError("--sparsity auto measures each layer's accuracy as it is pruned: give "
                         "--val DATA_DIR, labelled images the model was not trained on (one "
                         "subfolder per class)")
    if args.max_drop is not None:
        if not args.sparsity.auto:
            raise UsageError("--max-drop bounds what --sparsity auto may lose; add --sparsity "
                             "auto or drop --max-drop")
        if not (math.isfinite(args.max_drop) and 0.0 <= args.max_drop < 100.0):
            raise UsageError(f"--max-drop {args.max_drop:g}: give the accuracy --sparsity auto "
                             "may lose in percentage points, from 0 up to 100, e.g. 1")
    if args.val is None:
        return
    if not Path(args.val).is_dir():
        raise InputFileError(f"--val {args.val}: no such folder; give a folder with one "
                             "subfolder of images per class")
    if ft is not None and Path(args.val).resolve() == Path(ft.data).resolve():
        raise UsageError(f"--val {args.val} is also --finetune's folder: held-out images must "
                         "be ones fine-tuning does not train on; give another folder")


def compress_command(args, out: Console) -> dict[str, Any]:

    output: Path = args.output
    if output.suffix != ".keras":
        raise UsageError(f"-o {output}: the compressed model must be a .keras file")
    if Path(args.model).suffix == ".tflite":
        raise UsageError(f"{args.model}: a .tflite is already int8; sqz-compress needs the float "
                         "model (.keras/.h5 or a builtin name). Compress that, then run "
                         "sqz-convert on the result")
    ft = _finetune_options(args)
    if ft is not None and not Path(ft.data).is_dir():
        raise InputFileError(f"--finetune {ft.data}: no such folder; give a folder with one "
                             "subfolder of images per class")
    _check_val_options(args, ft)
    if not output.parent.is_dir():
        raise InputFileError(f"-o {output}: folder {output.parent} does not exist")
    with atomic.output_file_lock(output, "-o"):
        return _compress_locked(args, out, output, ft)


def _compress_locked(args, out: Console, output: Path, ft: FinetuneOptions | None
                     ) -> dict[str, Any]:
    from ..frontend import sources
    from ..training.core import load_training_folder

    with out.status("Loading the model (TensorFlow)..."):
        from ..frontend.quantize import captured_output, model_input_shape

        with captured_output():
            km, keras_path, name, source_name = sources.float_model(
                args.model, weights=args.weights, input_size=args.input_size,
                channels=args.channels, classes=args.classes)
    shape = model_input_shape(km)
    plans = plan_layers(km, args.sparsity, args.bits)
    per_channel = args.codebook == "channel"
    # Recorded beside the output when it was given, came with the model or fed the fine-tuning.
    pre = None
    had_sidecar = keras_path is not None and keras_path.with_name(
        keras_path.name + sources.PREPROCESS_SIDECAR).is_file()
    if args.preprocess or had_sidecar or ft is not None or args.val is not None:
        pre = sources.preprocessing_for(args.preprocess, keras_path, shape)
    class_names = sources.class_names_beside(keras_path) if keras_path else None
    val = None
    if args.val is not None:
        vx, vy, vclasses = load_training_folder(args.val, pre)
        _check_classes(km, "--val", args.val, vclasses, class_names)
        val = (vx, vy)

    data = None
    if ft is not None:
        x, y, classes = load_training_folder(ft.data, pre)
        _check_classes(km, "--finetune", ft.data, classes, class_names)
        if val is not None and vclasses != classes:
            raise InputFileError(f"--val {args.val}: its classes ({', '.join(vclasses)}) differ "
                                 f"from --finetune {ft.data}'s ({', '.join(classes)}); give "
                                 "both the same class subfolders")
        class_names = classes
        data = (x, y, classes)

    console = None if args.quiet else out
    sens = None
    if args.sparsity.auto:
        plans, sens = _auto_plans(km, plans, args, val, out)
    if val is not None:
        from ..training.core import accuracy

        # The analysis measured the float model first and left it as it came.
        val_before = sens.baseline if sens is not None else accuracy(km, *val)
    with out.status("Pruning..."):
        masks = prune_model(km, plans)
    tuned = None
    if ft is not None and ft.retrain_epochs:
        retrained = finetune(km, weight_codes(km, masks), *data, pre, ft, console,
                             epochs=ft.retrain_epochs, centroids=False)
    with out.status("Sharing weights (k-means)..."):
        codes = share_model(km, plans, masks, per_channel)
    if ft is not None:
        shared = finetune(km, codes, *data, pre, ft, console, epochs=ft.epochs)
        tuned = {"data": str(ft.data), "lr": ft.lr, "batch_size": ft.batch_size,
                 "augment": list(ft.augment), "val_split": ft.val_split, "seed": ft.seed,
                 "images": shared["images"], "train_images": shared["train_images"],
                 "heldout_images": shared["heldout_images"],
                 "retrain": retrained if ft.retrain_epochs else None, "centroids": shared,
                 "heldout_accuracy_pruned": (retrained if ft.retrain_epochs
                                             else shared)["heldout_accuracy_before"],
                 "heldout_accuracy_after": shared["heldout_accuracy_after"]}
    with out.status("Measuring the device encoding of every filter..."):
        rows = layer_rows(km, codes)
    t = totals(rows)
    meta = {"model": name, "source": source_name, "sparsity": _spec_text(args.sparsity),
            "bits": _spec_text(args.bits), "codebook": args.codebook, "finetune": tuned}
    if val is not None:
        meta["val"] = {"data": str(args.val), "images": int(len(val[1])),
                       "accuracy_before": val_before, "accuracy_after": accuracy(km, *val)}
    if sens is not None:
        meta["sensitivity"] = sens.to_dict()
    record = sidecar_record(codes, **meta)
    report = {**meta, "tool": record["tool"],
              "weight_quantization": record["weight_quantization"], "layers": rows,
              "totals": t, "paper_modules": paper_modules(rows)}

    from ..frontend.sources import CLASSES_SIDECAR, PREPROCESS_SIDECAR

    # The model, its sidecars and the report replace the old ones together: never a model
    # beside another model's compression record.
    md, js = report_paths(output)
    files: dict[Path, bytes] = {sidecar_path(output): json_bytes(record),
                                js: json_bytes(report), md: report_markdown(report).encode()}
    if pre is not None:
        files[output.with_name(output.name + PREPROCESS_SIDECAR)] = json_bytes(pre.to_dict())
    if class_names is not None:
        files[output.with_name(output.name + CLASSES_SIDECAR)] = (
            json.dumps(class_names, indent=2) + "\n").encode()
    with atomic.replacing_group([output, *files], last_output=True) as temps:
        with captured_output():
            km.save(temps[0])  # a temporary with the .keras suffix Keras insists on
        for tmp, data in zip(temps[1:], files.values(), strict=True):
            tmp.write_bytes(data)
    _print_summary(out, report, output, md)
    return report


def _check_classes(km, option: str, folder, classes: list[str],
                   class_names: list[str] | None) -> None:
    units = int(km.outputs[0].shape[-1])
    if len(classes) != units:
        raise InputFileError(f"{option} {folder}: {len(classes)} class subfolders but the "
                             f"model has {units} outputs; give a folder with one subfolder "
                             "per class of the model")
    if class_names is not None and class_names != classes:
        raise InputFileError(f"{option} {folder}: its classes ({', '.join(classes)}) "
                             f"differ from the model's ({', '.join(class_names)})")


def _auto_plans(km, plans: list[Plan], args, val, out: Console):
    """--sparsity auto: the layers without a --sparsity override get the densities their
    measured sensitivity allows (converter.compress.sensitivity)."""
    import fnmatch

    from ..training.core import accuracy

    overridden = {p.name for p in plans
                  if any(fnmatch.fnmatchcase(p.name, pat) for pat in args.sparsity.patterns())}
    probe = [p.name for p in plans if p.name not in overridden]
    fixed = {p.name: p.density for p in plans if p.name in overridden}
    max_drop = (DEFAULT_MAX_DROP if args.max_drop is None else args.max_drop) / 100.0
    with out.status("Measuring each layer's sensitivity to pruning...") as status:
        sens = analyse(km, probe, fixed, lambda: accuracy(km, *val), max_drop, len(val[1]),
                       progress=lambda text: status.update(text))
    if sens.baseline - sens.checked > sens.max_drop + 1e-12:
        out.print(f"[yellow]warning:[/] the --sparsity overrides alone lose "
                  f"{100 * (sens.baseline - sens.checked):.1f} points on --val, more than "
                  f"--max-drop {100 * sens.max_drop:g}; no other layer was pruned")
    chosen = {**fixed, **sens.chosen}
    return [dataclasses.replace(p, density=chosen[p.name]) for p in plans], sens


def _spec_text(spec: LayerValues) -> str:
    head = ("auto" if spec.auto else "paper" if spec.default is None
            else f"{spec.default:g}")
    return ",".join([head] + [f"{p}={v:g}" for p, v in spec.overrides])


def _print_summary(out: Console, report: dict[str, Any], output: Path, md: Path) -> None:
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col, just in (("layer", "left"), ("density", "right"), ("bits", "right"),
                      ("kept", "right"), ("encoding", "left"), ("bytes", "right"),
                      ("dense", "right")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in report["layers"]:
        table.add_row(r["layer"], pct(r["density"]), str(r["bits"]), f"{r['kept']:,}",
                      r["encoding"], f"{r['filter_bytes']:,}", f"{r['dense_bytes']:,}")
    out.print(table)
    t = report["totals"]
    out.print(f"[bold]{report['model']}[/]: {t['kept']:,} of {t['weights']:,} weights kept "
              f"({pct(t['kept'] / t['weights'])}); filters {t['filter_bytes']:,} B on the "
              f"device (dense int8 {t['dense_bytes']:,} B); with biases and requantization "
              f"constants {t['flash_bytes']:,} B (dense {t['dense_flash_bytes']:,} B) with "
              "every filter packed (sqz-convert --packing flash)")
    ft = report.get("finetune")
    if ft:
        out.print(f"fine-tuned: held-out accuracy {ft['heldout_accuracy_pruned']:.2%} after "
                  f"pruning -> {ft['heldout_accuracy_after']:.2%} compressed (float)")
    out.print(f"wrote {output} (+ {sidecar_path(output).name}), {md.name} and "
              f"{md.with_suffix('.json').name}", soft_wrap=True)
    from .common import shell_word

    out.print(f"Next: [bold]sqz-convert {shell_word(output)}[/] (it quantizes "
              f"{report['weight_quantization']}, as {sidecar_path(output).name} says)")


def _compress(argv: Sequence[str] | None) -> int:
    from .common import consoles

    args = _parser().parse_args(argv)
    out, _ = consoles(args.quiet)
    compress_command(args, out)
    return 0


def compress_main(argv: Sequence[str] | None = None) -> int:
    from .common import run_cli

    return run_cli(_compress, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(compress_main())
