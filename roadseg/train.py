"""Training a road model: presets, schedules, checkpoints, resume and the final model file.

:func:`train` scans the dataset (:mod:`roadseg.data`), builds or loads the
ResUNet, streams random crops through ``tf.data``, and fits with Keras. Every
epoch it writes, in the run folder (default ``<model stem>_run/`` beside the
output model):

* ``checkpoints/last.keras`` and ``checkpoints/best.keras`` (lowest validation
  loss, or highest validation F1 with the ``finetune`` preset), both written
  atomically and including the optimizer state, so ``resume=True`` continues
  where a run stopped: epoch counter, optimizer moments, iteration count and
  therefore the learning-rate schedule;
* ``state.json``: epochs done, what early stopping watches (``monitor``) and
  its best value, the patience used so far, the history, the seed, the
  configuration and the resolved plan (preset, epochs, learning rate...);
* ``log.csv`` (Keras CSV log), ``curves.png`` (training curves drawn with
  Pillow) and ``tensorboard/`` when the ``tensorboard`` package is installed.

At the end the best weights are copied into a float32, fully convolutional
model; the threshold that maximises F1 on the validation crops is chosen
(:class:`roadseg.thresholds.F1Sweep`) and stored in the model file's metadata
with the validation metrics, a description of the training data, its ground
sample distance and how the model was trained.

Three presets: ``default`` (BCE + Dice loss, Adam with a cosine schedule,
augmentation, early stopping on the validation loss), ``paper`` (Zhang, Liu &
Wang 2018: MSE loss, plain SGD, learning rate 0.001 divided by 10 every 20
epochs, 50 epochs, batch 8, no augmentation) and ``finetune``, chosen when a run
starts from a model (``init``) without naming a preset: the default recipe at
learning rate 3e-4, 8 epochs of 25 batches, stopped after 3 epochs without a
better validation F1 (on the spatial blocks of a road-layer run), the best epoch
kept.

The library never prints: Keras' progress bar appears only with
``progress=True``, and per-epoch summaries go to an ``on_epoch`` callback.

This module holds :func:`train` and its steps; the rest lives beside it and is
re-exported here: the presets, configuration and results
(:mod:`roadseg.train_config`), the plan and the run folder's checks
(:mod:`roadseg.train_plan`), schedules, optimizers, loss and metrics
(:mod:`roadseg.train_recipe`), the run folder's files (:mod:`roadseg.run_files`)
and the final validation (:mod:`roadseg.validation`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
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
from roadseg.data.road_crops import RoadCropReader
from roadseg.data.road_data import RoadDataset, scan_road_dataset
from roadseg.data.roads import WidthRule
from roadseg.errors import ModelError, OutputError, RoadsegError
from roadseg.metrics import DEFAULT_THRESHOLD
from roadseg.model import (
    LoadedModel,
    ModelInfo,
    build_resunet,
    load_model,
    read_model_info,
    save_model,
)
from roadseg.raster_io import check_output
from roadseg.run_files import (
    copy_atomic,
    finite,
    plot_history,
    trim_csv_log,
    write_json_atomic,
    write_skips,
)
from roadseg.train_config import (
    CROPS_PER_IMAGE,
    DEFAULT_TILE,
    FINE_TUNE_LR,
    PRESETS,
    SHUFFLE_BUFFER,
    STATE_FILE,
    STATE_FORMAT,
    EpochReport,
    Preset,
    TrainConfig,
    TrainResult,
)
from roadseg.train_plan import (
    RunStart,
    TrainPlan,
    clear_run_dir,
    make_plan,
    plan_from_state,
    prepare_run_dir,
    resolve_init,
)
from roadseg.train_recipe import (
    COSINE_ALPHA,
    POLICIES,
    make_loss,
    make_metrics,
    make_optimizer,
    make_schedule,
    resunet_filters,
    training_policy,
)

# Looked up here at call time, so a test can replace it on this module.
from roadseg.validation import validation_metrics

__all__ = [
    "COSINE_ALPHA",
    "CROPS_PER_IMAGE",
    "DEFAULT_TILE",
    "FINE_TUNE_LR",
    "POLICIES",
    "PRESETS",
    "SHUFFLE_BUFFER",
    "STATE_FILE",
    "STATE_FORMAT",
    "EpochReport",
    "Preset",
    "RunStart",
    "TrainConfig",
    "TrainPlan",
    "TrainResult",
    "f1_from",
    "make_optimizer",
    "make_schedule",
    "plot_history",
    "resunet_filters",
    "train",
    "training_policy",
    "validation_metrics",
]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# The Keras callback that keeps a run's files
# --------------------------------------------------------------------------------------------


def f1_from(precision: float | None, recall: float | None) -> float | None:
    """F1 of a precision and a recall (0 when both are 0; None when either is missing)."""
    if precision is None or recall is None:
        return None
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def _make_f1_logger() -> Any:
    """A callback that adds ``f1`` and ``val_f1`` (F1 at 0.5 of all the epoch's
    pixels, from Keras' pooled precision and recall) to the epoch's logs; it goes
    first, so the CSV log, the run keeper and TensorBoard all see them."""
    import keras

    class F1Logger(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            if logs is None:
                return
            for prefix in ("", "val_"):
                f1 = f1_from(
                    finite(logs.get(f"{prefix}precision")), finite(logs.get(f"{prefix}recall"))
                )
                if f1 is not None:
                    logs[f"{prefix}f1"] = f1

    return F1Logger()


def _make_keeper(
    *,
    run_dir: Path,
    state: dict[str, Any],
    info: ModelInfo,
    epochs: int,
    patience: int,
    preset: Preset,
    on_epoch: Callable[[EpochReport], None] | None,
) -> Any:
    import keras

    class RunKeeper(keras.callbacks.Callback):
        """Checkpoints (last, best by ``preset.monitor``), state.json, curves and
        early stopping."""

        def __init__(self) -> None:
            super().__init__()
            self.started = time.perf_counter()
            self.durations: list[float] = []  # epochs of this session (not before a resume)

        def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
            self.started = time.perf_counter()

        def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
            interrupt.check()  # a Ctrl-C/SIGTERM whose exception Python swallowed

        def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
            logs = {k: float(v) for k, v in (logs or {}).items() if finite(v) is not None}
            seconds = time.perf_counter() - self.started
            done = epoch + 1
            lr = finite(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
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
            if preset.monitor == "val_loss":
                val = logs.get("val_loss", logs.get("loss"))
            else:
                val = logs.get(preset.monitor)
            best = state["best"]
            # An epoch whose training loss is not finite is never the best, whatever
            # its validation says (its weights are broken).
            improved = (
                val is not None
                and "loss" in logs
                and (best is None or (val > best if preset.higher_is_better else val < best))
            )
            if improved:
                state["best"] = val
                state["best_epoch"] = done
                state["wait"] = 0
                copy_atomic(ckpt / "last.keras", ckpt / "best.keras")
            else:
                state["wait"] += 1
            state["epoch"] = done
            stopping = bool(patience and state["wait"] >= patience and done < epochs)
            if stopping:
                state["stopped_early"] = True
                self.model.stop_training = True
            write_json_atomic(run_dir / STATE_FILE, state)
            try:
                plot_history(state["history"], run_dir / "curves.png")
            except OSError as exc:  # a plot is not worth a failed run
                log.warning("could not draw %s: %s", run_dir / "curves.png", exc)
            self.durations.append(seconds)
            # The first epoch of a session also traces and compiles the model: the
            # later ones say better what an epoch costs.
            typical = self.durations[1:] or self.durations
            eta = (0 if stopping else epochs - done) * sum(typical) / len(typical)
            if on_epoch is not None:
                on_epoch(EpochReport(done, epochs, logs, seconds, improved, eta, stopping))

    return RunKeeper()


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


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
    report, plan, init, roads = _scan_and_plan(config, saved)
    run_dir = config.run_folder
    model, state, initial_epoch = _start_model(config, plan, init, saved, run_dir)
    run = _Run(config, plan, report, run_dir, state, initial_epoch, roads)
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
    roads: RoadDataset | None = None


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
    saved = prepare_run_dir(run_dir, resume=resume, overwrite=config.overwrite)
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
) -> tuple[DatasetReport, TrainPlan, LoadedModel | None, RoadDataset | None]:
    """Scan the data and resolve the plan (the saved one when resuming); the
    ``init`` model when fine-tuning; the road dataset when ``config.roads`` labels
    the rasters.

    Raises:
        DatasetError, ModelError: see :func:`train`.
    """
    rule = LabelRule(config.road_color, config.road_value, config.road_width_m)
    init = None
    saved_plan = plan_from_state(saved["plan"]) if saved is not None else None
    if saved_plan is not None:
        model_bands = saved_plan.bands
        tile_size = saved_plan.tile
    else:
        init_path = resolve_init(config.init)
        init = load_model(init_path) if init_path is not None else None
        model_bands = len(config.bands) if config.bands else (init.info.bands if init else 3)
        tile_size = config.tile_size or (init.info.tile_size if init else DEFAULT_TILE)
    roads = None
    if config.roads is not None:
        roads = scan_roads(config, config.roads, tile_size=tile_size, model_bands=model_bands)
        report = roads.report
    else:
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
        return report, saved_plan, init, roads
    plan = make_plan(config, report, init, training_policy(config.precision))
    return report, plan, init, roads


def scan_roads(
    config: TrainConfig, roads: Path, *, tile_size: int, model_bands: int
) -> RoadDataset:
    """The rasters of ``config.data`` with the road layer ``roads`` placed on them (see
    :func:`roadseg.data.road_data.scan_road_dataset`).

    Raises:
        DatasetError: no rasters, an unreadable layer or width table.
    """
    rule = WidthRule.from_options(
        width_m=config.roads_width_m,
        field=config.width_field,
        table=config.width_table,
        fallback_m=config.road_width_m,
    )
    return scan_road_dataset(
        config.data,
        roads,
        layer=config.layer,
        rule=rule,
        aoi=config.aoi,
        half=config.half,
        tile_size=tile_size,
        block_m=config.val_block_m,
        val_fraction=config.val_fraction,
        seed=config.seed,
        bands=config.bands,
        model_bands=model_bands,
    )


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
        clear_run_dir(run_dir)
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
        loss=make_loss(plan.preset),
        metrics=make_metrics(),
        jit_compile=False,
    )
    state = {
        "format": STATE_FORMAT,
        "roadseg_version": __version__,
        "config": config.to_dict(),
        "plan": plan.to_dict(),
        "epoch": 0,
        "monitor": plan.preset.monitor,
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
        self.reader = self.make_reader(self.spec, run.roads)
        self.n_val = plan.val_steps * plan.batch_size
        self._run = run
        self._passes = iter(range(1 << 30))

    @staticmethod
    def make_reader(spec: CropSpec, roads: RoadDataset | None) -> CropReader:
        """The crop reader of the run's data: pairs, or rasters with a road layer."""
        return CropReader(spec) if roads is None else RoadCropReader(spec, roads)

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
        preset=plan.preset,
        on_epoch=on_epoch,
    )
    if initial_epoch > 0:
        trim_csv_log(run_dir / "log.csv", initial_epoch)
    callbacks: list[Any] = [
        _make_f1_logger(),
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
    val_steps = math.ceil(crops.n_val / plan.batch_size)
    if initial_epoch == 0 and config.init is not None and plan.preset.higher_is_better:
        _init_baseline(run, model, val_ds, val_steps, base_info, on_epoch)
    try:
        model.fit(
            train_ds,
            epochs=plan.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=plan.steps_per_epoch,
            validation_data=val_ds,
            validation_steps=val_steps,
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


def _init_baseline(
    run: _Run,
    model: Any,
    val_ds: Any,
    val_steps: int,
    info: ModelInfo,
    on_epoch: Callable[[EpochReport], None] | None,
) -> None:
    """Epoch 0 of a fine-tune that watches validation F1: the ``--init`` model is
    scored on the validation crops and becomes the best checkpoint, so an epoch is
    kept only if it beats the model the user started from; when none does, the
    fine-tune gives that model back (with a threshold chosen on this data)."""
    started = time.perf_counter()
    scores = model.evaluate(val_ds, steps=val_steps, verbose=0, return_dict=True)
    logs = {f"val_{k}": float(v) for k, v in scores.items() if finite(v) is not None}
    f1 = f1_from(finite(logs.get("val_precision")), finite(logs.get("val_recall")))
    if f1 is None:
        return
    logs["val_f1"] = f1
    ckpt = run.run_dir / "checkpoints"
    save_model(
        model,
        ckpt / "best.keras",
        dataclasses.replace(info, provenance=dict(info.provenance, checkpoint_epoch=0)),
    )
    # Also the last checkpoint: a run stopped during epoch 1 resumes from here.
    copy_atomic(ckpt / "best.keras", ckpt / "last.keras")
    run.state.update(best=f1, best_epoch=0, wait=0)
    write_json_atomic(run.run_dir / STATE_FILE, run.state)
    if on_epoch is not None:
        on_epoch(EpochReport(0, run.plan.epochs, logs, time.perf_counter() - started, True))


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
    :func:`validation_metrics`), with the best epoch's validation loss (or F1).

    A failed scoring does not fail the run: hours of training must not end
    without a model file, so it is logged and the default threshold is kept.
    """
    from roadseg.predict import make_infer_fn

    plan = run.plan
    infer = make_infer_fn(final, plan.tile, plan.bands)
    val_reader = crops.make_reader(dataclasses.replace(crops.spec, augment=None), run.roads)
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
        # The best epoch's value of what the run watched (val_loss, or val_f1).
        metrics[run.plan.preset.monitor] = round(float(run.state["best"]), 5)
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
    write_json_atomic(run.run_dir / STATE_FILE, state)
    write_skips(run.run_dir, skips)
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
