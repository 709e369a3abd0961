"""Score a model on a whole dataset: predict every image, compare with its mask.

``roadseg evaluate --model M.keras --data DIR`` calls :func:`evaluate_dataset`.
The dataset is found exactly as ``roadseg train`` finds it (any layout of
:mod:`roadseg.data`, colour and index masks, SpaceNet line labels), each
image goes through :func:`roadseg.predict.predict_raster` as ``roadseg
predict`` runs it (one model, one compiled function for all images), and the
metrics of :mod:`roadseg.metrics` are reported per image and pooled over all
pixels of the set, which is how the field reports a test set.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import rasterio

from roadseg.data import (
    DatasetReport,
    LabelRule,
    MaskDecoder,
    Sample,
    colormap_lut,
    decode_mask,
    open_raster,
    scan_dataset,
    vector_mask,
)
from roadseg.encoding import PROB_NODATA, UINT8_PROBABILITIES
from roadseg.errors import DatasetError
from roadseg.metrics import DEFAULT_RHO, Counts, EvaluationResult, MetricsAccumulator
from roadseg.model import LoadedModel
from roadseg.predict import PredictOptions, predict_raster

Split = Literal["auto", "test", "val", "train", "all"]
SPLITS: tuple[str, ...] = ("auto", "test", "val", "train", "all")


@dataclass(frozen=True)
class ImageScore:
    """One image's scores."""

    image: Path
    result: EvaluationResult


@dataclass(frozen=True)
class DatasetEvaluation:
    """What :func:`evaluate_dataset` measured.

    Attributes:
        overall: metrics pooled over every pixel of every image.
        images: per-image metrics, in dataset order.
        split: the split scored (``auto`` resolved).
        layout: the dataset layout's name.
        seconds: wall time.
    """

    overall: EvaluationResult
    images: tuple[ImageScore, ...]
    split: str
    layout: str
    seconds: float

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict: ``overall`` (the keys of the pixel report) and ``images``."""
        return {
            "layout": self.layout,
            "split": self.split,
            "overall": self.overall.to_dict(),
            "images": [{"image": str(s.image), **s.result.to_dict()} for s in self.images],
        }


def choose_samples(report: DatasetReport, split: str) -> tuple[str, tuple[Sample, ...]]:
    """The pairs to score and the split's name.

    ``auto`` takes the layout's test split if it has one, else the layout's own
    validation split, else every pair (a seeded validation split chosen for
    training says nothing about a dataset someone wants scored).

    Raises:
        DatasetError: the split asked for is empty.
    """
    own_val = report.split_method.startswith("the layout's own")
    if split == "auto":
        if report.test:
            split = "test"
        elif report.val and own_val:
            split = "val"
        else:
            split = "all"
    chosen = {
        "test": report.test,
        "val": report.val,
        "train": report.train,
        "all": report.train + report.val + report.test,
    }[split]
    if not chosen:
        raise DatasetError(
            f"{report.root} has no {split} pairs; choose another --split (test, val, train, all)"
        )
    return split, tuple(sorted(chosen, key=lambda sample: str(sample.image)))


def read_truth(sample: Sample, decoder: MaskDecoder, road_width_m: float) -> np.ndarray:
    """The whole road mask of one pair, bool, on the image's grid.

    Raises:
        DatasetError: the label is not the image's size.
    """
    from rasterio.windows import Window

    with open_raster(sample.image) as src:
        if sample.is_vector:
            return vector_mask(sample.label, src, road_width_m)(
                Window(0, 0, src.width, src.height)
            ).astype(bool)
        size = (src.width, src.height)
    with open_raster(sample.label) as lab:
        if (lab.width, lab.height) != size:
            raise DatasetError(
                f"{sample.label.name} is {lab.width}x{lab.height} but its image "
                f"{sample.image.name} is {size[0]}x{size[1]}; masks must match their images"
            )
        return decode_mask(lab.read(), decoder, colormap_lut(lab)).astype(bool)


def evaluate_dataset(
    model: LoadedModel,
    data: str | os.PathLike[str],
    *,
    split: str = "auto",
    rule: LabelRule | None = None,
    bands: Sequence[int] | None = None,
    threshold: float | None = None,
    rho: float = DEFAULT_RHO,
    options: PredictOptions | None = None,
    infer_fn: Callable[[np.ndarray], np.ndarray] | None = None,
    progress: bool = False,
) -> DatasetEvaluation:
    """Predict every image of a split of ``data`` and score it against its mask.

    Args:
        model: the model (:func:`roadseg.model.load_model`).
        data: a dataset folder in any layout ``roadseg train`` knows.
        split: ``auto`` (see :func:`choose_samples`), ``test``, ``val``,
            ``train`` or ``all``.
        rule: which class of multi-class masks is road; SpaceNet line width.
        bands: image bands that feed the model (default: as predict chooses).
        threshold: probability threshold (default: the model's).
        rho: relaxation tolerance of the relaxed metrics, pixels.
        options: predict options (tile size, overlap, precision, TTA...).
        infer_fn: a ready ``batch -> probabilities`` function (tests); by
            default one is compiled once for all images.
        progress: a progress bar over the images.

    Raises:
        DatasetError: nothing usable in ``data``, an empty split, or a mask
            that does not match its image.
        RoadsegError: an image predict refuses (with its name).
    """
    from tqdm import tqdm

    started = time.perf_counter()
    rule = rule or LabelRule()
    info = model.info
    threshold = info.threshold if threshold is None else threshold
    report = scan_dataset(
        data, rule=rule, bands=bands, model_bands=info.bands, tile_size=info.tile_size
    )
    report.raise_for_errors()
    split, samples = choose_samples(report, split)
    base = options or PredictOptions()
    run = replace(base, bands=tuple(bands) if bands else base.bands, overwrite=True, progress=False)
    if infer_fn is None:
        infer_fn = compile_infer_fn(model, run)
    overall = MetricsAccumulator(256, rho=rho)
    scores: list[ImageScore] = []
    quiet = _NoCrsFilter()
    logging.getLogger("roadseg").addFilter(quiet)
    try:
        with tempfile.TemporaryDirectory(prefix="roadseg-eval-") as tmp:
            out = Path(tmp) / "prob.tif"
            for sample in tqdm(samples, unit="image", disable=not progress, desc="evaluate"):
                truth = read_truth(sample, report.decoder, rule.road_width_m)
                predict_raster(sample.image, out, model, run, infer_fn=infer_fn)
                acc = _count(out, truth, rho)
                scores.append(ImageScore(sample.image, acc.result(UINT8_PROBABILITIES, threshold)))
                overall.merge(acc)
    finally:
        logging.getLogger("roadseg").removeFilter(quiet)
    return DatasetEvaluation(
        overall=overall.result(UINT8_PROBABILITIES, threshold),
        images=tuple(scores),
        split=split,
        layout=report.layout_name,
        seconds=time.perf_counter() - started,
    )


def _count(prob_path: Path, truth: np.ndarray, rho: float) -> MetricsAccumulator:
    """Metric counts of one roadseg probability GeoTIFF against its truth mask."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(prob_path) as ds:
            levels = ds.read(1)
    valid = levels != PROB_NODATA
    acc = MetricsAccumulator(256, rho=rho)
    acc.add(np.where(valid, levels, 0), truth, valid)
    return acc


class _NoCrsFilter(logging.Filter):
    """Dataset tiles are often plain PNG/JPEG: one 'no CRS' warning per image is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "has no CRS" not in record.getMessage()


def compile_infer_fn(
    model: LoadedModel, options: PredictOptions
) -> Callable[[np.ndarray], np.ndarray]:
    """One compiled inference function for every image, of ``options.engine``
    (as predict builds it)."""
    from roadseg.predict import inference_for

    tile = options.tile_size or model.info.tile_size
    return inference_for(model, tile, options)[0]


#: Suffixes that name the role of a file rather than the place it shows.
_ROLE_SUFFIXES = ("_roads", "_mask", "_prob", "_pred", "_label", "_labels", "_gt", "_truth")
_RASTER_EXTS = {".tif", ".tiff", ".png", ".jpg", ".jpeg", ".vrt", ".img", ".jp2"}


def _key(path: Path) -> str:
    stem = path.stem
    for suffix in _ROLE_SUFFIXES:
        if stem.lower().endswith(suffix):
            return stem[: -len(suffix)]
    return stem


@dataclass(frozen=True)
class FolderEvaluation:
    """What :func:`evaluate_folders` measured.

    Attributes:
        pooled: counts summed over every pair at the threshold (IoU, F1,
            relaxed precision and recall of the whole set are its properties).
        pairs: ``(prediction, truth, result)`` per matched pair.
    """

    pooled: Counts
    pairs: tuple[tuple[Path, Path, EvaluationResult], ...]

    def to_dict(self) -> dict[str, object]:
        """``overall`` (pooled metrics at the threshold) and ``images``."""
        c = self.pooled
        overall = {
            "iou": c.iou,
            "f1": c.f1,
            "precision": c.precision,
            "recall": c.recall,
            "relaxed_precision": c.relaxed_precision,
            "relaxed_recall": c.relaxed_recall,
            "counts": c.to_dict(),
        }
        images = [{"pred": str(p), "truth": str(t), **r.to_dict()} for p, t, r in self.pairs]
        return {"overall": overall, "images": images}


def match_pairs(pred_dir: Path, truth_dir: Path) -> list[tuple[Path, Path]]:
    """Predictions and truths matched by file stem, ignoring role suffixes
    such as ``_roads`` (what ``roadseg predict`` appends) or ``_mask``.

    Raises:
        DatasetError: no pair matches, or a stem matches twice.
    """

    def index(folder: Path) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for p in sorted(folder.iterdir()):
            if p.is_file() and p.suffix.lower() in _RASTER_EXTS:
                if _key(p) in found:
                    raise DatasetError(
                        f"{found[_key(p)].name} and {p.name} in {folder} both match "
                        f"'{_key(p)}'; keep one"
                    )
                found[_key(p)] = p
        return found

    preds, truths = index(pred_dir), index(truth_dir)
    keys = sorted(preds.keys() & truths.keys())
    if not keys:
        raise DatasetError(
            f"no file of {pred_dir} matches one of {truth_dir} by name; name them alike "
            "(a_roads.tif and a.tif, or a.tif and a_mask.tif)"
        )
    return [(preds[k], truths[k]) for k in keys]


def evaluate_folders(
    pred_dir: str | os.PathLike[str],
    truth_dir: str | os.PathLike[str],
    *,
    threshold: float = 0.5,
    rho: float = DEFAULT_RHO,
    progress: bool = False,
) -> FolderEvaluation:
    """Score every prediction in ``pred_dir`` against its truth in ``truth_dir``.

    Pairs are matched by :func:`match_pairs`; each is scored by
    :func:`roadseg.metrics.evaluate_rasters` (streamed, any size) and the
    counts at ``threshold`` are pooled over the set.
    """
    from tqdm import tqdm

    from roadseg.metrics import evaluate_rasters

    pairs = match_pairs(Path(pred_dir), Path(truth_dir))
    scored = []
    total = np.zeros(6, dtype=np.int64)
    for pred, truth in tqdm(pairs, unit="pair", disable=not progress, desc="evaluate"):
        result = evaluate_rasters(pred, truth, threshold=threshold, rho=rho)
        scored.append((pred, truth, result))
        total += np.array(list(result.counts.to_dict().values()), dtype=np.int64)
    return FolderEvaluation(Counts(*(int(v) for v in total)), tuple(scored))
