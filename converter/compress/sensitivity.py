"""--sparsity auto: per-layer densities from each layer's measured sensitivity to pruning.

The SqueezeNet paper took its densities from Deep Compression, which chose them by a
sensitivity analysis: prune one layer at a time, measure the accuracy on validation data, and
prune each layer as far as its curve allows. Applying those densities (Table 1, SqueezeNet 1.0
on ImageNet) to another model or task ignores that a small model's layers may be far more
sensitive. So, on the user's held-out images:

1. the float model's accuracy (the baseline);
2. per layer, alone: its accuracy at each density of DENSITIES, most first, until it has lost
   STOP_DROP (a curve; lower densities would only lose more);
3. a greedy on those curves: start unpruned, repeatedly take the step to a layer's next
   density that removes the most weights per point of predicted loss, while the predicted
   loss (the sum of each layer's own, on the curves made monotone) stays within --max-drop;
4. the check: the chosen densities pruned together, measured on the same images; when the loss
   is over --max-drop, the longest prefix of the steps that is not is found by bisection and
   the rest undone.

The budget is pruning's: weight sharing (--bits) loses accuracy of its own, pruned or not, which
fine-tuning the centroids wins back; the report gives the accuracy after everything.

Only float Keras inference is run here, no training; the model is left as it came.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .algorithm import masked_weights, prune_mask

# The densities probed per layer, most first. The paper's own go down to 0.2 (conv10) and
# 0.3 (fire9's 3x3); 0.1 leaves room for a layer that a smaller task barely needs.
DENSITIES = (0.8, 0.6, 0.5, 0.4, 0.33, 0.25, 0.2, 0.15, 0.1)
# Stop probing a layer once pruning it alone loses this much accuracy (a fraction).
STOP_DROP = 0.10
DEFAULT_MAX_DROP = 1.0  # percentage points (--max-drop)


@dataclass(frozen=True)
class Curve:
    layer: str
    weights: int
    points: tuple[tuple[float, float], ...]  # (density, accuracy), densities decreasing

    def drops(self, baseline: float) -> list[float]:
        """The loss at each point, made monotone: a lower density never loses less."""
        out, worst = [], 0.0
        for _, acc in self.points:
            worst = max(worst, baseline - acc)
            out.append(worst)
        return out


@dataclass(frozen=True)
class Step:
    layer: str
    density: float
    removed: int  # weights this step prunes beyond the layer's previous density
    predicted_drop: float  # its added predicted loss


@dataclass(frozen=True)
class Sensitivity:
    baseline: float
    max_drop: float  # a fraction
    curves: tuple[Curve, ...]
    chosen: dict[str, float]
    steps: tuple[Step, ...]  # taken and kept, in order
    undone: tuple[Step, ...] = ()  # taken, then undone by the check
    checked: float = 0.0  # accuracy with the chosen densities pruned together
    images: int = 0

    def to_dict(self) -> dict:
        return {"baseline_accuracy": self.baseline, "max_drop": self.max_drop,
                "checked_accuracy": self.checked, "images": self.images,
                "densities": self.chosen,
                "curves": [{"layer": c.layer, "weights": c.weights,
                            "points": [{"density": d, "accuracy": a} for d, a in c.points]}
                           for c in self.curves],
                "steps": [vars(s) for s in self.steps],
                "undone": [vars(s) for s in self.undone]}


def choose(curves: Sequence[Curve], baseline: float, max_drop: float) -> list[Step]:
    """The greedy of step 3: the steps in the order taken."""
    at = {c.layer: -1 for c in curves}  # index into the curve's points; -1: unpruned
    drops = {c.layer: c.drops(baseline) for c in curves}
    by_name = {c.layer: c for c in curves}
    taken: list[Step] = []
    predicted = 0.0
    while True:
        best: tuple[float, int, Step] | None = None
        for name, i in at.items():
            c = by_name[name]
            if i + 1 >= len(c.points):
                continue
            density = c.points[i + 1][0]
            previous = 1.0 if i < 0 else c.points[i][0]
            removed = round(c.weights * (previous - density))
            added = drops[name][i + 1] - (0.0 if i < 0 else drops[name][i])
            if predicted + added > max_drop + 1e-12:
                continue
            # Weights removed per point lost; a free step ranks by the weights alone.
            score = removed / max(added, 1e-6)
            key = (score, removed)
            if best is None or key > best[:2]:
                best = (score, removed, Step(name, density, removed, added))
        if best is None:
            return taken
        step = best[2]
        taken.append(step)
        predicted += step.predicted_drop
        at[step.layer] += 1


def densities_of(steps: Sequence[Step], layers: Sequence[str]) -> dict[str, float]:
    out = {name: 1.0 for name in layers}
    for s in steps:
        out[s.layer] = s.density
    return out


def analyse(model, layers: Sequence[str], fixed: dict[str, float],
            accuracy: Callable[[], float], max_drop: float, images: int,
            progress: Callable[[str], None] = lambda _: None) -> Sensitivity:
    """Steps 1 to 4 for the `layers` of `model` (the others in `fixed` keep their density and
    are pruned during the check); `accuracy()` measures the model as it stands on the held-out
    images. The model's weights are restored before returning."""
    originals = {la.name: la.get_weights() for la in model.layers if la.get_weights()}

    def restore() -> None:
        for name, w in originals.items():
            model.get_layer(name).set_weights(w)

    try:
        baseline = accuracy()
        curves = []
        for n, name in enumerate(layers, 1):
            layer = model.get_layer(name)
            kernel = originals[name][0]
            points = []
            for d in DENSITIES:
                layer.set_weights(masked_weights(originals[name], prune_mask(kernel, d)))
                acc = accuracy()
                points.append((d, acc))
                if baseline - acc >= STOP_DROP:
                    break
            layer.set_weights(originals[name])
            curves.append(Curve(name, int(kernel.size), tuple(points)))
            progress(f"sensitivity {n}/{len(layers)}: {name}")
        steps = choose(curves, baseline, max_drop)

        def check(k: int) -> float:
            """The accuracy with the first k steps' densities (and `fixed`) pruned together."""
            chosen = {**fixed, **densities_of(steps[:k], layers)}
            for name, d in chosen.items():
                model.get_layer(name).set_weights(
                    masked_weights(originals[name], prune_mask(originals[name][0], d)))
            acc = accuracy()
            restore()
            return acc

        # Losses do not quite add up, so the whole choice is measured; when it loses more than
        # the budget, the longest prefix of the steps that does not is found by bisection (the
        # loss grows with the steps taken, near enough), each probe measured.
        kept, checked = len(steps), check(len(steps))
        if baseline - checked > max_drop + 1e-12:
            lo, hi, lo_acc = 0, len(steps), check(0)
            while hi - lo > 1:
                mid = (lo + hi) // 2
                acc = check(mid)
                progress(f"check: {mid} of {len(steps)} steps lose {baseline - acc:.2%}")
                if baseline - acc <= max_drop + 1e-12:
                    lo, lo_acc = mid, acc
                else:
                    hi = mid
            kept, checked = lo, lo_acc
        return Sensitivity(baseline=baseline, max_drop=max_drop, curves=tuple(curves),
                           chosen=densities_of(steps[:kept], layers), steps=tuple(steps[:kept]),
                           undone=tuple(steps[kept:]), checked=checked, images=images)
    finally:
        restore()
