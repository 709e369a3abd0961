"""Score a model on rasters labelled by a road layer: ``roadseg evaluate --model M
--data ortho.tif --roads roads.gpkg``.

Every raster is predicted as ``roadseg predict`` runs it
(:func:`roadseg.resample.predict_at_model_gsd`, into a temporary GeoTIFF on the
raster's grid), and the road layer is placed on it by the code training uses
(:func:`roadseg.data.road_data.place_road_layer`: the same widths, the same
burning rule of :func:`roadseg.data.masks.road_shapes`, the same AOI and half).
Pixels are then counted block by block with a halo (never a whole raster in
memory), only inside the area (the AOI, the half, else the footprint) and never
where the prediction is nodata; the counts of all rasters are pooled, as the
field reports a test set. The prediction is also vectorized
(:func:`roadseg.vectorize.extract_network`) and its network scored against the
road lines inside the area (:mod:`roadseg.vector_metrics`), all rasters in one
metric frame.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from roadseg.data.masks import shapes_mask
from roadseg.data.road_data import RoadLabels, RoadScene, place_road_layer
from roadseg.encoding import PROB_NODATA, UINT8_PROBABILITIES
from roadseg.errors import DatasetError
from roadseg.metrics import DEFAULT_CHUNK_SIZE, DEFAULT_RHO, MetricsAccumulator, iter_chunks
from roadseg.metrics_types import EvaluationResult
from roadseg.model import LoadedModel
from roadseg.predict import PredictOptions
from roadseg.vector_metrics import NetworkEvaluation

log = logging.getLogger(__name__)

#: Buffer of the centerline metrics (completeness, correctness), metres; as
#: ``roadseg evaluate PRED TRUTH.geojson`` uses by default.
DEFAULT_BUFFER_M = 2.0
#: How far a predicted junction may lie from a true one, metres.
JUNCTION_RADIUS_M = 4.0
#: Longest side of the decimated read that traces where a prediction has data.
VALID_AREA_SIDE = 2048


@dataclass(frozen=True)
class RasterScore:
    """One raster's pixel scores.

    Attributes:
        raster: the raster.
        result: its pixel metrics inside its area.
    """

    raster: Path
    result: EvaluationResult


@dataclass(frozen=True)
class RoadEvaluation:
    """What :func:`evaluate_roads` measured.

    Attributes:
        overall: pixel metrics pooled over every counted pixel of every raster.
        best_f1: the highest pooled F1 over all thresholds.
        best_f1_threshold: the threshold where it is reached.
        network: the predicted network against the road lines, pooled over the
            rasters; None when it was not asked for.
        rasters: per-raster pixel metrics, in the order of ``--data``.
        labels: how the road layer was drawn (its widths), for reports.
        notes: what to know (rasters the area leaves out, ignored features).
        seconds: wall time.
    """

    overall: EvaluationResult
    best_f1: float
    best_f1_threshold: float
    network: NetworkEvaluation | None
    rasters: tuple[RasterScore, ...]
    labels: str
    notes: tuple[str, ...]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the keys of ``evaluate --data DIR``'s report
        (``overall``, ``images``), plus ``network`` and ``labels``."""

        def number(value: float) -> float | None:
            return None if math.isnan(value) else value

        return {
            "layout": "roads",
            "labels": self.labels,
            "overall": {
                **self.overall.to_dict(),
                "best_f1": number(self.best_f1),
                "best_f1_threshold": number(self.best_f1_threshold),
            },
            "network": dataclasses.asdict(self.network) if self.network is not None else None,
            "images": [{"image": str(s.raster), **s.result.to_dict()} for s in self.rasters],
            "notes": list(self.notes),
        }


def evaluate_roads(
    model: LoadedModel,
    data: str | os.PathLike[str],
    labels: RoadLabels,
    *,
    threshold: float | None = None,
    rho: float = DEFAULT_RHO,
    network: bool = True,
    buffer_m: float = DEFAULT_BUFFER_M,
    gsd: float | None = None,
    options: PredictOptions | None = None,
    infer_fn: Callable[[np.ndarray], np.ndarray] | None = None,
    progress: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> RoadEvaluation:
    """Predict every raster of ``data`` and score it against the road layer.

    Args:
        model: the model (:func:`roadseg.model.load_model`).
        data: a raster, a folder of rasters, a glob, a VRT or ``@list.txt``
            (see :func:`roadseg.data.road_data.list_rasters`).
        labels: the road layer, its widths, the AOI and the half, as training
            reads them.
        threshold: probability threshold (default: the model's).
        rho: tolerance of the relaxed metrics, pixels.
        network: also vectorize the predictions and score the network against
            the lines.
        buffer_m: buffer of the centerline metrics, metres.
        gsd: the rasters' GSD in metres, overriding their georeferencing (as
            ``roadseg predict --gsd``).
        options: predict options (tile size, overlap, precision, TTA, bands...).
        infer_fn: a ready ``batch -> probabilities`` function (tests); by
            default one is compiled once for all rasters.
        progress: a progress bar over the rasters.
        chunk_size: side of the blocks pixels are counted in.

    Returns:
        A :class:`RoadEvaluation`.

    Raises:
        DatasetError: no rasters; a layer, AOI or raster that cannot be used
            (every problem named, on one line); no road of the layer inside any
            raster's area.
        RoadsegError: a raster predict refuses (with its name).
    """
    from tqdm import tqdm

    from roadseg.evaluate_dataset import compile_infer_fn
    from roadseg.resample import predict_at_model_gsd

    started = time.perf_counter()
    info = model.info
    threshold = info.threshold if threshold is None else threshold
    base = options or PredictOptions()
    run = replace(base, overwrite=True, progress=False, mask_path=None, preview_path=None)
    placed = place_road_layer(data, labels, bands=run.bands, model_bands=info.bands)
    if placed.errors:
        raise DatasetError(f"{data}: " + "; ".join(placed.errors))
    notes = list(placed.notes)
    scenes = []
    for scene in placed.scenes.values():
        if scene.area is None or scene.area.is_empty:
            notes.append(f"{scene.path.name}: the area leaves none of it; not scored")
        else:
            scenes.append(scene)
    if infer_fn is None:
        infer_fn = compile_infer_fn(model, run)
    overall = MetricsAccumulator(256, rho=rho)
    scores: list[RasterScore] = []
    lines: list[tuple[list[Any], list[Any], Any]] = []
    with tempfile.TemporaryDirectory(prefix="roadseg-eval-") as tmp:
        out = Path(tmp) / "prob.tif"
        for scene in tqdm(scenes, unit="raster", disable=not progress, desc="evaluate"):
            source, scene, opts = _predicted_part(scene, model, run, gsd, Path(tmp) / "part.vrt")
            predict_at_model_gsd(source, out, model, opts, gsd=gsd, infer_fn=infer_fn)
            acc = count_in_area(out, scene, rho, chunk_size=chunk_size)
            scores.append(RasterScore(scene.path, acc.result(UINT8_PROBABILITIES, threshold)))
            overall.merge(acc)
            if network:
                lines.append(network_lines(out, scene, threshold))
    result = overall.result(UINT8_PROBABILITIES, threshold)
    best, at = result.curve.best_f1()
    return RoadEvaluation(
        overall=result,
        best_f1=best,
        best_f1_threshold=at,
        network=score_network(lines, buffer_m) if network else None,
        rasters=tuple(scores),
        labels=f"{placed.layer.path.name}: {placed.layer.source}",
        notes=tuple(notes),
        seconds=time.perf_counter() - started,
    )


def area_window(scene: RoadScene, margin: int) -> tuple[int, int, int, int] | None:
    """The part of the scene's raster to predict: the area's box grown by
    ``margin`` pixels of context, as ``(col, row, width, height)``; None when that
    is the whole raster."""
    width, height = scene.size
    x0, y0, x1, y1 = scene.area.bounds
    c0 = max(0, math.floor(x0) - margin)
    r0 = max(0, math.floor(y0) - margin)
    c1 = min(width, math.ceil(x1) + margin)
    r1 = min(height, math.ceil(y1) + margin)
    if (c0, r0, c1, r1) == (0, 0, width, height):
        return None
    return c0, r0, c1 - c0, r1 - r0


def _predicted_part(
    scene: RoadScene, model: LoadedModel, run: PredictOptions, gsd: float | None, vrt: Path
) -> tuple[Path, RoadScene, PredictOptions]:
    """What to predict for a scene: its raster, or (when the area is a part of it,
    as with ``--half`` or a small ``--aoi``) a VRT of the area's window with a
    margin of two tiles, normalised with the whole raster's statistics, so the
    pixels scored are those ``roadseg predict`` of the whole raster gives but for
    the blending of the tiles. The scene comes back in the window's pixels."""
    from shapely import affinity

    from roadseg.preprocess import compute_normalizer, select_bands
    from roadseg.raster_io import gdal_env, open_raster
    from roadseg.resample import write_resampled_vrt

    info = model.info
    tile = run.tile_size or info.tile_size
    in_gsd = gsd or scene.gsd
    scale = info.gsd / in_gsd if info.gsd and in_gsd else 1.0
    window = area_window(scene, math.ceil(2 * tile * max(scale, 1.0)))
    if window is None:
        return scene.path, scene, run
    c0, r0, w, h = window
    with gdal_env(), open_raster(scene.path, expand_palette=True) as src:
        bands = select_bands(src, run.bands, info.bands, scene.path)
        normalizer = run.normalizer or compute_normalizer(src, bands, info.normalization)
    with gdal_env(), open_raster(scene.path) as src:
        write_resampled_vrt(src, scene.path, vrt, w, h, window=window)
    shifted = replace(
        scene,
        size=(w, h),
        area=affinity.translate(scene.area, -c0, -r0),
        shapes=[affinity.translate(g, -c0, -r0) for g in scene.shapes],
    )
    return vrt, shifted, replace(run, normalizer=normalizer)


def count_in_area(
    prob_path: str | os.PathLike[str],
    scene: RoadScene,
    rho: float = DEFAULT_RHO,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> MetricsAccumulator:
    """Pixel counts of a roadseg probability GeoTIFF against the roads burned on its
    grid, inside the scene's area only.

    The GeoTIFF is read in blocks with a halo of the tolerance (the counts equal
    those of the whole raster at once); the truth of each block is burned from the
    scene's road shapes. Pixels outside the area, and nodata pixels, are not
    counted and act as neither road nor background for their neighbours; only
    nodata inside the area is reported as ``nodata``.

    Args:
        prob_path: the prediction on the scene raster's grid (uint8, 1/254, nodata 255).
        scene: the raster's area and road shapes (see
            :func:`roadseg.data.road_data.place_road_layer`).
        rho: tolerance of the relaxed metrics, pixels.
        chunk_size: block side.
    """
    import rasterio
    from rasterio.windows import Window

    truth_of = shapes_mask(scene.shapes)
    area_of = shapes_mask([scene.area])
    acc = MetricsAccumulator(256, rho=rho)
    with rasterio.open(prob_path) as ds:
        for chunk in _chunks_in_area(ds.height, ds.width, scene.area, chunk_size, acc.halo):
            window = Window.from_slices(chunk.rows, chunk.cols)
            inside = area_of(window).astype(bool)
            if not inside[chunk.core].any():
                continue
            levels = ds.read(1, window=window)
            valid = inside & (levels != PROB_NODATA)
            nodata = acc.nodata
            acc.add(np.where(valid, levels, 0), truth_of(window), valid, chunk.core)
            # The accumulator counts every invalid pixel as nodata; outside the area
            # is not nodata, it is not part of the question.
            core_inside, core_valid = inside[chunk.core], valid[chunk.core]
            acc.nodata = nodata + int(np.count_nonzero(core_inside & ~core_valid))
    return acc


def _chunks_in_area(
    height: int, width: int, area: Any, chunk_size: int, halo: int
) -> Iterator[Any]:
    """The blocks of :func:`roadseg.metrics.iter_chunks` whose core meets the area's box."""
    x0, y0, x1, y1 = area.bounds
    for chunk in iter_chunks(height, width, chunk_size, halo):
        rows, cols = chunk.core
        r0 = chunk.rows.start + rows.start
        c0 = chunk.cols.start + cols.start
        r1 = chunk.rows.start + rows.stop
        c1 = chunk.cols.start + cols.stop
        if c0 < x1 and c1 > x0 and r0 < y1 and r1 > y0:
            yield chunk


def network_lines(
    prob_path: str | os.PathLike[str], scene: RoadScene, threshold: float
) -> tuple[list[Any], list[Any], Any]:
    """The prediction vectorized (at ``threshold``, vectorize's other defaults) and
    the scene's road lines, both cut to the scene's area, in the raster's CRS.

    Returns:
        ``(predicted lines, true lines, CRS)``.
    """
    from shapely import affinity

    from roadseg.raster_io import gdal_env, open_raster
    from roadseg.vectorize import RasterSource, VectorizeOptions, extract_network

    with gdal_env(), open_raster(prob_path) as ds:
        found = extract_network(
            RasterSource(ds, scene.path.name), VectorizeOptions(threshold=threshold)
        )
        t = ds.transform
        crs = ds.crs
        valid = valid_area(ds)
    pixels = scene.area if valid is None else scene.area.intersection(valid)
    area = affinity.affine_transform(pixels, [t.a, t.b, t.d, t.e, t.xoff, t.yoff])
    return _clip(found.lines, area), _clip(scene.lines, area), crs


def valid_area(ds: Any, side: int = VALID_AREA_SIDE) -> Any:
    """Where a probability raster has data, as a polygon in its pixel coordinates
    (traced on a read decimated to at most ``side`` pixels a side, so its edge is
    as exact as the decimation); None when it has data everywhere."""
    import shapely
    from affine import Affine
    from rasterio.enums import Resampling
    from rasterio.features import shapes

    from roadseg.raster_io import decimated_shape

    h, w = decimated_shape(ds.height, ds.width, side)
    levels = ds.read(1, out_shape=(h, w), resampling=Resampling.nearest)
    valid = (levels != PROB_NODATA).astype(np.uint8)
    if valid.all():
        return None
    to_pixels = Affine.scale(ds.width / w, ds.height / h)
    parts = [
        shapely.geometry.shape(geom)
        for geom, value in shapes(valid, mask=valid.astype(bool), transform=to_pixels)
        if value
    ]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def _clip(lines: Sequence[Any], area: Any) -> list[Any]:
    """The parts of ``lines`` inside ``area``, as LineStrings."""
    import shapely
    from shapely import prepare

    prepare(area)
    out = []
    for line in lines:
        if area.contains(line):
            out.append(line)
            continue
        part = shapely.intersection(line, area)
        for piece in getattr(part, "geoms", [part]):
            if piece.geom_type == "LineString" and not piece.is_empty and piece.length > 0:
                out.append(piece)
    return out


def score_network(
    rasters: Sequence[tuple[Sequence[Any], Sequence[Any], Any]],
    buffer_m: float = DEFAULT_BUFFER_M,
    junction_radius_m: float = JUNCTION_RADIUS_M,
) -> NetworkEvaluation:
    """Centerline, junction and APLS scores of the predicted lines of every raster
    against its true lines, all rasters in one metric frame (see
    :func:`roadseg.geo.to_metric`), so lengths and routes are pooled.

    Args:
        rasters: ``(predicted lines, true lines, CRS)`` per raster.
        buffer_m: buffer of completeness and correctness, metres.
        junction_radius_m: how far a predicted junction may lie from a true one.
    """
    from roadseg.geo import to_metric
    from roadseg.vector_metrics import apls, centerline_metrics, junction_metrics

    groups = [(pred, crs) for pred, _, crs in rasters] + [(true, crs) for _, true, crs in rasters]
    metric = to_metric(groups)
    n = len(rasters)
    pred = [g for lines in metric[:n] for g in lines]
    truth = [g for lines in metric[n:] for g in lines]
    return NetworkEvaluation(
        centerlines=centerline_metrics(pred, truth, buffer_m),
        junctions=junction_metrics(pred, truth, junction_radius_m),
        apls=apls(pred, truth),
        pred_lines=len(pred),
        truth_lines=len(truth),
        pred_from_raster=True,
    )
