"""sqz-train: train a SqueezeNet on an image folder and save it with everything sqz-convert needs.

Written next to ``MODEL.keras``:

* ``MODEL.keras.preprocess.json``: how an image file becomes the model input
  (:meth:`Preprocessing.to_dict`); sqz-convert and sqz-validate read it, so calibration and
  validation see exactly what training saw.
* ``MODEL.keras.classes.json``: the class names as a JSON list, index = model output index.
* ``MODEL.keras.train.json``: held-out metrics, the resolved options, the builder config and the
  data counts, so a result can be traced back to the exact run.

Choices that are not obvious:

* Augmentation runs in numpy on already-preprocessed arrays, outside the model: the saved
  network is exactly the builder's, with no preprocessing layers for the converter to trip over,
  and every random draw comes from a generator seeded by (seed, epoch, chunk of images).
* Training runs on a twin of the network with batch norm between every conv and its ReLU; the
  batch norms are folded into the convs' kernels and biases afterwards, so the saved model is
  exactly the builder's (no BN layer reaches the converter).  Without them a SqueezeNet trained
  from scratch tends to collapse: its activations shrink layer by layer until every conv10
  channel, or one class's channel, is a dead ReLU and accuracy sticks at chance or (K-1)/K.
* The learning rate warms up and then follows a cosine decay, and gradients are clipped, which
  keeps the first Adam steps from knocking the network into that state anyway.
* The held-out split is stratified and seeded; it drives early stopping and the reported
  accuracy.  ``--eval DIR`` measures on a separate labelled folder as well.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from . import __version__, atomic
from .errors import InputFileError, UsageError
from .models.squeezenet import SqueezeNetConfig
from .preprocess import Preprocessing, load_labelled_folder

CLASSES_SIDECAR = ".classes.json"
TRAIN_SIDECAR = ".train.json"
AUGMENTATIONS = ("flip", "vflip", "rot90", "shift", "brightness", "contrast")
DEFAULT_AUGMENT = "flip,shift,brightness,contrast"
PREPROCESS_PRESETS = ("simple", "centered", "imagenet")
_SHIFT = 0.1  # largest translation, as a fraction of height/width
_BRIGHTNESS = 0.15  # largest brightness change, as a fraction of the pixel range
_CONTRAST = (0.7, 1.3)
_CLIPNORM = 1.0


@dataclass(frozen=True)
class TrainOptions:
    """Everything that determines a training run (recorded verbatim in the train.json)."""

    data: str
    output: str
    # The builder's own defaults, so the two cannot drift apart.
    version: str = SqueezeNetConfig.version
    bypass: str = SqueezeNetConfig.bypass
    base_e: int = SqueezeNetConfig.base_e
    incr_e: int = SqueezeNetConfig.incr_e
    pct_3x3: float = SqueezeNetConfig.pct_3x3
    freq: int = SqueezeNetConfig.freq
    sr: float = SqueezeNetConfig.sr
    dropout: float = SqueezeNetConfig.dropout
    input_size: tuple[int, int] = (96, 96)
    grayscale: bool = False
    preprocess: str = "simple"
    augment: tuple[str, ...] = tuple(DEFAULT_AUGMENT.split(","))
    epochs: int = 40
    batch_size: int = 64
    lr: float = 3e-3
    warmup_epochs: int = 2
    patience: int = 8
    val_split: float = 0.15
    seed: int = 0
    eval_dir: str | None = None


def _sidecar(model: Path, suffix: str) -> Path:
    return model.with_name(model.name + suffix)


def sidecar_paths(model: str | Path) -> dict[str, Path]:
    """The files sqz-train writes next to ``model``, by kind."""
    from .sources import PREPROCESS_SIDECAR

    model = Path(model)
    return {"preprocess": _sidecar(model, PREPROCESS_SIDECAR),
            "classes": _sidecar(model, CLASSES_SIDECAR),
            "train": _sidecar(model, TRAIN_SIDECAR)}


def _parse_augment(text: str) -> tuple[str, ...]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if names == ["none"]:
        return ()
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown or not names:
        raise UsageError(f"--augment {text!r}: use 'none' or a comma-separated list of "
                         f"{', '.join(AUGMENTATIONS)}")
    return tuple(dict.fromkeys(names))


def preprocessing_for(spec: str, size: tuple[int, int], grayscale: bool) -> Preprocessing:
    """--preprocess: a preset name or a JSON file as written by Preprocessing.to_dict()."""
    channels = 1 if grayscale else 3
    if spec == "simple":
        return Preprocessing.simple(size, channels=channels)
    if spec == "centered":
        return Preprocessing(size=size, mean=(0.5,) * channels, std=(0.5,) * channels,
                             color_mode="grayscale" if grayscale else "rgb")
    if spec == "imagenet":
        if grayscale:
            raise UsageError("--preprocess imagenet needs RGB input; drop --grayscale or use "
                             "--preprocess simple")
        return Preprocessing.imagenet(size)
    path = Path(spec)
    if not path.is_file():
        raise InputFileError(f"--preprocess {spec}: no such file; use one of "
                             f"{', '.join(PREPROCESS_PRESETS)} or a preprocessing JSON file")
    try:
        pre = Preprocessing.from_dict(json.loads(path.read_text()))
    except ValueError as exc:
        raise InputFileError(f"--preprocess {path}: not valid JSON ({exc})") from None
    if pre.size != tuple(size) or pre.channels != channels:
        raise UsageError(
            f"--preprocess {path} gives {pre.input_shape[0]}x{pre.input_shape[1]}x"
            f"{pre.channels} inputs but the model is {size[0]}x{size[1]}x{channels}; make "
            "--input-size and --grayscale match the file")
    return pre


def load_training_folder(folder: str | Path,
                         pre: Preprocessing) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Preprocessed images, labels and class names, with the checks training needs."""
    folder = Path(folder)
    if not folder.exists():
        raise InputFileError(f"training folder {folder} does not exist; give a folder with one "
                             "subfolder of images per class")
    x, y, classes, _ = load_labelled_folder(folder, pre)
    if len(classes) < 2:
        raise InputFileError(f"training folder {folder} has only {len(classes)} class "
                             f"subfolder ({', '.join(classes)}); a classifier needs at least 2, "
                             "one subfolder of images per class")
    counts = np.bincount(y, minlength=len(classes))
    empty = [name for name, n in zip(classes, counts, strict=True) if n == 0]
    if empty:
        raise InputFileError(f"training folder {folder}: class folder(s) {', '.join(empty)} "
                             "contain no images; add images or remove the folder(s)")
    return x, y, classes


def stratified_split(y: np.ndarray, fraction: float, seed: int,
                     classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, held-out indices): ``fraction`` of each class, at least one image each."""
    rng = np.random.default_rng([seed, 1])
    train, held = [], []
    for label, name in enumerate(classes):
        idx = np.flatnonzero(y == label)
        if len(idx) < 2:
            raise InputFileError(f"class {name!r} has {len(idx)} image; at least 2 are needed "
                                 "(one to train on, one to hold out)")
        n_held = min(len(idx) - 1, max(1, round(fraction * len(idx))))
        idx = rng.permutation(idx)
        held.append(idx[:n_held])
        train.append(idx[n_held:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(held))


class _Batches:
    """Seeded shuffling and augmentation of in-memory arrays, one epoch at a time."""

    def __init__(self, x: np.ndarray, y: np.ndarray, seed: int, augment: tuple[str, ...],
                 pre: Preprocessing):
        self.x, self.y, self.seed, self.augment = x, y, seed, augment
        # The pixel range 0..255 in input units, per channel, for clipping and brightness.
        mean = np.asarray(pre.mean, np.float32)
        std = np.asarray(pre.std, np.float32)
        self.lo = (0.0 - mean) / std
        self.hi = (255.0 * pre.scale - mean) / std

    def epoch(self, epoch: int, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """The shuffled, augmented training arrays of ``epoch``: the same for the same seed."""
        order = np.random.default_rng([self.seed, 2, epoch]).permutation(len(self.x))
        x, y = self.x[order], self.y[order]
        if self.augment:
            for i, start in enumerate(range(0, len(x), chunk)):
                rng = np.random.default_rng([self.seed, 3, epoch, i])
                x[start:start + chunk] = self._augment(x[start:start + chunk], rng)
        return x, y

    def _augment(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n, h, w, _ = x.shape
        if "flip" in self.augment:
            flip = rng.random(n) < 0.5
            x[flip] = x[flip, :, ::-1]
        if "vflip" in self.augment:
            flip = rng.random(n) < 0.5
            x[flip] = x[flip, ::-1]
        if "rot90" in self.augment and h == w:
            turns = rng.integers(0, 4, n)
            for k in (1, 2, 3):
                x[turns == k] = np.rot90(x[turns == k], k, axes=(1, 2))
        if "shift" in self.augment:
            dy, dx = max(1, round(_SHIFT * h)), max(1, round(_SHIFT * w))
            padded = np.pad(x, ((0, 0), (dy, dy), (dx, dx), (0, 0)), mode="edge")
            oy, ox = rng.integers(0, 2 * dy + 1, n), rng.integers(0, 2 * dx + 1, n)
            x = np.stack([padded[i, oy[i]:oy[i] + h, ox[i]:ox[i] + w] for i in range(n)])
        span = (self.hi - self.lo).astype(np.float32)
        if "contrast" in self.augment:
            factor = rng.uniform(*_CONTRAST, (n, 1, 1, 1)).astype(np.float32)
            centre = x.mean(axis=(1, 2), keepdims=True)
            x = (x - centre) * factor + centre
        if "brightness" in self.augment:
            x = x + rng.uniform(-_BRIGHTNESS, _BRIGHTNESS, (n, 1, 1, 1)).astype(np.float32) * span
        return np.clip(x, self.lo, self.hi).astype(np.float32)


def batchnorm_twin(model):
    """A copy of ``model`` with BatchNormalization between every Conv2D and its ReLU.

    Its convs have no bias (the batch norm's beta takes that role) and keep the original names,
    so :func:`fold_batchnorm` can find them again.  The initial weights are the builder's
    (cloned from the layer configs, which carry the seeded initializers).
    """
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D) and layer.get_config()["activation"] != "relu":
            raise AssertionError(f"{layer.name}: expected a fused ReLU, as the builder makes")

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, keras.layers.Conv2D):
            config.update(activation=None, use_bias=False)
        return layer.__class__.from_config(config)

    def call(layer, *args, **kwargs):
        out = layer(*args, **kwargs)
        if isinstance(layer, keras.layers.Conv2D):
            # momentum 0.9: the moving statistics, which are what gets folded, must keep up with
            # weights that change quickly in a run of only a few thousand steps.
            out = keras.layers.BatchNormalization(momentum=0.9, name=f"{layer.name}_bn")(out)
            out = keras.layers.ReLU(name=f"{layer.name}_relu")(out)
        return out

    return keras.models.clone_model(model, clone_function=clone, call_function=call)


def fold_batchnorm(twin, model) -> None:
    """Write ``twin``'s convs with their batch norms folded in into ``model``'s convs.

    ``relu(bn(conv(x)))`` equals ``relu(conv'(x))`` with kernel ``k * s`` and bias
    ``beta - mean * s``, ``s = gamma / sqrt(var + eps)`` per output channel (inference-mode
    batch norm); computed in float64 so only the final cast to float32 rounds.
    """
    import keras

    for layer in model.layers:
        if not isinstance(layer, keras.layers.Conv2D):
            continue
        (kernel,) = twin.get_layer(layer.name).get_weights()
        bn = twin.get_layer(f"{layer.name}_bn")
        gamma, beta, mean, var = (np.asarray(w, np.float64) for w in bn.get_weights())
        scale = gamma / np.sqrt(var + bn.epsilon)
        layer.set_weights([(kernel.astype(np.float64) * scale).astype(np.float32),
                           (beta - mean * scale).astype(np.float32)])


class _Progress:
    """Training progress on a rich console: a live bar on a terminal, else a line per epoch."""

    def __init__(self, console: Console | None, epochs: int, steps: int):
        self.console, self.epochs, self.steps = console, epochs, steps
        self.bar = None
        if console is not None and console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                                console=console, transient=True)
            self.task = self.bar.add_task("", total=steps, info="")

    def __enter__(self) -> _Progress:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()

    def callbacks(self, epoch: int) -> list:
        if self.bar is None:
            return []
        import keras

        bar, task, label = self.bar, self.task, f"epoch {epoch + 1}/{self.epochs}"
        bar.reset(task, total=self.steps, description=label, info="")

        class Tick(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                info = f"loss {float(logs['loss']):.3f}" if logs and "loss" in logs else ""
                bar.update(task, completed=batch + 1, info=info)

        return [Tick()]

    def log(self, text: str) -> None:
        if self.console is not None:
            self.console.print(text, soft_wrap=True)

    def epoch_done(self, epoch: int, logs: dict[str, float], seconds: float,
                   better: bool) -> None:
        self.log(f"epoch {epoch + 1:>3}/{self.epochs}  loss {logs['loss']:.4f}  "
                 f"acc {logs['accuracy']:.2%}  held-out loss {logs['val_loss']:.4f}  "
                 f"acc {logs['val_accuracy']:.2%}  {seconds:.0f} s{'  *' if better else ''}")


def _predict(model, x: np.ndarray, batch_size: int) -> np.ndarray:
    out = [np.asarray(model(x[i:i + batch_size], training=False))
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.empty((0, 0), np.float32)


def accuracy(model, x: np.ndarray, y: np.ndarray, batch_size: int = 128) -> float:
    """Top-1 accuracy of ``model`` on preprocessed ``x`` (argmax in numpy, no Keras metric)."""
    return float(np.mean(np.argmax(_predict(model, x, batch_size), axis=1) == y))


def _per_class(pred: np.ndarray, y: np.ndarray, classes: Sequence[str]) -> dict[str, float]:
    return {name: float(np.mean(pred[y == i] == i)) for i, name in enumerate(classes)
            if np.any(y == i)}


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def train(opts: TrainOptions, console: Console | None = None) -> dict[str, Any]:
    """Run one training described by ``opts``; writes the model and its sidecars and returns the
    train.json content.  Progress goes to ``console`` (a live bar on a terminal, one line per
    epoch otherwise); None trains silently."""
    from .models.squeezenet import build_squeezenet

    output = Path(opts.output)
    if output.suffix != ".keras":
        raise UsageError(f"--output {output}: the model file must end in .keras")
    atomic.check_writable_file(output, "--output")  # before the training, not after it
    for name, value, low in (("--epochs", opts.epochs, 1), ("--batch-size", opts.batch_size, 1),
                             ("--patience", opts.patience, 1),
                             ("--warmup-epochs", opts.warmup_epochs, 0)):
        if value < low:
            raise UsageError(f"{name} must be at least {low}, got {value}")
    if not 0.0 < opts.val_split < 1.0:
        raise UsageError(f"--val-split must be between 0 and 1 (exclusive), got {opts.val_split}")
    if not (math.isfinite(opts.lr) and opts.lr > 0):
        raise UsageError(f"--lr must be a positive number, got {opts.lr}")
    if opts.seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {opts.seed}")

    pre = preprocessing_for(opts.preprocess, opts.input_size, opts.grayscale)
    # Checked with a placeholder class count before the (slow) image loading, so a bad
    # meta-parameter is reported at once; the real count comes from the folder.
    config = SqueezeNetConfig(version=opts.version, input_shape=pre.input_shape, classes=2,
                              bypass=opts.bypass, base_e=opts.base_e, incr_e=opts.incr_e,
                              pct_3x3=opts.pct_3x3, freq=opts.freq, sr=opts.sr,
                              dropout=opts.dropout, seed=opts.seed)
    started = time.monotonic()
    x, y, classes = load_training_folder(opts.data, pre)
    config = dataclasses.replace(config, classes=len(classes))
    eval_data = None
    if opts.eval_dir is not None:
        ex, ey, eclasses = load_training_folder(opts.eval_dir, pre)
        if eclasses != classes:
            raise InputFileError(f"--eval {opts.eval_dir}: its classes ({', '.join(eclasses)}) "
                                 f"differ from the training folder's ({', '.join(classes)}); "
                                 "give a folder with the same class subfolders")
        eval_data = (ex, ey)
    train_idx, held_idx = stratified_split(y, opts.val_split, opts.seed, classes)
    if console is not None:
        console.print(f"{len(x)} images in {len(classes)} classes ({', '.join(classes)}): "
                      f"{len(train_idx)} to train on, {len(held_idx)} held out", soft_wrap=True)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(opts.seed)
    tf.config.experimental.enable_op_determinism()
    final = build_squeezenet(config)
    model = batchnorm_twin(final)
    batches = _Batches(x[train_idx], y[train_idx], opts.seed, opts.augment, pre)
    steps_per_epoch = math.ceil(len(train_idx) / opts.batch_size)
    steps = steps_per_epoch * opts.epochs
    warmup = min(steps_per_epoch * opts.warmup_epochs, steps - 1)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=opts.lr * (0.05 if warmup else 1.0), decay_steps=steps - warmup,
        warmup_target=opts.lr if warmup else None, warmup_steps=warmup, alpha=0.01)
    model.compile(optimizer=keras.optimizers.Adam(schedule, clipnorm=_CLIPNORM),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    held = (x[held_idx], y[held_idx])
    best = {"val_loss": math.inf, "epoch": 0, "weights": model.get_weights()}
    epochs_run = 0
    with _Progress(console, opts.epochs, steps_per_epoch) as progress:
        # One fit() per epoch on arrays augmented beforehand: feeding Keras numpy arrays is
        # several times faster than a Python generator, and early stopping needs only this loop.
        for epoch in range(opts.epochs):
            xb, yb = batches.epoch(epoch)
            tick = time.monotonic()
            history = model.fit(xb, yb, batch_size=opts.batch_size, epochs=epoch + 1,
                                initial_epoch=epoch, shuffle=False, validation_data=held,
                                validation_batch_size=max(opts.batch_size, 128), verbose=0,
                                callbacks=progress.callbacks(epoch))
            epochs_run += 1
            logs = {k: float(v[-1]) for k, v in history.history.items()}
            better = logs["val_loss"] < best["val_loss"]
            if better:
                best = {"val_loss": logs["val_loss"], "epoch": epoch + 1,
                        "weights": model.get_weights()}
            progress.epoch_done(epoch, logs, time.monotonic() - tick, better)
            if epoch + 1 - best["epoch"] >= opts.patience:
                progress.log(f"no better held-out loss for {opts.patience} epochs: stopping, "
                             f"keeping epoch {best['epoch']}")
                break
    model.set_weights(best["weights"])
    fold_batchnorm(model, final)
    seconds = time.monotonic() - started

    # Measured on the folded model: exactly what is saved and converted.
    held_pred = np.argmax(_predict(final, held[0], 128), axis=1)
    metrics: dict[str, Any] = {
        "heldout_accuracy": float(np.mean(held_pred == held[1])),
        "heldout_per_class": _per_class(held_pred, held[1], classes),
        "heldout_images": int(len(held_idx)),
        "best_epoch": best["epoch"],
        "epochs_run": epochs_run,
        "best_val_loss": best["val_loss"],
    }
    if eval_data is not None:
        metrics["eval_accuracy"] = accuracy(final, *eval_data)
        metrics["eval_images"] = int(len(eval_data[1]))

    # ``final`` was never compiled, so the file holds no optimizer state (Adam's two moments
    # would triple its size) and exactly the builder's graph.
    paths = sidecar_paths(output)
    counts = np.bincount(y, minlength=len(classes))
    record = {
        "tool": f"sqz-train {__version__}",
        "options": {k: (list(v) if isinstance(v, tuple) else v)
                    for k, v in dataclasses.asdict(opts).items()},
        "config": {k: (list(v) if isinstance(v, tuple) else v)
                   for k, v in dataclasses.asdict(config).items()},
        "params": int(final.count_params()),
        "classes": list(classes),
        "images": {"total": int(len(x)), "train": int(len(train_idx)),
                   "heldout": int(len(held_idx)),
                   "per_class": {n: int(c) for n, c in zip(classes, counts, strict=True)}},
        "training": {"clipnorm": _CLIPNORM, "schedule": "linear warmup + cosine decay",
                     "optimizer": "adam", "early_stopping": "val_loss"},
        "metrics": metrics,
        "seconds": round(seconds, 1),
    }
    # The model and its sidecars are replaced together, so they always belong to each other.
    group = [paths["preprocess"], paths["classes"], paths["train"], output]
    with atomic.replacing_group(group) as (t_pre, t_classes, t_train, t_model):
        _write_json(t_pre, pre.to_dict())
        _write_json(t_classes, list(classes))
        _write_json(t_train, record)
        final.save(t_model)
    return record


def _parser() -> argparse.ArgumentParser:
    from .cli import _Parser, parse_size

    p = _Parser(prog="sqz-train",
                description="Train a SqueezeNet on a folder with one subfolder of images per "
                            "class; writes MODEL.keras plus .preprocess.json, .classes.json "
                            "and .train.json next to it.")
    p.add_argument("data", help="training images: one subfolder per class")
    p.add_argument("-o", "--output", required=True, help="model file to write (.keras)")
    net = p.add_argument_group("network (SqueezeNet builder meta-parameters)")
    net.add_argument("--version", dest="net_version", default="1.1", choices=["1.0", "1.1"],
                     help="SqueezeNet version (default 1.1)")
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
    fit.add_argument("--augment", type=_parse_augment, default=DEFAULT_AUGMENT,
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
    p.add_argument("-V", action="version", version=f"sqz {__version__}")
    return p


def _train(argv: Sequence[str] | None) -> int:
    from .cli import _consoles

    args = _parser().parse_args(argv)
    out, _ = _consoles(args.quiet)
    fields = {f.name for f in dataclasses.fields(TrainOptions)}
    values = {k: v for k, v in vars(args).items() if k in fields}
    values["version"] = args.net_version
    opts = TrainOptions(**values)
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
    from .cli import run_cli

    return run_cli(_train, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(train_main())
