"""The learning-rate range test (Smith 2017, "Cyclical Learning Rates"; fastai's ``lr_find``):
train a few steps with an exponentially growing learning rate, watch the loss, and read a
good learning rate off the curve.

Hand-written rather than taken from ``torch-lr-finder`` because the test must take the run's
own training step — its loss and regularization penalties, batch regularizers (mixup, noise),
precision and gradient clipping — and its in-memory batcher; the library runs a step of its
own on a DataLoader. The algorithm is a few lines; the suggestion rules follow fastai's
(``valley``, ``steep``, ``minimum``).

The test reads the loss every step (a host sync per step: this is a probe, not the training
loop). The model, the optimizer's state and the random-number generators are restored
afterwards, so the configured run starts exactly as it would have.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMATS = (".png", ".svg", ".pdf")


@dataclass
class RangeTest:
    """What the test measured: the rate and loss of every step, and why it stopped."""

    lrs: list[float]
    losses: list[float]  # raw per-step losses (non-finite ones end the test)
    smoothed: list[float]  # bias-corrected exponential moving average (decides the stop)
    stopped: str  # why the test ended, in words
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def curve(self) -> list[float]:
        """The losses smoothed without lag: a centred median of 5 steps (a bad batch is
        ignored), then a centred mean of 5. What the suggestion is read from and the plot
        shows; the running average above trails the loss by about 1 / (1 - smoothing) steps,
        most of a decade of lr, so it only decides when to stop."""
        return centred(centred(self.losses, np.median), np.mean)


@dataclass
class Suggestion:
    """The suggested learning rate and how it was read off the curve."""

    lr: float
    method: str
    index: int  # the step of the test it comes from
    explanation: str
    by_method: dict[str, float]  # what every rule would pick

    def line(self) -> str:
        return f"Suggested learning rate: {self.lr:.3g} ({self.method})"


def exponential_lrs(start: float, end: float, steps: int) -> list[float]:
    """``steps`` learning rates from ``start`` to ``end``, evenly spaced on a log axis."""
    return [float(v) for v in np.geomspace(start, end, steps)]


def smooth(losses: list[float], beta: float) -> list[float]:
    """Bias-corrected exponential moving average (as fastai and torch-lr-finder smooth)."""
    average, out = 0.0, []
    for count, loss in enumerate(losses, 1):
        average = beta * average + (1 - beta) * loss
        out.append(average / (1 - beta**count))
    return out


def centred(values: list[float], statistic: Any, half_width: int = 2) -> list[float]:
    """``statistic`` of each point and its ``half_width`` neighbours on each side."""
    return [
        float(statistic(values[max(0, i - half_width) : i + half_width + 1]))
        for i in range(len(values))
    ]


def run_range_test(parts: Any, controls: Any, settings: Any) -> RangeTest:
    """Run the test on built :class:`~trainlab.train.loop.TrainingParts`, then put the model,
    the optimizer and the RNGs back as they were. ``controls`` gives the clipping and
    precision of the run; ``settings`` is the ``lr_find`` config."""
    from trainlab.tools.probe import endless_batches, restored, training_step

    lrs = exponential_lrs(float(settings.start_lr), float(settings.end_lr), int(settings.num_steps))
    beta, factor = float(settings.smoothing), float(settings.divergence_factor)
    losses: list[float] = []
    smoothed: list[float] = []
    stopped = f"reached lr_find.end_lr={float(settings.end_lr):g} after {len(lrs)} steps"
    average, lowest = 0.0, math.inf
    with restored(parts):
        batches = endless_batches(parts.batcher)
        for step, lr in enumerate(lrs, 1):
            for group in parts.optimizer.param_groups:
                group["lr"] = lr
            value = float(training_step(parts, controls, *next(batches)))
            if not math.isfinite(value):
                stopped = f"the loss became non-finite at lr {lr:.3g} (step {step})"
                break
            losses.append(value)
            average = beta * average + (1 - beta) * value
            smoothed.append(average / (1 - beta ** len(losses)))
            lowest = min(lowest, smoothed[-1])
            if step > 1 and smoothed[-1] > factor * lowest:
                stopped = (
                    f"diverged at lr {lr:.3g} (step {step}): the smoothed loss passed "
                    f"{factor:g}x its lowest ({lowest:.3g})"
                )
                break
    return RangeTest(
        lrs=lrs[: len(losses)],
        losses=losses,
        smoothed=smoothed,
        stopped=stopped,
        settings={k: settings[k] for k in settings} if hasattr(settings, "keys") else {},
    )


def valley_bounds(losses: list[float], share: float = 0.1) -> tuple[int, int]:
    """The descent: from where the loss has covered ``share`` of its fall to its lowest point
    (the fall is measured from the highest loss before that point), as (begin, lowest)."""
    lowest = int(np.argmin(losses))
    top = max(losses[: lowest + 1])
    threshold = top - share * (top - losses[lowest])
    begin = lowest
    while begin > 0 and losses[begin - 1] < threshold:
        begin -= 1
    return begin, lowest


def valley_index(losses: list[float]) -> tuple[int, int, int]:
    """The middle (on the log-lr axis) of the descent into the valley of the loss: past the
    flat start where the rate is too small to matter, short of the bottom where it starts to
    be too large (the idea of fastai's ``valley``, which takes a point a little past the
    middle of the longest descending stretch). Returns (index, begin, lowest)."""
    begin, lowest = valley_bounds(losses)
    return (begin + lowest) // 2, begin, lowest


def steepest_index(lrs: list[float], losses: list[float]) -> int:
    """Where the loss falls fastest against log(lr), before its lowest point."""
    lowest = int(np.argmin(losses))
    if lowest < 2:
        return lowest
    slopes = np.gradient(np.asarray(losses[: lowest + 1]), np.log10(lrs[: lowest + 1]))
    skip = min(len(slopes) - 1, max(1, len(losses) // 20))  # the first points are noise
    return skip + int(np.argmin(slopes[skip:]))


def suggest(test: RangeTest, method: str) -> Suggestion:
    """Read a learning rate off the curve with ``method`` (valley, steepest or minimum)."""
    lrs, losses = test.lrs, test.curve
    if len(losses) < 5:
        raise ValueError(
            f"the range test ran only {len(losses)} steps before it stopped ({test.stopped}); "
            "lower lr_find.start_lr or raise lr_find.num_steps"
        )
    lowest = int(np.argmin(losses))
    valley, valley_start, valley_end = valley_index(losses)
    steep = steepest_index(lrs, losses)
    by_method = {
        "valley": lrs[valley],
        "steepest": lrs[steep],
        "minimum": lrs[lowest] / 10,
    }
    drop = (losses[0] - losses[lowest]) / max(abs(losses[0]), 1e-12)
    explanations = {
        "valley": (
            f"the loss falls from lr {lrs[valley_start]:.3g} (where it had dropped a tenth of "
            f"the way) to its lowest at lr {lrs[valley_end]:.3g}; the suggestion is the middle "
            "of that descent on the log axis, fast but well short of the rates that blow up"
        ),
        "steepest": f"the smoothed loss falls fastest (against log lr) at lr {lrs[steep]:.3g}",
        "minimum": (
            f"the smoothed loss is lowest ({losses[lowest]:.3g}) at lr {lrs[lowest]:.3g}; "
            "a tenth of that is a safe rate"
        ),
    }
    explanation = explanations[method]
    if drop < 0.05:
        explanation += (
            f"; but the loss hardly fell during the test ({100 * drop:.1f}%): the pick is "
            "uncertain (widen lr_find.start_lr..end_lr, raise lr_find.num_steps, or check the "
            "model with debug=overfit_batch)"
        )
    index = {"valley": valley, "steepest": steep, "minimum": lowest}[method]
    return Suggestion(by_method[method], method, index, explanation, by_method)


def plot(test: RangeTest, suggestion: Suggestion, path: Path, title: str = "") -> Path:
    """Loss against learning rate (log axis), raw and smoothed, the suggestion marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.2))
    axes.plot(test.lrs, test.losses, color="0.75", linewidth=1, label="loss per step")
    curve = test.curve
    axes.plot(test.lrs, curve, color="C0", linewidth=2, label="smoothed")
    axes.axvline(suggestion.lr, color="C3", linestyle="--", linewidth=1.5)
    axes.plot(
        [suggestion.lr],
        [float(np.interp(np.log(suggestion.lr), np.log(test.lrs), curve))],
        "o",
        color="C3",
        label=f"suggested lr {suggestion.lr:.2g} ({suggestion.method})",
    )
    axes.set_xscale("log")
    axes.set_xlabel("learning rate (log scale)")
    axes.set_ylabel("training loss")
    low, high = min(curve), max(curve[: max(1, len(curve) * 9 // 10)])
    margin = 0.1 * max(high - low, 1e-12)
    axes.set_ylim(low - margin, high + 3 * margin)
    axes.set_title(title or "Learning-rate range test")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="upper left")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


@dataclass
class LrFindResult:
    """A finished test with its suggestion."""

    test: RangeTest
    suggestion: Suggestion

    def as_dict(self) -> dict[str, Any]:
        return {
            "suggested_lr": self.suggestion.lr,
            "method": self.suggestion.method,
            "explanation": self.suggestion.explanation,
            "by_method": self.suggestion.by_method,
            "stopped": self.test.stopped,
            "settings": self.test.settings,
            "lrs": self.test.lrs,
            "losses": self.test.losses,
            "smoothed": self.test.curve,
        }

    def report(self) -> list[str]:
        """What the command prints: the suggestion, how it was chosen, the other rules."""
        s, t = self.suggestion, self.test
        labels = {"minimum": "minimum/10"}  # the rule takes a tenth of the lowest point
        others = ", ".join(
            f"{labels.get(name, name)} {lr:.3g}"
            for name, lr in s.by_method.items()
            if name != s.method
        )
        return [
            s.line(),
            f"  how: {s.explanation}.",
            f"  other rules: {others} (lr_find.method=valley|steepest|minimum).",
            f"  the test: {len(t.lrs)} steps, lr {t.lrs[0]:.3g} .. {t.lrs[-1]:.3g}; {t.stopped}.",
        ]


def with_lr(cfg: Any, lr: float) -> Any:
    """A copy of ``cfg`` whose ``optimizer.lr`` is ``lr``."""
    from omegaconf import OmegaConf, open_dict

    copied = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    with open_dict(copied):
        copied.optimizer.lr = float(lr)
    return copied


def find_lr(cfg: Any, context: Any = None) -> tuple[Any, LrFindResult]:
    """Build the configured run (an ``auto`` lr becomes ``lr_find.start_lr`` meanwhile: the
    test sets the rate of every step itself), run the range test on it, and suggest.
    Returns the set-up recipe (model and optimizer as they were) and the result."""
    from trainlab.config.schema.optimizer import AUTO_LR
    from trainlab.train.recipe import JobContext, TrainingRecipe

    if cfg.optimizer.lr == AUTO_LR:
        cfg = with_lr(cfg, float(cfg.lr_find.start_lr))
    recipe = TrainingRecipe(cfg, context or JobContext(threads=int(cfg.trainer.threads)))
    recipe.setup()
    test = run_range_test(recipe.parts, recipe.step_controls(), cfg.lr_find)
    return recipe, LrFindResult(test, suggest(test, str(cfg.lr_find.method)))


def log_result(
    tracker: Any, result: Any, plot_path: Path | None, params: dict[str, Any] | None = None
) -> None:
    """Log a range test into ``tracker``'s run (its own, or the training run of lr=auto)."""
    suggestion = result.suggestion
    tracker.log_params(
        {
            **(params or {}),
            "lr_find.suggested_lr": f"{suggestion.lr:.6g}",
            "lr_find.suggestion_method": suggestion.method,
        }
    )
    tracker.set_tags({"trainlab.lr_find.suggested_lr": f"{suggestion.lr:.6g}"})
    points: list[tuple[str, float, int]] = []
    for step, (lr, loss, smoothed) in enumerate(
        zip(result.test.lrs, result.test.losses, result.test.curve, strict=True), 1
    ):
        points += [
            ("lr_find/lr", lr, step),
            ("lr_find/loss", loss, step),
            ("lr_find/smoothed_loss", smoothed, step),
        ]
    points.append(("lr_find/suggested_lr", suggestion.lr, 0))
    tracker.log_metrics(points)
    tracker.log_text(json.dumps(result.as_dict(), indent=2, default=str), "lr_find/lr_find.json")
    if plot_path is not None:  # under a fixed name, whatever --out said
        folder = Path(tempfile.mkdtemp(prefix="trainlab-lr-find-"))
        named = folder / f"lr_find{plot_path.suffix.lower()}"
        shutil.copyfile(plot_path, named)
        tracker.log_artifact(named, "lr_find")


def plot_to_temp(result: Any, title: str) -> Path:
    """The plot in a temporary folder (for the training run of ``optimizer.lr=auto``)."""
    folder = Path(tempfile.mkdtemp(prefix="trainlab-lr-find-"))
    return plot(result.test, result.suggestion, folder / "lr_find.png", title)
