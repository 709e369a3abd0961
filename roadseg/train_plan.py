"""Planning a training run: the :class:`TrainPlan` resolved from the preset, the
options, the ``init`` model and the data (or read back from a run's state),
and checking, reading or clearing the run folder before it starts.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from roadseg.data import DatasetReport
from roadseg.errors import DatasetError, ModelError, OutputError, RoadsegError
from roadseg.model import DEFAULT_FILTERS, bundled_model_path
from roadseg.train_config import (
    DEFAULT_TILE,
    FINE_TUNE_LR,
    PRESETS,
    STATE_FILE,
    STATE_FORMAT,
    Preset,
    TrainConfig,
    preset_for,
)
from roadseg.train_recipe import resunet_filters


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


def plan_from_state(data: Mapping[str, Any]) -> TrainPlan:
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


def resolve_init(init: str | None) -> Path | None:
    """The model file ``--init`` names (``"default"``: the bundled model), or None."""
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


def make_plan(
    config: TrainConfig, report: DatasetReport, init: Any | None, policy: str
) -> TrainPlan:
    """The plan of a new run: ``config`` completed from its preset, ``init`` and the data."""
    preset = preset_for(config.preset, init is not None)
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


def prepare_run_dir(run_dir: Path, *, resume: bool, overwrite: bool) -> dict[str, Any] | None:
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


def clear_run_dir(run_dir: Path) -> None:
    """Remove the files an earlier run left (only roadseg's own names)."""
    for name in ("checkpoints", "tensorboard"):
        shutil.rmtree(run_dir / name, ignore_errors=True)
    for name in (STATE_FILE, "log.csv", "curves.png", "skipped.csv"):
        (run_dir / name).unlink(missing_ok=True)
