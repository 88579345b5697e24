"""The training core sqz-train and sqz-compress's fine-tuning share: labelled folders and seeded
stratified splits, numpy augmentation in seeded batches, progress lines, batched prediction and
accuracy."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rich.console import Console

from ..errors import InputFileError, UsageError
from ..frontend.preprocess import Preprocessing, load_labelled_folder

AUGMENTATIONS = ("flip", "vflip", "rot90", "shift", "brightness", "contrast")
DEFAULT_AUGMENT = "flip,shift,brightness,contrast"
_SHIFT = 0.1  # largest translation, as a fraction of height/width
_BRIGHTNESS = 0.15  # largest brightness change, as a fraction of the pixel range
_CONTRAST = (0.7, 1.3)


def parse_augment(text: str) -> tuple[str, ...]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if names == ["none"]:
        return ()
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown or not names:
        raise UsageError(f"--augment {text!r}: use 'none' or a comma-separated list of "
                         f"{', '.join(AUGMENTATIONS)}")
    return tuple(dict.fromkeys(names))


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


class Batches:
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


class Progress:
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

    def __enter__(self) -> Progress:
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


def predict(model, x: np.ndarray, batch_size: int) -> np.ndarray:
    out = [np.asarray(model(x[i:i + batch_size], training=False))
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.empty((0, 0), np.float32)


def accuracy(model, x: np.ndarray, y: np.ndarray, batch_size: int = 128) -> float:
    """Top-1 accuracy of ``model`` on preprocessed ``x`` (argmax in numpy, no Keras metric)."""
    return float(np.mean(np.argmax(predict(model, x, batch_size), axis=1) == y))


def per_class(pred: np.ndarray, y: np.ndarray, classes: Sequence[str]) -> dict[str, float]:
    return {name: float(np.mean(pred[y == i] == i)) for i, name in enumerate(classes)
            if np.any(y == i)}
