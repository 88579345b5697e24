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

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from .. import __version__, atomic
from ..errors import InputFileError, UsageError
from ..frontend.preprocess import Preprocessing
from ..models.squeezenet import SqueezeNetConfig
from .core import (
    DEFAULT_AUGMENT,
    Batches,
    Progress,
    accuracy,
    load_training_folder,
    per_class,
    predict,
    stratified_split,
)

CLASSES_SIDECAR = ".classes.json"
TRAIN_SIDECAR = ".train.json"
PREPROCESS_PRESETS = ("simple", "centered", "imagenet")
_CLIPNORM = 1.0


@dataclass(frozen=True)
class TrainOptions:
    """Everything that determines a training run (recorded verbatim in the train.json)."""

    data: str
    output: str
    # "squeezenet" (the meta-parameters below apply) or a converter.models.zoo builtin.
    model: str = "squeezenet"
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
    from ..frontend.sources import PREPROCESS_SIDECAR

    model = Path(model)
    return {"preprocess": _sidecar(model, PREPROCESS_SIDECAR),
            "classes": _sidecar(model, CLASSES_SIDECAR),
            "train": _sidecar(model, TRAIN_SIDECAR)}


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


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def train(opts: TrainOptions, console: Console | None = None) -> dict[str, Any]:
    """Run one training described by ``opts``; writes the model and its sidecars and returns the
    train.json content.  Progress goes to ``console`` (a live bar on a terminal, one line per
    epoch otherwise); None trains silently."""
    from ..models.squeezenet import build_squeezenet

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

    from ..models import zoo

    if opts.model != "squeezenet" and not zoo.is_builtin(opts.model):
        raise UsageError(f"--model {opts.model}: unknown network; give squeezenet or one of "
                         f"{', '.join(zoo.builtin_names())}")
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
    if opts.model == "squeezenet":
        final = build_squeezenet(config)
        model = batchnorm_twin(final)
    else:
        # The zoo networks carry their batch normalization (TFLite folds it into the convs),
        # so the trained weights go as they are into a twin that is never compiled.
        final, model = (zoo.build(opts.model, input_shape=pre.input_shape,
                                  classes=len(classes), seed=opts.seed) for _ in range(2))
        config = {"model": opts.model, "input_shape": list(pre.input_shape),
                  "classes": len(classes), "seed": opts.seed}
    batches = Batches(x[train_idx], y[train_idx], opts.seed, opts.augment, pre)
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
    with Progress(console, opts.epochs, steps_per_epoch) as progress:
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
    if opts.model == "squeezenet":
        fold_batchnorm(model, final)
    else:
        final.set_weights(model.get_weights())
    seconds = time.monotonic() - started

    # Measured on the folded model: exactly what is saved and converted.
    held_pred = np.argmax(predict(final, held[0], 128), axis=1)
    metrics: dict[str, Any] = {
        "heldout_accuracy": float(np.mean(held_pred == held[1])),
        "heldout_per_class": per_class(held_pred, held[1], classes),
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
        "config": config if isinstance(config, dict) else {
            k: (list(v) if isinstance(v, tuple) else v)
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
    with atomic.replacing_group(group, last_output=True) as (t_pre, t_classes, t_train,
                                                            t_model):
        _write_json(t_pre, pre.to_dict())
        _write_json(t_classes, list(classes))
        _write_json(t_train, record)
        final.save(t_model)
    return record
