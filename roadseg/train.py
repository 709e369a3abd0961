"""Training a road model: presets, schedules, checkpoints, resume and the final model file.

:func:`train` scans the dataset (:mod:`roadseg.data`), builds or loads the
ResUNet, streams random crops through ``tf.data``, and fits with Keras. Every
epoch it writes, in the run folder (default ``<model stem>_run/`` beside the
output model):

* ``checkpoints/last.keras`` and ``checkpoints/best.keras`` (lowest validation
  loss), both written atomically and including the optimizer state, so
  ``resume=True`` continues where a run stopped: epoch counter, optimizer
  moments, iteration count and therefore the learning-rate schedule;
* ``state.json``: epochs done, best validation loss, early-stopping patience
  used so far, the history, the seed and the configuration;
* ``log.csv`` (Keras CSV log), ``curves.png`` (training curves drawn with
  Pillow) and ``tensorboard/`` when the ``tensorboard`` package is installed.

At the end the best weights are copied into a float32, fully convolutional
model; the threshold that maximises F1 on the validation crops is chosen
(:class:`roadseg.thresholds.F1Sweep`) and stored in the model file's metadata
with the validation metrics, a description of the training data, its ground
sample distance and how the model was trained.

Two presets: ``default`` (BCE + Dice loss, Adam with a cosine schedule,
augmentation, early stopping) and ``paper`` (Zhang, Liu & Wang 2018: MSE loss,
plain SGD, learning rate 0.001 divided by 10 every 20 epochs, 50 epochs,
batch 8, no augmentation).

The library never prints: Keras' progress bar appears only with
``progress=True``, and per-epoch summaries go to an ``on_epoch`` callback.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np

from roadseg import __version__, interrupt
from roadseg.data import (
    AugmentConfig,
    CropReader,
    CropSpec,
    DatasetReport,
    LabelRule,
    SkipLog,
    crop_stream,
    make_tf_dataset,
    scan_dataset,
)
from roadseg.errors import DatasetError, ModelError, OutputError, RoadsegError
from roadseg.metrics import DEFAULT_THRESHOLD
from roadseg.model import (
    DEFAULT_FILTERS,
    LoadedModel,
    ModelInfo,
    build_resunet,
    bundled_model_path,
    load_model,
    read_model_info,
    save_model,
)
from roadseg.precision import PRECISIONS
from roadseg.preprocess import NORMALIZATIONS
from roadseg.raster_io import check_output
from roadseg.thresholds import F1Sweep
from roadseg.tiling import is_tile_size

log = logging.getLogger(__name__)

#: Default learning rate when fine-tuning (--init) with the default preset.
FINE_TUNE_LR = 3e-4
#: Cosine schedule ends at this fraction of the initial learning rate.
COSINE_ALPHA = 0.02
#: Crops taken from each opened training image, and the shuffle buffer that
#: mixes them into different batches.
CROPS_PER_IMAGE = 4
SHUFFLE_BUFFER = 64
#: Crop side without --tile-size or an --init model: the paper's patch size.
DEFAULT_TILE = 224
STATE_FILE = "state.json"
STATE_FORMAT = "roadseg-train-state/1"


@dataclass(frozen=True)
class Preset:
    """A training recipe.

    Attributes:
        name: preset name.
        loss: ``"bce_dice"`` or ``"mse"``.
        optimizer: ``"adam"`` or ``"sgd"``.
        lr: initial learning rate.
        schedule: ``"cosine"`` (to ``COSINE_ALPHA * lr`` at the last step) or
            ``"step"`` (divided by 10 every ``step_epochs``).
        epochs: number of epochs.
        batch_size: crops per batch.
        steps_per_epoch: batches per epoch; None means one pass over the
            training pixels (their area divided by the crop area and batch).
        augment: random flips, rotations, scale and colour changes.
        patience: epochs without a better validation loss before stopping
            early (0: never).
        road_focus: share of crops picked for containing road.
        step_epochs: epochs between learning-rate drops of the step schedule.
    """

    name: str
    loss: str
    optimizer: str
    lr: float
    schedule: str
    epochs: int
    batch_size: int
    steps_per_epoch: int | None
    augment: bool
    patience: int
    road_focus: float
    step_epochs: int = 20


PRESETS: dict[str, Preset] = {
    "default": Preset(
        name="default",
        loss="bce_dice",
        optimizer="adam",
        lr=1e-3,
        schedule="cosine",
        epochs=50,
        batch_size=8,
        steps_per_epoch=None,
        augment=True,
        patience=10,
        road_focus=0.5,
    ),
    # The paper samples 30,000 224x224 patches for training: 3,750 batches of 8.
    "paper": Preset(
        name="paper",
        loss="mse",
        optimizer="sgd",
        lr=1e-3,
        schedule="step",
        epochs=50,
        batch_size=8,
        steps_per_epoch=30_000 // 8,
        augment=False,
        patience=0,
        road_focus=0.0,
    ),
}


@dataclass(frozen=True)
class TrainConfig:
    """What to train, as the user asked. ``None`` means: from the preset, the
    ``init`` model or the data.

    Attributes:
        data: dataset folder (see :func:`roadseg.data.scan_dataset`).
        output: model file to write (``.keras``).
        run_dir: checkpoints and logs; default ``<output stem>_run`` beside it.
        preset: a key of :data:`PRESETS`.
        epochs: number of epochs.
        batch_size: crops per batch.
        steps_per_epoch: batches per epoch.
        val_steps: validation batches per epoch (fixed crops).
        lr: initial learning rate.
        filters: the four encoder widths (default 64,128,256,512).
        tile_size: crop size (default the init model's, else 224).
        precision: ``auto``, ``float32``, ``bfloat16`` or ``float16``.
        init: a model file to fine-tune, or ``"default"`` for the bundled model.
        seed: seed of weights, split, crops and augmentation.
        road_color: RGB of the road class in colour masks.
        road_value: value of the road class in index masks.
        road_width_m: width of rasterised road lines (SpaceNet).
        gsd: ground sample distance of the data in metres (for plain images).
        gsd_range: train at ground sample distances drawn log-uniformly from
            this range (metres per pixel): each crop is read from a window of
            its image's GSD and resized, so the model learns roads at every
            scale in it. The model then records the range's geometric mean as
            its GSD, and ``roadseg predict`` reads inputs at that GSD. Needs
            georeferenced images or ``gsd``.
        normalization: how pixels become model inputs, recorded in the model:
            ``auto`` (uint8 /255, other dtypes a 2-98 percentile stretch per
            band) or ``percentile`` (the stretch for every dtype: removes
            brightness, contrast and colour-balance differences between
            sensors). Default: the init model's, else ``auto``.
        bands: image bands that feed the model, 1-based.
        val_fraction: share of pairs for a seeded validation split.
        patience: early-stopping patience in epochs (0: off).
        augment: whether to augment.
        overwrite: replace an existing output model and run folder.
    """

    data: Path
    output: Path = Path("roadseg_model.keras")
    run_dir: Path | None = None
    preset: str = "default"
    epochs: int | None = None
    batch_size: int | None = None
    steps_per_epoch: int | None = None
    val_steps: int = 25
    lr: float | None = None
    filters: tuple[int, ...] | None = None
    tile_size: int | None = None
    precision: str = "auto"
    init: str | None = None
    seed: int = 0
    road_color: tuple[int, int, int] | None = None
    road_value: int | None = None
    road_width_m: float = 4.0
    gsd: float | None = None
    gsd_range: tuple[float, float] | None = None
    normalization: str | None = None
    bands: tuple[int, ...] | None = None
    val_fraction: float = 0.15
    patience: int | None = None
    augment: bool | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose {', '.join(PRESETS)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
        for name in ("epochs", "batch_size", "steps_per_epoch", "val_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"the learning rate must be positive, got {self.lr}")
        if self.tile_size is not None and not is_tile_size(self.tile_size):
            raise ValueError(f"tile size must be a multiple of 8, got {self.tile_size}")
        if self.filters is not None and (
            len(self.filters) != 4 or any(f < 1 for f in self.filters)
        ):
            raise ValueError(f"filters must be four positive widths, got {self.filters}")
        if self.patience is not None and self.patience < 0:
            raise ValueError(f"patience must be 0 or more, got {self.patience}")
        if self.gsd is not None and not self.gsd > 0:
            raise ValueError(f"gsd must be positive, got {self.gsd}")
        if self.gsd_range is not None and not (
            len(self.gsd_range) == 2 and 0 < self.gsd_range[0] <= self.gsd_range[1]
        ):
            raise ValueError(
                f"gsd_range must be two positive GSDs, low <= high, got {self.gsd_range}"
            )
        if self.normalization is not None and self.normalization not in NORMALIZATIONS:
            raise ValueError(
                f"normalization must be one of {', '.join(NORMALIZATIONS)}, "
                f"got {self.normalization!r}"
            )
        LabelRule(self.road_color, self.road_value, self.road_width_m)  # validates

    @property
    def run_folder(self) -> Path:
        """The run folder, explicit or derived from the output path."""
        if self.run_dir is not None:
            return Path(self.run_dir)
        out = Path(self.output)
        return out.with_name(f"{out.stem}_run")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict` (unknown keys are ignored)."""
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        for key in ("data", "output", "run_dir"):
            if kwargs.get(key) is not None:
                kwargs[key] = Path(kwargs[key])
        for key in ("filters", "road_color", "bands"):
            if kwargs.get(key) is not None:
                kwargs[key] = tuple(int(v) for v in kwargs[key])
        if kwargs.get("gsd_range") is not None:
            kwargs["gsd_range"] = tuple(float(v) for v in kwargs["gsd_range"])
        return cls(**kwargs)


@dataclass(frozen=True)
class EpochReport:
    """Passed to ``on_epoch`` after each epoch.

    Attributes:
        epoch: epochs done (1-based).
        epochs: epochs planned.
        logs: Keras' metrics for the epoch (``loss``, ``val_loss``, ``val_iou``, ...).
        seconds: wall time of the epoch.
        best: whether this epoch has the best validation loss so far.
    """

    epoch: int
    epochs: int
    logs: dict[str, float]
    seconds: float
    best: bool


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` produced.

    Attributes:
        model_path: the model file written.
        run_dir: checkpoints and logs.
        info: the model file's metadata (threshold, gsd, provenance).
        metrics: validation metrics of the saved model at its threshold.
        epochs_done: epochs trained in all (including before a resume).
        best_epoch: the epoch whose weights were saved.
        stopped_early: whether early stopping ended the run.
        history: per-epoch metrics.
        skipped: failed reads per file.
        seconds: wall time of this call.
        precision: the Keras dtype policy used for training.
        report: the dataset scan.
    """

    model_path: Path
    run_dir: Path
    info: ModelInfo
    metrics: dict[str, Any]
    epochs_done: int
    best_epoch: int
    stopped_early: bool
    history: dict[str, list[float]]
    skipped: dict[str, int]
    seconds: float
    precision: str
    report: DatasetReport


# --------------------------------------------------------------------------------------------
# Precision, optimizers, schedules
# --------------------------------------------------------------------------------------------


#: Keras dtype policy for each resolved precision.
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def training_policy(precision: str) -> str:
    """The Keras dtype policy for a ``--precision`` choice.

    ``auto`` follows :func:`roadseg.precision.resolve_precision`: float16 on a
    GPU, bfloat16 on a CPU with AVX-512-BF16 or AMX (about twice float32's
    training speed on this project's CPU, see ``scripts/bench_train.py``),
    float32 otherwise. Mixed policies keep the variables in float32.

    Raises:
        ValueError: for an unknown name.
    """
    from roadseg.precision import resolve_precision

    return POLICIES[resolve_precision(precision)]


def make_schedule(preset: Preset, lr: float, epochs: int, steps_per_epoch: int) -> Any:
    """The learning-rate schedule of ``preset``, driven by the optimizer's step count.

    Cosine: from ``lr`` to ``COSINE_ALPHA * lr`` over all steps. Step: ``lr``
    divided by 10 after every ``preset.step_epochs`` epochs.
    """
    import keras

    if preset.schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            lr, decay_steps=max(1, epochs * steps_per_epoch), alpha=COSINE_ALPHA
        )
    if preset.schedule == "step":
        drops = (epochs - 1) // preset.step_epochs
        if drops < 1:
            return lr
        # Piecewise values apply for step <= boundary; step n is the (n+1)-th update.
        boundaries = [k * preset.step_epochs * steps_per_epoch - 1 for k in range(1, drops + 1)]
        values = [lr * 0.1**k for k in range(drops + 1)]
        return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    raise ValueError(f"unknown schedule {preset.schedule!r}")


def make_optimizer(preset: Preset, schedule: Any, policy: str) -> Any:
    """Adam or plain SGD over ``schedule``; wrapped for loss scaling under float16."""
    import keras

    if preset.optimizer == "adam":
        opt = keras.optimizers.Adam(schedule)
    elif preset.optimizer == "sgd":
        opt = keras.optimizers.SGD(schedule)
    else:
        raise ValueError(f"unknown optimizer {preset.optimizer!r}")
    if policy == "mixed_float16":
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt


def _loss(preset: Preset) -> Any:
    from roadseg.losses import bce_dice_loss

    return bce_dice_loss if preset.loss == "bce_dice" else "mean_squared_error"


def _metrics() -> list[Any]:
    import keras

    return [
        keras.metrics.BinaryIoU(target_class_ids=[1], threshold=0.5, name="iou"),
        keras.metrics.Precision(name="precision"),
        keras.metrics.Recall(name="recall"),
    ]


def resunet_filters(model: Any) -> tuple[int, ...] | None:
    """The four widths of a roadseg ResUNet, read from its layer names, or None."""
    try:
        return tuple(
            int(model.get_layer(name).filters)
            for name in ("enc1_conv1", "enc2_conv1", "enc3_conv1", "bridge_conv1")
        )
    except (ValueError, AttributeError):
        return None


# --------------------------------------------------------------------------------------------
# Files of a run
# --------------------------------------------------------------------------------------------


def _write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True, default=_json_default)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _copy_atomic(src: Path, dest: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.stem}.", suffix=dest.suffix, dir=dest.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def plot_history(
    history: Mapping[str, Sequence[float | None]], path: str | os.PathLike[str]
) -> Path:
    """Draw training curves as a PNG with Pillow (no plotting library needed).

    Left panel: ``loss`` and ``val_loss`` per epoch; right panel: validation
    IoU, precision and recall at 0.5. The file is replaced atomically.

    Raises:
        OSError: if the file cannot be written.
    """
    from PIL import Image, ImageDraw, ImageFont

    path = Path(path)
    width, height, pad = 960, 420, 52
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    panels = [
        ("loss", [("loss", (31, 119, 180)), ("val_loss", (255, 127, 14))], None),
        (
            "validation at 0.5",
            [
                ("val_iou", (44, 160, 44)),
                ("val_precision", (148, 103, 189)),
                ("val_recall", (214, 39, 40)),
            ],
            (0.0, 1.0),
        ),
    ]
    n_epochs = max((len(v) for v in history.values()), default=0)
    panel_w = (width - 3 * pad) // 2
    for p, (title, series, fixed) in enumerate(panels):
        x0 = pad + p * (panel_w + pad)
        y0, y1 = pad // 2 + 14, height - pad
        x1 = x0 + panel_w
        values = [
            v
            for key, _ in series
            for v in (_finite(x) for x in history.get(key, []))
            if v is not None
        ]
        if fixed is not None:
            lo, hi = fixed
        elif values:
            lo, hi = min(values), max(values)
            if hi - lo < 1e-9:
                lo, hi = lo - 0.5, hi + 0.5
            margin = 0.05 * (hi - lo)
            lo, hi = lo - margin, hi + margin
        else:
            lo, hi = 0.0, 1.0
        draw.rectangle([x0, y0, x1, y1], outline=(120, 120, 120))
        draw.text((x0, y0 - 16), title, fill="black", font=font)
        for k in range(5):
            value = lo + (hi - lo) * k / 4
            y = y1 - (y1 - y0) * k / 4
            draw.line([x0, y, x0 + 4, y], fill=(120, 120, 120))
            draw.text((x0 - pad + 4, y - 6), f"{value:.3g}", fill="black", font=font)
        span = max(1, n_epochs - 1)
        ticks = sorted({1, n_epochs} | set(range(1, n_epochs + 1, max(1, n_epochs // 5))))
        for e in ticks if n_epochs else []:
            x = x0 + (x1 - x0) * (e - 1) / span
            draw.text((x - 4, y1 + 4), str(e), fill="black", font=font)
        draw.text((x0 + panel_w // 2 - 14, y1 + 18), "epoch", fill="black", font=font)
        for i, (key, colour) in enumerate(series):
            draw.text((x0 + 8 + 110 * i, y0 + 4), key, fill=colour, font=font)
            points = [
                (x0 + (x1 - x0) * e / span, y1 - (y1 - y0) * (v - lo) / (hi - lo))
                for e, v in enumerate(_finite(x) for x in history.get(key, []))
                if v is not None
            ]
            if len(points) > 1:
                draw.line(points, fill=colour, width=2)
            for x, y in points:
                draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
    from roadseg.raster_io import atomic_output

    with atomic_output(path) as tmp:
        img.save(tmp, format="PNG")
    return path


# --------------------------------------------------------------------------------------------
# Validation: threshold and metrics
# --------------------------------------------------------------------------------------------


def validation_metrics(
    infer: Callable[[np.ndarray], np.ndarray],
    crops: Iterator[tuple[np.ndarray, np.ndarray]],
    batch_size: int,
) -> dict[str, Any]:
    """The best-F1 threshold and the metrics at it, over validation crops.

    Probabilities are kept (float16) until the threshold is known, then scored
    with :mod:`roadseg.metrics`, so the metrics at the threshold are exact.

    Args:
        infer: ``(N, H, W, bands)`` float32 -> ``(N, H, W)`` probabilities.
        crops: ``(image, mask (H, W, 1))`` pairs.
        batch_size: crops per model call.

    Returns:
        ``threshold``, ``f1``, ``precision``, ``recall``, ``iou``,
        ``relaxed_precision``, ``relaxed_recall``, ``breakeven``, ``crops``,
        ``road_fraction``.
    """
    from roadseg.metrics import MetricsAccumulator, float_levels, quantize_probabilities

    sweep = F1Sweep()
    probs: list[np.ndarray] = []
    truths: list[np.ndarray] = []
    batch_x: list[np.ndarray] = []
    batch_y: list[np.ndarray] = []

    def flush() -> None:
        if not batch_x:
            return
        prob = infer(np.stack(batch_x))
        for p, t in zip(prob, batch_y, strict=True):
            sweep.update(p, t)
            probs.append(p.astype(np.float16))
            truths.append(t)
        batch_x.clear()
        batch_y.clear()

    for image, mask in crops:
        batch_x.append(image)
        batch_y.append(mask[..., 0] > 0.5)
        if len(batch_x) == batch_size:
            flush()
    flush()
    if not probs:
        raise DatasetError("no validation crop could be read")
    threshold, f1, precision, recall = sweep.best()
    # The threshold is inserted into the k/254 grid unless it already lies on it
    # (0.5 does), so the number of levels depends on it.
    levels = float_levels(threshold)
    acc = MetricsAccumulator(n_levels=len(levels))
    for p, t in zip(probs, truths, strict=True):
        acc.add(quantize_probabilities(p.astype(np.float32), threshold), t)
    result = acc.result(levels, threshold)
    road = float(np.mean([t.mean() for t in truths]))

    def r(x: float) -> float | None:
        return None if not math.isfinite(x) else round(float(x), 4)

    return {
        "threshold": round(threshold, 4),
        "f1": r(result.f1),
        "precision": r(result.precision),
        "recall": r(result.recall),
        "iou": r(result.iou),
        "relaxed_precision": r(result.relaxed_precision),
        "relaxed_recall": r(result.relaxed_recall),
        "rho": result.rho,
        "breakeven": r(result.breakeven),
        "crops": len(probs),
        "road_fraction": round(road, 4),
        "f1_sweep": r(f1),
        "sweep_precision": r(precision),
        "sweep_recall": r(recall),
    }


# --------------------------------------------------------------------------------------------
# The Keras callback that keeps a run's files
# --------------------------------------------------------------------------------------------


def _make_keeper(
    *,
    run_dir: Path,
    state: dict[str, Any],
    info: ModelInfo,
    epochs: int,
    patience: int,
    on_epoch: Callable[[EpochReport], None] | None,
) -> Any:
    import keras

    class RunKeeper(keras.callbacks.Callback):
        """Checkpoints (last, best), state.json, curves and early stopping."""

        def __init__(self) -> None:
            super().__init__()
            self.started = time.perf_counter()

        def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
            self.started = time.perf_counter()

        def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
            interrupt.check()  # a Ctrl-C/SIGTERM whose exception Python swallowed

        def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
            logs = {k: float(v) for k, v in (logs or {}).items() if _finite(v) is not None}
            seconds = time.perf_counter() - self.started
            done = epoch + 1
            lr = _finite(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            history = state["history"]
            row = dict(logs, epoch=done, seconds=round(seconds, 2), lr=lr)
            n = len(history.get("epoch", []))
            for key in sorted(set(history) | set(row)):
                history.setdefault(key, [None] * n)
                history[key].append(row.get(key))
            ckpt = run_dir / "checkpoints"
            prov = dict(info.provenance, checkpoint_epoch=done)
            save_model(
                self.model,
                ckpt / "last.keras",
                dataclasses.replace(info, provenance=prov),
            )
            val = logs.get("val_loss", logs.get("loss"))
            best = state["best"]
            improved = val is not None and (best is None or val < best)
            if improved:
                state["best"] = val
                state["best_epoch"] = done
                state["wait"] = 0
                _copy_atomic(ckpt / "last.keras", ckpt / "best.keras")
            else:
                state["wait"] += 1
            state["epoch"] = done
            if patience and state["wait"] >= patience and done < epochs:
                state["stopped_early"] = True
                self.model.stop_training = True
            _write_json_atomic(run_dir / STATE_FILE, state)
            try:
                plot_history(state["history"], run_dir / "curves.png")
            except OSError as exc:  # a plot is not worth a failed run
                log.warning("could not draw %s: %s", run_dir / "curves.png", exc)
            if on_epoch is not None:
                on_epoch(EpochReport(done, epochs, logs, seconds, improved))

    return RunKeeper()


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainPlan:
    """Everything resolved from the preset, the options, the init model and the data.

    Attributes:
        preset: the recipe.
        epochs: epochs in all.
        batch_size: crops per batch.
        steps_per_epoch: batches per epoch.
        val_steps: validation batches per epoch.
        lr: initial learning rate.
        filters: encoder widths.
        tile: crop size.
        bands: input bands.
        augment: whether crops are augmented.
        patience: early-stopping patience (0: off).
        policy: Keras dtype policy.
        init_info: path and SHA-256 of the model fine-tuned from, if any.
        normalization: how pixels become model inputs (see :class:`TrainConfig`).
        gsd_range: the range of training GSDs, or None to train at the data's own.
    """

    preset: Preset
    epochs: int
    batch_size: int
    steps_per_epoch: int
    val_steps: int
    lr: float
    filters: tuple[int, ...]
    tile: int
    bands: int
    augment: bool
    patience: int
    policy: str
    init_info: dict[str, Any] = field(default_factory=dict)
    normalization: str = "auto"
    gsd_range: tuple[float, float] | None = None

    @property
    def model_gsd(self) -> float | None:
        """The GSD a model trained over ``gsd_range`` works at: its geometric mean."""
        if self.gsd_range is None:
            return None
        return round(math.sqrt(self.gsd_range[0] * self.gsd_range[1]), 3)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the preset by name)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["preset"] = self.preset.name
        data["filters"] = list(self.filters)
        return data


@dataclass(frozen=True)
class RunStart:
    """Passed to ``on_start`` once the data is checked and the model is ready.

    Attributes:
        report: the dataset scan.
        plan: the resolved training plan.
        initial_epoch: epochs already done (non-zero when resuming).
        run_dir: checkpoints and logs.
    """

    report: DatasetReport
    plan: TrainPlan
    initial_epoch: int
    run_dir: Path


def _plan_from_state(data: Mapping[str, Any]) -> TrainPlan:
    """The plan a run started with, from its ``state.json``."""
    try:
        return TrainPlan(
            preset=PRESETS[data["preset"]],
            epochs=int(data["epochs"]),
            batch_size=int(data["batch_size"]),
            steps_per_epoch=int(data["steps_per_epoch"]),
            val_steps=int(data["val_steps"]),
            lr=float(data["lr"]),
            filters=tuple(int(f) for f in data["filters"]),
            tile=int(data["tile"]),
            bands=int(data["bands"]),
            augment=bool(data["augment"]),
            patience=int(data["patience"]),
            policy=str(data["policy"]),
            init_info=dict(data.get("init_info") or {}),
            normalization=str(data.get("normalization", "auto")),
            gsd_range=(
                (float(data["gsd_range"][0]), float(data["gsd_range"][1]))
                if data.get("gsd_range")
                else None
            ),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"the saved training state is incomplete ({exc}); start again") from None


def _resolve_init(init: str | None) -> Path | None:
    if init is None:
        return None
    if init == "default":
        path = bundled_model_path()
        if not path.is_file():
            raise ModelError(
                f"the bundled model is not installed ({path}); give --init PATH to a model file"
            )
        return path
    return Path(init)


def _plan(config: TrainConfig, report: DatasetReport, init: Any | None, policy: str) -> TrainPlan:
    preset = PRESETS[config.preset]
    filters = tuple(config.filters) if config.filters else None
    tile = config.tile_size
    init_info: dict[str, Any] = {}
    if init is not None:
        widths = init.info.filters or resunet_filters(init.model)
        if not widths:
            raise ModelError(
                f"{init.path} is not a roadseg ResUNet (no enc1_conv1 ... bridge_conv1 layers); "
                "--init needs a model made by roadseg"
            )
        if filters is not None and tuple(filters) != tuple(widths):
            raise ModelError(
                f"--filters {','.join(map(str, filters))} differ from the widths of "
                f"{init.path.name} ({','.join(map(str, widths))}); "
                "leave --filters out when fine-tuning"
            )
        if config.bands and len(config.bands) != init.info.bands:
            raise ModelError(
                f"--bands gives {len(config.bands)} band(s) but {init.path.name} takes "
                f"{init.info.bands}"
            )
        filters = tuple(widths)
        tile = tile or init.info.tile_size
        init_info = {"path": str(init.path), "sha256": init.sha256}
    filters = filters or DEFAULT_FILTERS
    tile = tile or DEFAULT_TILE
    batch = config.batch_size or preset.batch_size
    steps = config.steps_per_epoch or preset.steps_per_epoch
    if steps is None:
        steps = max(1, math.ceil(report.megapixels * 1e6 / (tile * tile) / batch))
    lr = config.lr
    if lr is None:
        lr = FINE_TUNE_LR if init is not None and preset.name == "default" else preset.lr
    bands = len(config.bands) if config.bands else (init.info.bands if init is not None else 3)
    normalization = config.normalization or (
        init.info.normalization if init is not None else "auto"
    )
    if init is not None and normalization != init.info.normalization:
        raise RoadsegError(
            f"--normalization {normalization} differs from {init.path.name}'s "
            f"{init.info.normalization}; a fine-tuned model must see its inputs as it learned them"
        )
    if config.gsd_range is not None and report.gsd is None:
        raise DatasetError(
            "--gsd-range needs the ground sample distance of the images: georeferenced "
            "images, or --gsd M for images without georeferencing"
        )
    return TrainPlan(
        preset=preset,
        epochs=config.epochs or preset.epochs,
        batch_size=batch,
        steps_per_epoch=steps,
        val_steps=config.val_steps,
        lr=lr,
        filters=tuple(int(f) for f in filters),
        tile=int(tile),
        bands=int(bands),
        augment=preset.augment if config.augment is None else config.augment,
        patience=preset.patience if config.patience is None else config.patience,
        policy=policy,
        init_info=init_info,
        normalization=normalization,
        gsd_range=config.gsd_range,
    )


def _prepare_run_dir(run_dir: Path, *, resume: bool, overwrite: bool) -> dict[str, Any] | None:
    """Check or clear the run folder; the saved state when resuming."""
    state_path = run_dir / STATE_FILE
    if resume:
        if not state_path.is_file() or not (run_dir / "checkpoints" / "last.keras").is_file():
            raise ModelError(
                f"nothing to resume: {run_dir} has no {STATE_FILE} and checkpoints/last.keras; "
                "start the run without --resume"
            )
        try:
            state = json.loads(state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"{state_path} is unreadable ({exc}); start again with --overwrite"
            ) from None
        if state.get("format") != STATE_FORMAT:
            raise ModelError(f"{state_path} is not a roadseg training state")
        if state.get("finished"):
            raise ModelError(
                f"the run in {run_dir} already finished and wrote "
                f"{state.get('model', 'its model')}; start a new run with --overwrite"
            )
        return state
    if overwrite:
        return None
    if state_path.is_file():
        try:
            finished = json.loads(state_path.read_text(encoding="utf-8")).get("model")
        except (OSError, ValueError, AttributeError):
            finished = None
        if finished:
            raise OutputError(
                f"{run_dir} holds a finished run (it wrote {finished}); "
                "use --overwrite to train again"
            )
    if state_path.exists() or (run_dir / "checkpoints").exists():
        raise OutputError(
            f"{run_dir} holds an earlier run; use --resume to continue it "
            "or --overwrite to start again"
        )
    return None


def _clear_run_dir(run_dir: Path) -> None:
    """Remove the files an earlier run left (only roadseg's own names)."""
    for name in ("checkpoints", "tensorboard"):
        shutil.rmtree(run_dir / name, ignore_errors=True)
    for name in (STATE_FILE, "log.csv", "curves.png", "skipped.csv"):
        (run_dir / name).unlink(missing_ok=True)


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    progress: bool = False,
    on_start: Callable[[RunStart], None] | None = None,
    on_epoch: Callable[[EpochReport], None] | None = None,
) -> TrainResult:
    """Train (or fine-tune, or resume training) a road model and write its file.

    The steps, in order: :func:`_resolve_config` (the configuration, or the
    saved one when resuming), :func:`_scan_and_plan` (the data and the plan),
    :func:`_start_model` (a new model, or the last checkpoint's), :func:`_fit`
    (the epochs, with the callbacks that keep the run's files),
    :func:`_final_model` and :func:`_final_metrics` (the best weights as a
    float32 model, scored on the validation crops) and :func:`_save`.

    Args:
        config: what to train; with ``resume`` the configuration saved in the
            run folder is used instead (except ``output`` and ``overwrite``;
            ``data`` may be ``Path(".")``), and options that differ from it
            are ignored with a warning.
        resume: continue the run in ``config.run_folder`` from its last
            checkpoint (epoch, optimizer state and learning-rate schedule).
        progress: show Keras' progress bar.
        on_start: called once the data is checked and the model is ready,
            with a :class:`RunStart`.
        on_epoch: called after every epoch with an :class:`EpochReport`.

    Returns:
        A :class:`TrainResult`.

    Raises:
        DatasetError: the data is missing, in no known layout, or bad (every
            offending file is named), or every file fails while training.
        ModelError: ``init`` is not a usable model, or there is nothing to resume.
        RoadsegError: the loss never became finite (no usable checkpoint).
        OutputError: the model file or run folder exists (without overwrite or
            resume) or cannot be written.
    """
    started = time.perf_counter()
    config, saved = _resolve_config(config, resume)
    report, plan, init = _scan_and_plan(config, saved)
    run_dir = config.run_folder
    model, state, initial_epoch = _start_model(config, plan, init, saved, run_dir)
    run = _Run(config, plan, report, run_dir, state, initial_epoch)
    crops = _CropStreams(run)
    _fit(run, model, crops, progress=progress, on_start=on_start, on_epoch=on_epoch)
    final = _final_model(run)
    metrics = _final_metrics(run, final, crops)
    return _save(run, final, metrics, crops.skips, started)


@dataclass(frozen=True)
class _Run:
    """What the steps of :func:`train` after :func:`_start_model` share.

    ``state`` is the content of ``state.json``, updated in place every epoch.
    """

    config: TrainConfig
    plan: TrainPlan
    report: DatasetReport
    run_dir: Path
    state: dict[str, Any]
    initial_epoch: int


def _resolve_config(config: TrainConfig, resume: bool) -> tuple[TrainConfig, dict[str, Any] | None]:
    """Check the outputs; the configuration to train with and, when resuming,
    the saved state (whose configuration then wins, except the output, run
    folder and overwrite).

    Raises:
        OutputError, ModelError: see :func:`train`.
    """
    run_dir = config.run_folder
    output = Path(config.output)
    if output.suffix != ".keras":
        raise OutputError(f"{output}: a model file must end in .keras")
    saved = _prepare_run_dir(run_dir, resume=resume, overwrite=config.overwrite)
    check_output(output, overwrite=config.overwrite, what="model file")
    if saved is None:
        return config, None
    stored = TrainConfig.from_dict(saved["config"])
    # Options left at their defaults (and no --data) say nothing; others that
    # differ from the saved run are ignored, with a warning.
    changed = [
        f.name
        for f in dataclasses.fields(TrainConfig)
        if f.name not in ("overwrite", "output", "run_dir")
        and getattr(config, f.name) != f.default
        and not (f.name == "data" and Path(config.data) == Path("."))
        and getattr(stored, f.name) != getattr(config, f.name)
    ]
    if changed:
        log.warning(
            "resuming with the options the run started with; ignoring changed %s",
            ", ".join(changed),
        )
    config = dataclasses.replace(stored, output=output, run_dir=run_dir, overwrite=config.overwrite)
    return config, saved


def _scan_and_plan(
    config: TrainConfig, saved: Mapping[str, Any] | None
) -> tuple[DatasetReport, TrainPlan, LoadedModel | None]:
    """Scan the data and resolve the plan (the saved one when resuming); the
    ``init`` model when fine-tuning.

    Raises:
        DatasetError, ModelError: see :func:`train`.
    """
    rule = LabelRule(config.road_color, config.road_value, config.road_width_m)
    init = None
    saved_plan = _plan_from_state(saved["plan"]) if saved is not None else None
    if saved_plan is not None:
        model_bands = saved_plan.bands
        tile_size = saved_plan.tile
    else:
        init_path = _resolve_init(config.init)
        init = load_model(init_path) if init_path is not None else None
        model_bands = len(config.bands) if config.bands else (init.info.bands if init else 3)
        tile_size = config.tile_size or (init.info.tile_size if init else DEFAULT_TILE)
    report = scan_dataset(
        config.data,
        rule=rule,
        bands=config.bands,
        model_bands=model_bands,
        gsd=config.gsd,
        val_fraction=config.val_fraction,
        seed=config.seed,
        tile_size=tile_size,
    )
    report.raise_for_errors()
    if saved_plan is not None:
        return report, saved_plan, init
    return report, _plan(config, report, init, training_policy(config.precision)), init


def _start_model(
    config: TrainConfig,
    plan: TrainPlan,
    init: LoadedModel | None,
    saved: dict[str, Any] | None,
    run_dir: Path,
) -> tuple[Any, dict[str, Any], int]:
    """Prepare the run folder; the compiled model, the run's state and the
    epochs already done: a new model (with the ``init`` weights when
    fine-tuning), or the last checkpoint when resuming.

    Raises:
        ModelError: the checkpoint cannot be loaded, or ``init`` does not fit.
    """
    policy = plan.policy
    if (
        policy == "float32"
        and min(plan.filters) < 16
        and os.environ.get("TF_ENABLE_ONEDNN_OPTS") != "0"
    ):
        # Measured: TF 2.21's oneDNN float32 conv backprop segfaults for widths
        # 4 or 8 on 64 px crops (AVX-512 CPU); bfloat16 and widths >= 16 are fine.
        log.warning(
            "widths below 16 have crashed TensorFlow's float32 oneDNN kernels; if training "
            "dies, use --precision bfloat16 or set TF_ENABLE_ONEDNN_OPTS=0"
        )

    import keras

    import roadseg.losses  # noqa: F401  (registers the loss for checkpoint loading)

    if saved is None:
        _clear_run_dir(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    if saved is not None:
        last = run_dir / "checkpoints" / "last.keras"
        ckpt_info = read_model_info(last)
        initial_epoch = int(
            (ckpt_info.provenance.get("checkpoint_epoch") if ckpt_info else None) or saved["epoch"]
        )
        keras.utils.set_random_seed(config.seed + initial_epoch)
        try:
            model = keras.saving.load_model(last, compile=True)
        except Exception as exc:  # Keras raises many types for bad archives
            raise ModelError(f"{last} could not be loaded to resume: {exc}") from None
        state = saved
        state["epoch"] = initial_epoch
        state["history"] = {k: list(v)[:initial_epoch] for k, v in state.get("history", {}).items()}
        return model, state, initial_epoch
    keras.utils.set_random_seed(config.seed)
    model = build_resunet(
        (plan.tile, plan.tile, plan.bands),
        plan.filters,
        dtype=None if policy == "float32" else policy,
    )
    if init is not None:
        try:
            model.set_weights(init.model.get_weights())
        except ValueError as exc:
            raise ModelError(f"{init.path} does not fit a ResUNet of its widths: {exc}") from None
    schedule = make_schedule(plan.preset, plan.lr, plan.epochs, plan.steps_per_epoch)
    model.compile(
        optimizer=make_optimizer(plan.preset, schedule, policy),
        loss=_loss(plan.preset),
        metrics=_metrics(),
        jit_compile=False,
    )
    state = {
        "format": STATE_FORMAT,
        "roadseg_version": __version__,
        "config": config.to_dict(),
        "plan": plan.to_dict(),
        "epoch": 0,
        "best": None,
        "best_epoch": 0,
        "wait": 0,
        "stopped_early": False,
        "finished": False,
        "history": {},
    }
    return model, state, 0


class _CropStreams:
    """The crops of a run, read from disk as training goes; failed reads in ``skips``.

    Every :meth:`train` call is a new pass with its own seed (Keras starts one
    each time it re-reads the dataset); :meth:`val` gives the same crops every time.
    """

    def __init__(self, run: _Run) -> None:
        plan = run.plan
        self.skips = SkipLog()
        self.spec = CropSpec(
            tile_size=plan.tile,
            decoder=run.report.decoder,
            road_width_m=run.config.road_width_m,
            bands=run.config.bands,
            model_bands=plan.bands,
            augment=AugmentConfig() if plan.augment else None,
            road_focus=plan.preset.road_focus,
            normalization=plan.normalization,
            gsd=run.report.gsd,
            gsd_range=plan.gsd_range,
            val_gsd=plan.model_gsd,
        )
        self.reader = CropReader(self.spec)
        self.n_val = plan.val_steps * plan.batch_size
        self._run = run
        self._passes = iter(range(1 << 30))

    def train(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Training crops: one pass over the training pairs, in a seeded order."""
        run, plan = self._run, self._run.plan
        return crop_stream(
            run.report.train,
            self.reader,
            seed=[run.config.seed, run.initial_epoch, next(self._passes)],
            train=True,
            per_image=CROPS_PER_IMAGE if plan.augment or plan.preset.road_focus else 1,
            skips=self.skips,
        )

    def val(self, reader: CropReader | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The validation crops (through ``reader``, default the training one)."""
        return crop_stream(
            self._run.report.val,
            self.reader if reader is None else reader,
            seed=[self._run.config.seed, 1_000_003],
            train=False,
            count=self.n_val,
            skips=self.skips,
        )


def _fit(
    run: _Run,
    model: Any,
    crops: _CropStreams,
    *,
    progress: bool,
    on_start: Callable[[RunStart], None] | None,
    on_epoch: Callable[[EpochReport], None] | None,
) -> None:
    """The epochs still to do, with the callbacks that keep the run's files.

    Raises:
        DatasetError: the first pairs cannot be read, or every file fails.
    """
    import keras

    config, plan, run_dir, initial_epoch = run.config, run.plan, run.run_dir, run.initial_epoch
    base_info = _model_info(config, plan, run.report, threshold=0.5, metrics={}, extra={})
    # Fail early, with the file named, if the first pairs cannot be read at all.
    for stream in (crops.train(), crops.val()):
        next(iter(stream), None)
        if crops.skips.fatal is not None:
            raise crops.skips.fatal

    train_ds = make_tf_dataset(
        crops.train,
        tile_size=plan.tile,
        bands=plan.bands,
        batch_size=plan.batch_size,
        shuffle=SHUFFLE_BUFFER,
        seed=config.seed + initial_epoch,
    )
    val_ds = make_tf_dataset(
        crops.val, tile_size=plan.tile, bands=plan.bands, batch_size=plan.batch_size
    )
    keeper = _make_keeper(
        run_dir=run_dir,
        state=run.state,
        info=base_info,
        epochs=plan.epochs,
        patience=plan.patience,
        on_epoch=on_epoch,
    )
    if initial_epoch > 0:
        _trim_csv_log(run_dir / "log.csv", initial_epoch)
    callbacks: list[Any] = [
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.CSVLogger(str(run_dir / "log.csv"), append=initial_epoch > 0),
        keeper,
    ]
    if find_spec("tensorboard") is not None:
        callbacks.append(
            keras.callbacks.TensorBoard(
                str(run_dir / "tensorboard"), write_graph=False, profile_batch=0
            )
        )
    elif initial_epoch == 0:
        log.info("TensorBoard logs skipped: the tensorboard package is not installed")

    if on_start is not None:
        on_start(RunStart(run.report, plan, initial_epoch, run_dir))
    if initial_epoch >= plan.epochs or run.state.get("stopped_early"):
        return
    try:
        model.fit(
            train_ds,
            epochs=plan.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=plan.steps_per_epoch,
            validation_data=val_ds,
            validation_steps=math.ceil(crops.n_val / plan.batch_size),
            callbacks=callbacks,
            verbose=1 if progress else 0,
            shuffle=False,
        )
    except Exception:
        # A generator's DatasetError reaches us wrapped in a TensorFlow error.
        if crops.skips.fatal is not None:
            raise crops.skips.fatal from None
        raise
    if crops.skips.fatal is not None:
        raise crops.skips.fatal


def _final_model(run: _Run) -> Any:
    """The saved model: the best checkpoint's weights, float32, any input size.

    Raises:
        RoadsegError: no epoch ever had a finite loss, so there is no best checkpoint.
    """
    import keras

    best_path = run.run_dir / "checkpoints" / "best.keras"
    if not best_path.is_file():
        raise RoadsegError(
            "training produced no usable model: the loss was never finite "
            f"(see {run.run_dir / 'log.csv'}); lower --lr or check the data with --check"
        )
    trained = keras.saving.load_model(best_path, compile=False)
    final = build_resunet((None, None, run.plan.bands), run.plan.filters)
    final.set_weights(trained.get_weights())
    return final


def _final_metrics(run: _Run, final: Any, crops: _CropStreams) -> dict[str, Any]:
    """The final model's threshold and metrics on the validation crops (see
    :func:`validation_metrics`), with the best validation loss.

    A failed scoring does not fail the run: hours of training must not end
    without a model file, so it is logged and the default threshold is kept.
    """
    from roadseg.predict import make_infer_fn

    plan = run.plan
    infer = make_infer_fn(final, plan.tile, plan.bands)
    val_reader = CropReader(dataclasses.replace(crops.spec, augment=None))
    try:
        metrics = validation_metrics(infer, crops.val(val_reader), plan.batch_size)
    except Exception as exc:  # noqa: BLE001 - a finished training must still become a model
        log.warning(
            "the final validation failed (%s: %s); the model is saved with threshold %s "
            "and no validation metrics",
            type(exc).__name__,
            exc,
            DEFAULT_THRESHOLD,
        )
        metrics = {
            "threshold": DEFAULT_THRESHOLD,
            "validation_error": f"{type(exc).__name__}: {exc}",
        }
    if run.state.get("best") is not None:
        metrics["val_loss"] = round(float(run.state["best"]), 5)
    return metrics


def _save(
    run: _Run, final: Any, metrics: dict[str, Any], skips: SkipLog, started: float
) -> TrainResult:
    """Write the model file with its metadata, mark the run finished; the result."""
    state, output = run.state, Path(run.config.output)
    info = _model_info(
        run.config,
        run.plan,
        run.report,
        threshold=float(metrics["threshold"]),
        metrics=metrics,
        extra={
            "epochs_trained": int(state["epoch"]),
            "best_epoch": int(state.get("best_epoch", 0)),
            "stopped_early": bool(state.get("stopped_early")),
            "skipped_reads": skips.total,
            "train_seconds": round(
                sum(s for s in state["history"].get("seconds", []) if s is not None)
            ),
        },
    )
    check_output(output, overwrite=run.config.overwrite, what="model file")
    save_model(final, output, info)
    state["finished"] = True
    state["model"] = str(output)
    _write_json_atomic(run.run_dir / STATE_FILE, state)
    _write_skips(run.run_dir, skips)
    return TrainResult(
        model_path=output,
        run_dir=run.run_dir,
        info=info,
        metrics=metrics,
        epochs_done=int(state["epoch"]),
        best_epoch=int(state.get("best_epoch", 0)),
        stopped_early=bool(state.get("stopped_early")),
        history={k: list(v) for k, v in state["history"].items()},
        skipped=dict(skips.counts),
        seconds=time.perf_counter() - started,
        precision=run.plan.policy,
        report=run.report,
    )


def _trim_csv_log(path: Path, epochs: int) -> None:
    """Keep the header and the first ``epochs`` rows of a CSV log (a killed run
    may have logged epochs its checkpoint does not have)."""
    if not path.is_file():
        return
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.reader(fh) if r]
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if r[0].isdigit() and int(r[0]) < epochs]
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows(kept)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _write_skips(run_dir: Path, skips: SkipLog) -> None:
    if not skips.counts:
        return
    with open(run_dir / "skipped.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "failures", "reason"])
        for name, n in skips.counts.most_common():
            writer.writerow([name, n, skips.reasons.get(name, "")])


def _model_info(
    config: TrainConfig,
    plan: TrainPlan,
    report: DatasetReport,
    *,
    threshold: float,
    metrics: dict[str, Any],
    extra: dict[str, Any],
) -> ModelInfo:
    preset = plan.preset
    optimizer = f"{preset.optimizer} lr {plan.lr:g} " + (
        "cosine" if preset.schedule == "cosine" else f"/10 every {preset.step_epochs} epochs"
    )
    provenance: dict[str, Any] = {
        "trained_by": "roadseg train",
        "roadseg_version": __version__,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "data": report.summary(),
        "layout": report.layout,
        "pairs": {"train": len(report.train), "val": len(report.val), "test": len(report.test)},
        "labels": report.decoder.description,
        "preset": preset.name,
        "loss": "bce+dice" if preset.loss == "bce_dice" else "mse",
        "optimizer": optimizer,
        "epochs": plan.epochs,
        "batch_size": plan.batch_size,
        "steps_per_epoch": plan.steps_per_epoch,
        "augment": plan.augment,
        "precision": plan.policy,
        "seed": config.seed,
        "normalization_rule": (
            "2-98 percentile stretch per band of each image"
            if plan.normalization == "percentile"
            else "uint8 /255; other dtypes 2-98 percentile stretch per image"
        ),
    }
    if plan.gsd_range is not None:
        provenance["gsd_range"] = list(plan.gsd_range)
    if plan.init_info:
        provenance["init"] = plan.init_info
    if metrics:
        provenance["validation"] = metrics
    provenance.update(extra)
    return ModelInfo(
        bands=plan.bands,
        normalization=plan.normalization,
        tile_size=plan.tile,
        gsd=plan.model_gsd if plan.gsd_range is not None else report.gsd,
        threshold=round(float(threshold), 4),
        filters=plan.filters,
        provenance=provenance,
    )
