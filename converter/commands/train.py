"""sqz-train: the command; the training is in converter.training."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence

from .. import __version__
from ..training.core import AUGMENTATIONS, DEFAULT_AUGMENT, parse_augment
from ..training.train import TrainOptions, sidecar_paths, train

NET_VERSIONS = ("1.0", "1.1")
_SHOW = object()  # --version without a value


class _VersionOrNet(argparse.Action):
    """-V/--version alone prints sqz's version at once (before the required arguments are
    checked, like argparse's own version action); with a value it is kept for _train."""

    def __call__(self, parser, namespace, values, option_string=None):
        if values is _SHOW:
            print(f"sqz {__version__}")
            parser.exit()
        setattr(namespace, self.dest, values)


def _parser() -> argparse.ArgumentParser:
    from .common import Parser, parse_size

    p = Parser(prog="sqz-train",
                description="Train a SqueezeNet on a folder with one subfolder of images per "
                            "class; writes MODEL.keras plus .preprocess.json, .classes.json "
                            "and .train.json next to it.")
    p.add_argument("data", help="training images: one subfolder per class")
    p.add_argument("-o", "--output", required=True, help="model file to write (.keras)")
    p.add_argument("--model", default="squeezenet",
                   help="the network: squeezenet (default, with the meta-parameters below) or "
                        "a builtin of converter/models/zoo.py (mobilenet_v1, mobilenet_v2, "
                        "resnet8, ds_cnn)")
    net = p.add_argument_group("network (SqueezeNet builder meta-parameters)")
    net.add_argument("--net-version", dest="net_version", default=None,
                     choices=NET_VERSIONS, help="SqueezeNet version (default 1.1)")
    net.add_argument("--bypass", default="none", choices=["none", "simple", "complex"],
                     help="bypass connections (default none)")
    net.add_argument("--base-e", type=int, default=128, help="expand filters of fire2 (128)")
    net.add_argument("--incr-e", type=int, default=128,
                     help="expand filters added every --freq fire modules (128)")
    net.add_argument("--pct-3x3", type=float, default=0.5, help="share of 3x3 expand (0.5)")
    net.add_argument("--freq", type=int, default=2, help="fire modules per increment (2)")
    net.add_argument("--sr", type=float, default=0.125, help="squeeze ratio (0.125)")
    net.add_argument("--dropout", type=float, default=0.5, help="dropout before conv10 (0.5)")
    net.add_argument("--input-size", type=parse_size, default=(96, 96),
                     help="model input, N or HxW (default 96); images are resized to it")
    net.add_argument("--grayscale", action="store_true", help="1-channel input instead of RGB")
    net.add_argument("--preprocess", default="simple",
                     help="simple (pixels/255, default), centered ((pixels/255-0.5)/0.5), "
                          "imagenet, or a preprocessing JSON file")
    fit = p.add_argument_group("training")
    fit.add_argument("--augment", type=parse_augment, default=DEFAULT_AUGMENT,
                     help=f"comma-separated {', '.join(AUGMENTATIONS)}, or none "
                          f"(default {DEFAULT_AUGMENT}); vflip and rot90 only suit data "
                          "without an up direction")
    fit.add_argument("--epochs", type=int, default=40, help="at most this many epochs (40)")
    fit.add_argument("--batch-size", type=int, default=64, help="batch size (64)")
    fit.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (3e-3)")
    fit.add_argument("--warmup-epochs", type=int, default=2, help="learning-rate warmup (2)")
    fit.add_argument("--patience", type=int, default=8,
                     help="stop after this many epochs without a better held-out loss (8)")
    fit.add_argument("--val-split", type=float, default=0.15,
                     help="share of each class held out for early stopping and the reported "
                          "accuracy (0.15)")
    fit.add_argument("--eval", dest="eval_dir",
                     help="also report accuracy on this labelled folder (same classes)")
    fit.add_argument("--seed", type=int, default=0, help="seed for split, init, shuffling (0)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress display")
    # As in every sqz tool, -V/--version prints sqz's version. Before --net-version existed,
    # `--version 1.0` chose the SqueezeNet version: that spelling still works (with a note).
    p.add_argument("-V", "--version", dest="version_or_net", nargs="?", const=_SHOW,
                   action=_VersionOrNet,
                   default=None, metavar="",
                   help="print sqz's version and exit (--version 1.0/1.1, the old spelling of "
                        "--net-version, still selects the SqueezeNet version)")
    return p


def _train(argv: Sequence[str] | None) -> int:
    from ..errors import UsageError
    from .common import consoles

    args = _parser().parse_args(argv)
    out, err = consoles(args.quiet)
    legacy = args.version_or_net
    if legacy is not None:
        if legacy not in NET_VERSIONS:
            raise UsageError(f"--version {legacy}: --version alone prints sqz's version; the "
                             f"SqueezeNet version is --net-version {' or '.join(NET_VERSIONS)}")
        if args.net_version is not None and args.net_version != legacy:
            raise UsageError(f"--version {legacy} and --net-version {args.net_version} disagree; "
                             "give --net-version only")
        err.print(f"[bold yellow]note:[/] --version {legacy} is the old spelling of "
                  f"--net-version {legacy} (--version alone now prints sqz's version, as in "
                  "the other sqz tools)", soft_wrap=True)
        args.net_version = legacy
    args.net_version = args.net_version or "1.1"
    fields = {f.name for f in dataclasses.fields(TrainOptions)}
    values = {k: v for k, v in vars(args).items() if k in fields}
    values["version"] = args.net_version
    opts = TrainOptions(**values)
    from .. import atomic
    from .common import quiet_tensorflow

    quiet_tensorflow()
    if str(opts.output).endswith(".keras"):  # else train() says what is wrong with it
        atomic.check_writable_file(opts.output, "--output")
    with atomic.output_file_lock(opts.output, "--output"):
        record = train(opts, console=None if args.quiet else out)
    m = record["metrics"]
    out.print(f"[bold]held-out accuracy {m['heldout_accuracy']:.2%}[/] on "
              f"{m['heldout_images']} images (best epoch {m['best_epoch']} of "
              f"{m['epochs_run']}, {record['seconds']:.0f} s)")
    if "eval_accuracy" in m:
        out.print(f"[bold]--eval accuracy {m['eval_accuracy']:.2%}[/] on {m['eval_images']} "
                  "images")
    paths = sidecar_paths(opts.output)
    out.print(f"wrote {opts.output} (+ {paths['preprocess'].name}, {paths['classes'].name}, "
              f"{paths['train'].name})", soft_wrap=True)
    return 0


def train_main(argv: Sequence[str] | None = None) -> int:
    from .common import run_cli

    return run_cli(_train, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(train_main())
