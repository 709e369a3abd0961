"""What a training run is asked to do and what it reports.

The presets (:data:`PRESETS`), the user's :class:`TrainConfig`, the per-epoch
:class:`EpochReport` and the final :class:`TrainResult`, with the constants that
:mod:`roadseg.train` and its helpers share.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roadseg.data import DEFAULT_ROAD_WIDTH_M, DatasetReport, LabelRule
from roadseg.data.aoi_split import HALVES
from roadseg.model import ModelInfo
from roadseg.precision import PRECISIONS
from roadseg.preprocess import NORMALIZATIONS
from roadseg.tiling import is_tile_size

#: Default learning rate when fine-tuning (--init) with the default preset.
FINE_TUNE_LR = 3e-4
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
        patience: epochs without a better ``monitor`` before stopping early
            (0: never).
        road_focus: share of crops picked for containing road.
        step_epochs: epochs between learning-rate drops of the step schedule.
        monitor: what early stopping and the best checkpoint watch:
            ``"val_loss"`` (lower is better) or ``"val_f1"`` (higher is better;
            F1 at 0.5 of all validation pixels of the epoch).
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
    monitor: str = "val_loss"

    def __post_init__(self) -> None:
        if self.monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {', '.join(MONITORS)}, got {self.monitor!r}")

    @property
    def higher_is_better(self) -> bool:
        """Whether a larger ``monitor`` is a better epoch."""
        return self.monitor == "val_f1"


#: What ``monitor`` may watch.
MONITORS = ("val_loss", "val_f1")

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
    # Fine-tuning a trained model on a laptop CPU (chosen with --init): the default
    # recipe at a gentler learning rate, in short epochs of fixed length whatever the
    # area, stopped when validation F1 on the spatial blocks stops rising, the best
    # epoch kept. 8 x 25 batches of 8 crops is about 6 minutes for the bundled
    # model's widths on a 2-core CPU (bfloat16, README's minutes-to-F1 table).
    "finetune": Preset(
        name="finetune",
        loss="bce_dice",
        optimizer="adam",
        lr=FINE_TUNE_LR,
        schedule="cosine",
        epochs=8,
        batch_size=8,
        steps_per_epoch=25,
        augment=True,
        patience=3,
        road_focus=0.5,
        monitor="val_f1",
    ),
}
#: The preset of a run that names none: ``finetune`` when fine-tuning (``init``).
DEFAULT_PRESET = "default"
FINE_TUNE_PRESET = "finetune"


def preset_for(name: str | None, init: bool) -> Preset:
    """The preset ``name`` names; without one, ``finetune`` when fine-tuning from a
    model (``init``), else ``default``.

    Raises:
        ValueError: an unknown name.
    """
    chosen = name or (FINE_TUNE_PRESET if init else DEFAULT_PRESET)
    if chosen not in PRESETS:
        raise ValueError(f"unknown preset {chosen!r}; choose {', '.join(PRESETS)}")
    return PRESETS[chosen]


@dataclass(frozen=True)
class TrainConfig:
    """What to train, as the user asked. ``None`` means: from the preset, the
    ``init`` model or the data.

    Attributes:
        data: dataset folder (see :func:`roadseg.data.scan_dataset`).
        output: model file to write (``.keras``).
        run_dir: checkpoints and logs; default ``<output stem>_run`` beside it.
        preset: a key of :data:`PRESETS`; None: ``finetune`` with ``init``, else
            ``default`` (see :func:`preset_for`).
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
        roads: a road layer (GeoJSON or GeoPackage) labelling the rasters of
            ``data`` (a raster, folder, glob, VRT or ``@list.txt``); see
            :func:`roadseg.data.road_data.scan_road_dataset`.
        layer: the road layer's layer, when the file has several.
        roads_width_m: one width for every road line (else ``width_field``,
            the ``highway`` table, or ``road_width_m``).
        width_field: attribute holding each line's width in metres.
        width_table: JSON or CSV file overriding the ``highway`` width table.
        aoi: polygons limiting where the road layer is trusted.
        val_block_m: side of the spatial validation blocks, in metres.
        half: train on one half of each raster only (``upper``, ``lower``,
            ``left``, ``right``; see :func:`roadseg.data.aoi_split.half_window`),
            within ``aoi`` when both are given.
    """

    data: Path
    output: Path = Path("roadseg_model.keras")
    run_dir: Path | None = None
    preset: str | None = None
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
    road_width_m: float = DEFAULT_ROAD_WIDTH_M
    gsd: float | None = None
    gsd_range: tuple[float, float] | None = None
    normalization: str | None = None
    bands: tuple[int, ...] | None = None
    val_fraction: float = 0.15
    patience: int | None = None
    augment: bool | None = None
    overwrite: bool = False
    roads: Path | None = None
    layer: str | None = None
    roads_width_m: float | None = None
    width_field: str | None = None
    width_table: Path | None = None
    aoi: Path | None = None
    val_block_m: float = 256.0
    half: str | None = None

    def __post_init__(self) -> None:
        if self.preset is not None and self.preset not in PRESETS:
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
        if self.roads_width_m is not None and not self.roads_width_m > 0:
            raise ValueError(f"road width must be positive, got {self.roads_width_m} m")
        if not self.val_block_m > 0:
            raise ValueError(f"the validation block must be positive, got {self.val_block_m} m")
        if self.half is not None and self.half not in HALVES:
            raise ValueError(f"half must be one of {', '.join(HALVES)}, got {self.half!r}")

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
        for key in ("data", "output", "run_dir", "roads", "width_table", "aoi"):
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
        epoch: epochs done (1-based); 0 for the ``--init`` model scored before a
            fine-tune that watches validation F1 starts.
        epochs: epochs planned.
        logs: Keras' metrics for the epoch (``loss``, ``val_loss``, ``val_iou``, ...).
        seconds: wall time of the epoch.
        best: whether this epoch has the best monitored value so far (validation
            loss, or validation F1: see :attr:`Preset.monitor`).
        eta_seconds: time the epochs still planned would take at this session's
            mean epoch time, its first epoch (which also compiles) left out once
            there are others; 0 when the run stops here, and early stopping may
            end it sooner.
        stopping: whether early stopping ends the run after this epoch.
    """

    epoch: int
    epochs: int
    logs: dict[str, float]
    seconds: float
    best: bool
    eta_seconds: float = 0.0
    stopping: bool = False


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
