"""Fine-tuning a compressed model, in Deep Compression's order: the kept weights with the pruning
mask fixed, then k-means, then the centroids (each kernel computed from its codebook inside the
gradient tape). Runs on the training core sqz-train uses (converter.training.core)."""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from rich.console import Console

from .algorithm import LayerCode

# --- fine-tuning -------------------------------------------------------------------------------

@dataclass(frozen=True)
class FinetuneOptions:
    data: str
    epochs: int = 8
    retrain_epochs: int | None = None  # None: as many as epochs
    lr: float = 3e-4
    batch_size: int = 64
    augment: tuple[str, ...] = ()
    val_split: float = 0.1
    seed: int = 0


def _crossentropy(probs: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0)
    return float(-np.mean(np.log(p)))


def finetune(model, codes: list[LayerCode], x: np.ndarray, y: np.ndarray, classes: list[str],
             pre, opts: FinetuneOptions, console: Console | None, *, epochs: int,
             centroids: bool = True) -> dict[str, Any]:
    """Train the centroids (and biases) of ``model`` on (x, y) with the masks and assignments
    fixed, on the int8 grid (``centroids``), or the kept weights of ``weight_codes`` (not);
    keeps the epoch with the best held-out accuracy, then loss, the starting point included."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    from ..training.core import Batches, Progress, predict, stratified_split

    train_idx, held_idx = stratified_split(y, opts.val_split, opts.seed, classes)
    held_x, held_y = x[held_idx], y[held_idx]
    keras.utils.set_random_seed(opts.seed)
    tf.config.experimental.enable_op_determinism()

    by_kernel = {model.get_layer(c.name).kernel.path: i for i, c in enumerate(codes)}
    books = [keras.Variable(c.padded().astype(np.float32), name=f"{c.name}_codebook")
             for c in codes]
    gather = [tf.constant(c.group_index()) for c in codes]
    masks = [tf.constant(c.mask.astype(np.float32)) for c in codes]
    weights = list(model.trainable_variables)
    others = [v for v in weights if v.path not in by_kernel]  # biases train as they are
    train_vars = books + others
    steps = math.ceil(len(train_idx) / opts.batch_size)
    # Cosine decay to 1% of --lr: the last epochs settle the centroids instead of jumping around.
    schedule = keras.optimizers.schedules.CosineDecay(opts.lr, decay_steps=steps * epochs,
                                                      alpha=0.01)
    optimizer = keras.optimizers.Adam(schedule, clipnorm=1.0)
    optimizer.build(train_vars)
    state = list(model.non_trainable_variables)

    def on_grid(book, per_channel: bool):
        # The forward pass sees the centroids on the int8 grid that snap_to_int8 will put them
        # on at the end, and the gradient passes straight through the rounding: the model is
        # trained as the int8 model will run.
        amax = tf.reduce_max(tf.abs(book), axis=-1 if per_channel else None, keepdims=True)
        scale = amax / 127.0
        level = tf.floor(tf.abs(book) / tf.where(scale > 0, scale, 1.0) + 0.5)
        snapped = tf.sign(book) * tf.clip_by_value(tf.maximum(level, 1.0), 0.0, 127.0) * scale
        return book + tf.stop_gradient(snapped - book)

    def values():
        out = []
        for v in weights:
            i = by_kernel.get(v.path)
            if i is None:
                out.append(v.value)
            else:
                book = books[i].value
                if centroids:
                    book = on_grid(book, codes[i].per_channel)
                flat = tf.reshape(book, [-1])
                out.append(tf.gather(flat, gather[i]) * masks[i])
        return out

    @tf.function(reduce_retracing=True)
    def step(xb, yb):
        with tf.GradientTape() as tape:
            pred, new_state = model.stateless_call(values(), [v.value for v in state], xb,
                                                   training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(yb, pred))
        grads = tape.gradient(loss, train_vars)
        optimizer.apply(grads, train_vars)
        for v, nv in zip(state, new_state, strict=True):
            v.assign(nv)
        return loss, tf.cast(tf.argmax(pred, axis=-1), yb.dtype)

    def sync() -> None:
        for c, b in zip(codes, books, strict=True):
            arr = np.asarray(b.numpy(), np.float64)
            c.codebooks = [arr[g][:len(c.codebooks[g])] for g in range(len(c.codebooks))]
            snapped = dataclasses.replace(c, codebooks=list(c.codebooks))
            if centroids:
                snapped.snap_to_int8()
            model.get_layer(c.name).kernel.assign(snapped.kernel())

    def evaluate() -> tuple[float, float]:
        probs = predict(model, held_x, 128)
        return _crossentropy(probs, held_y), float(np.mean(np.argmax(probs, 1) == held_y))

    batches = Batches(x[train_idx], y[train_idx], opts.seed, opts.augment, pre)
    loss0, acc0 = evaluate()
    # The best epoch by held-out accuracy (then loss), the starting point included: fine-tuning
    # that only makes the held-out images worse keeps what it started from.
    best: dict[str, Any] = {"epoch": 0, "val_loss": loss0, "val_accuracy": acc0,
                            "weights": model.get_weights(),
                            "books": [list(c.codebooks) for c in codes]}
    history = [{"epoch": 0, "val_loss": loss0, "val_accuracy": acc0}]
    with Progress(console, epochs, steps) as progress:
        what = "centroids" if centroids else "kept weights"
        progress.log(f"fine-tuning the {what} on {len(train_idx)} images, {len(held_idx)} held "
                     f"out: held-out accuracy before {acc0:.2%} (loss {loss0:.4f})")
        for epoch in range(epochs):
            xb, yb = batches.epoch(epoch)
            tick = time.monotonic()
            callbacks = progress.callbacks(epoch)
            losses, correct = [], 0
            for b in range(steps):
                sl = slice(b * opts.batch_size, (b + 1) * opts.batch_size)
                loss, pred = step(tf.constant(xb[sl]), tf.constant(yb[sl]))
                losses.append(float(loss))
                correct += int(np.sum(pred.numpy() == yb[sl]))
                for cb in callbacks:
                    cb.on_train_batch_end(b, {"loss": losses[-1]})
            sync()
            val_loss, val_acc = evaluate()
            logs = {"loss": float(np.mean(losses)), "accuracy": correct / len(yb),
                    "val_loss": val_loss, "val_accuracy": val_acc}
            better = (val_acc, -val_loss) > (best["val_accuracy"], -best["val_loss"])
            if better:
                best = {"epoch": epoch + 1, "val_loss": val_loss, "val_accuracy": val_acc,
                        "weights": model.get_weights(),
                        "books": [list(c.codebooks) for c in codes]}
            history.append({"epoch": epoch + 1, **logs})
            progress.epoch_done(epoch, logs, time.monotonic() - tick, better)
    model.set_weights(best["weights"])
    for c, b in zip(codes, best["books"], strict=True):
        c.codebooks = b
    for c in codes:
        if centroids:
            c.snap_to_int8()
        model.get_layer(c.name).kernel.assign(c.kernel())
    final_loss, final_acc = evaluate()
    return {"epochs": epochs, "images": int(len(x)), "train_images": int(len(train_idx)),
            "heldout_images": int(len(held_idx)), "best_epoch": best["epoch"],
            "heldout_accuracy_before": acc0, "heldout_accuracy_after": final_acc,
            "heldout_loss_after": final_loss, "history": history}
