"""Training data from rasters and a road layer: :func:`place_road_layer` lists the
rasters (one file, a folder, a glob, a VRT or an ``@list.txt``), reads the road
layer and the AOI, places the roads on every raster (reprojected to its CRS) and
measures what each raster offers (road length per class, road share), which is
what training and ``roadseg evaluate --roads`` share; :func:`scan_road_dataset`
then splits the area into training and validation blocks
(:mod:`roadseg.data.aoi_split`). Nothing reads a whole raster: only headers,
and the vector layers.
"""

from __future__ import annotations

import glob
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.errors import RasterioError

from roadseg.data.aoi_split import (
    DEFAULT_BLOCK_M,
    HALVES,
    BlockCrops,
    area_in_pixels,
    block_side_px,
    block_windows,
    choose_validation,
    crop_positions,
)
from roadseg.data.files import listing
from roadseg.data.layouts import FLAT_MASK_SUFFIXES
from roadseg.data.masks import road_shapes
from roadseg.data.rasters import open_raster, pixel_size_m
from roadseg.data.roads import RoadLayer, WidthRule, read_road_layer
from roadseg.data.scanning import DatasetReport
from roadseg.data.types import MaskDecoder, Sample
from roadseg.errors import DatasetError, RoadsegError, VectorError
from roadseg.preprocess import select_bands

#: File extensions listed as rasters when --data is a folder.
ROAD_RASTER_EXTS = frozenset({".tif", ".tiff", ".vrt", ".jp2", ".img"})
#: Layout key of road-layer datasets in reports and model files.
ROADS_LAYOUT = "roads"


def list_rasters(data: str | os.PathLike[str]) -> list[Path]:
    """The rasters ``data`` names: a raster file (a VRT too), a folder (its rasters,
    at any depth, masks such as ``*_mask.tif`` left out), a glob pattern, or
    ``@list.txt`` (one path a line, relative to the list; ``#`` starts a comment).

    Raises:
        DatasetError: nothing is found.
    """
    text = str(data)
    if text.startswith("@"):
        lst = Path(text[1:])
        if not lst.is_file():
            raise DatasetError(f"{lst} does not exist; @FILE names a text file of raster paths")
        lines = [ln.split("#")[0].strip() for ln in lst.read_text(encoding="utf-8").splitlines()]
        paths = [lst.parent / ln if not Path(ln).is_absolute() else Path(ln) for ln in lines if ln]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise DatasetError(
                f"{len(missing)} raster(s) of {lst.name} do not exist: "
                f"{listing(missing, lst.parent)}"
            )
    elif any(ch in text for ch in "*?["):
        paths = [Path(p) for p in sorted(glob.glob(text, recursive=True)) if Path(p).is_file()]
    elif Path(text).is_dir():
        root = Path(text)
        paths = sorted(
            p
            for p in root.rglob("*")
            if p.is_file()
            and p.suffix.lower() in ROAD_RASTER_EXTS
            and not any(p.stem.lower().endswith(s) for s in FLAT_MASK_SUFFIXES)
            and not any(part.startswith(".") for part in p.relative_to(root).parts)
        )
    elif Path(text).is_file():
        paths = [Path(text)]
    else:
        raise DatasetError(f"{text} does not exist; give a raster, a folder, a glob or @list.txt")
    if not paths:
        raise DatasetError(f"no rasters found in {text}; --data takes GeoTIFF or VRT files")
    return paths


@dataclass
class RoadScene:
    """One raster with the roads placed on it, and its blocks.

    Attributes:
        path: the raster.
        size: ``(width, height)``.
        dtype: its pixel type (of the first band).
        crs: its CRS, as text.
        gsd: metres per pixel (mean of x and y), or None when not georeferenced.
        area: the trusted area in pixel coordinates (AOI within the footprint).
        shapes: road polygons in pixel coordinates (see :func:`road_shapes`).
        lines: the drawn road lines near the raster, in its CRS (network truth).
        lengths_m: road length in metres inside the area, per class.
        road_share: share of the area covered by road.
        blocks: the blocks with room for a crop, with their split.
        problems: what stops training on this raster.
        notes: what to know.
    """

    path: Path
    size: tuple[int, int] = (0, 0)
    dtype: str = ""
    crs: str = "none"
    gsd: float | None = None
    area: Any = None
    shapes: list[Any] = field(default_factory=list)
    lines: list[Any] = field(default_factory=list)
    lengths_m: dict[str, float] = field(default_factory=dict)
    road_share: float = 0.0
    blocks: list[BlockCrops] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def crops(self, split: str, tile: int) -> int:
        """Non-overlapping ``tile`` crops the blocks of ``split`` hold."""
        return sum(
            1
            for b in self.blocks
            if b.split == split
            for c, r in b.positions
            if (c - int(b.block.col_off)) % tile == 0 and (r - int(b.block.row_off)) % tile == 0
        )


@dataclass(frozen=True)
class RoadDataset:
    """What :func:`scan_road_dataset` found: a report like any dataset's, and the
    scenes the crop reader needs.

    Attributes:
        report: the dataset report (``train``/``val`` samples name each raster
            once per split; ``errors`` stop training).
        scenes: the rasters' scenes, by path.
        layer: the road layer.
        tile: crop side.
        stride: grid step of crop positions.
        block_m: block side on the ground.
    """

    report: DatasetReport
    scenes: dict[Path, RoadScene]
    layer: RoadLayer
    tile: int
    stride: int
    block_m: float

    def describe(self) -> str:
        """A multi-line report for ``roadseg train --check``: per raster, then overall."""
        lines = []
        for scene in self.scenes.values():
            lines.append(f"Raster: {scene.path}")
            lines.append(f"  crs:        {scene.crs}")
            gsd = f"{scene.gsd:.3g} m" if scene.gsd is not None else "unknown"
            lines.append(f"  gsd:        {gsd}")
            if scene.lengths_m:
                per = ", ".join(
                    f"{k} {v / 1000:.2f} km"
                    for k, v in sorted(scene.lengths_m.items(), key=lambda kv: -kv[1])
                )
                lines.append(f"  road length: {per}")
            lines.append(f"  road share: {scene.road_share:.1%} of the area")
            lines.append(
                f"  crops:      {scene.crops('train', self.tile)} train, "
                f"{scene.crops('val', self.tile)} validation ({self.tile} px, not overlapping)"
            )
            for note in scene.notes:
                lines.append(f"  note:       {note}")
            for problem in scene.problems:
                lines.append(f"  PROBLEM:    {problem}")
        lines.append(f"Roads: {self.layer.path} (layer {self.layer.layer}), {self.layer.source}")
        lines.append(f"  split:      {self.report.split_method}")
        for note in self.report.notes:
            lines.append(f"  note:       {note}")
        for error in self.report.errors:
            lines.append(f"  PROBLEM:    {error}")
        if not self.report.errors:
            lines.append("  status:     ready to train")
        return "\n".join(lines)


def _read_aoi(path: Path) -> tuple[list[Any], Any, list[str]]:
    """AOI polygons, their CRS and problems."""
    from roadseg.vector_io import read_features

    try:
        feats = read_features(path)
    except VectorError as exc:
        return [], None, [str(exc)]
    polys = [g for g in feats.geoms if g is not None and "Polygon" in g.geom_type]
    problems = []
    if not polys:
        problems.append(f"--aoi {path.name} holds no polygons; draw the area as polygons")
    if feats.crs is None:
        problems.append(
            f"--aoi {path.name} has no CRS; set it with ogr2ogr -a_srs EPSG:XXXX fixed.gpkg "
            f"{path.name}"
        )
    return polys, feats.crs, problems


def _nearby(geoms: Sequence[Any], geoms_crs: Any, src: Any, tree: Any) -> list[int]:
    """Indices of ``geoms`` whose boxes meet the raster's bounds (with a margin)."""
    from rasterio.warp import transform_bounds
    from shapely import box

    try:
        bounds = transform_bounds(src.crs, geoms_crs, *src.bounds, densify_pts=21)
    except Exception:  # noqa: BLE001 - GDAL raises many types; then test every geometry
        return list(range(len(geoms)))
    dx, dy = (bounds[2] - bounds[0]) * 0.05, (bounds[3] - bounds[1]) * 0.05
    hits = tree.query(box(bounds[0] - dx, bounds[1] - dy, bounds[2] + dx, bounds[3] + dy))
    return sorted(int(i) for i in hits)


def _place_roads(
    scene: RoadScene,
    src: Any,
    layer: RoadLayer,
    tree: Any,
    aoi: tuple[list[Any], Any] | None,
    half: str | None,
) -> None:
    """Roads and area of one georeferenced raster, with lengths and road share."""
    from shapely import affinity
    from shapely.ops import unary_union

    from roadseg.vector_io import reproject_lines

    drawn = layer.drawn
    near = [drawn[i] for i in _nearby([layer.geoms[i] for i in drawn], layer.crs, src, tree)]
    geoms = reproject_lines([layer.geoms[i] for i in near], layer.crs, src.crs)
    widths = [layer.widths[i] for i in near]
    aoi_geoms = reproject_lines(aoi[0], aoi[1], src.crs) if aoi is not None else None
    scene.area = area_in_pixels(src.width, src.height, src.transform, aoi_geoms, half)
    if scene.area.is_empty:
        scene.notes.append("the AOI does not cover this raster; it is not used")
        return
    scene.shapes = road_shapes(geoms, widths, src, cap_style="round")
    scene.lines = [g for g in geoms if "LineString" in g.geom_type]
    px = pixel_size_m(src) or (1.0, 1.0)
    inv = ~src.transform
    lengths: Counter[str] = Counter()
    for i, g in zip(near, geoms, strict=True):
        if "LineString" not in g.geom_type:
            continue
        pg = affinity.affine_transform(g, [inv.a, inv.b, inv.d, inv.e, inv.xoff, inv.yoff])
        inside = pg.intersection(scene.area)
        if not inside.is_empty:
            lengths[layer.classes[i]] += affinity.scale(inside, px[0], px[1], origin=(0, 0)).length
    scene.lengths_m = dict(lengths)
    roads = unary_union(scene.shapes).intersection(scene.area) if scene.shapes else None
    scene.road_share = float(roads.area / scene.area.area) if roads is not None else 0.0
    if roads is None or roads.is_empty:
        scene.notes.append(
            f"no roads of {layer.path.name} lie inside this raster's area; it trains as background"
        )


def _raster_problems(src: Any, name: str) -> list[str]:
    if src.crs is None and src.transform.is_identity:
        return [
            f"{name} has no georeferencing, so the roads cannot be placed on it; georeference "
            f"it (e.g. gdal_translate -a_srs EPSG:XXXX -a_ullr ULX ULY LRX LRY {name} out.tif)"
        ]
    if src.crs is None:
        return [f"{name} has no CRS; set it with gdal_edit.py -a_srs EPSG:XXXX {name}"]
    return []


@dataclass(frozen=True)
class RoadLabels:
    """Where the labels of rasters come from: a road layer, how wide its lines are
    drawn, and where it is trusted.

    Attributes:
        roads: the road layer (GeoJSON or GeoPackage).
        layer: its layer, when it has several.
        rule: how lines get their width.
        aoi: polygons limiting where labels are trusted (default: each footprint).
        half: one half of each raster (:data:`roadseg.data.aoi_split.HALVES`),
            within the AOI when both are given.
    """

    roads: Path
    layer: str | None = None
    rule: WidthRule = field(default_factory=WidthRule)
    aoi: Path | None = None
    half: str | None = None

    def __post_init__(self) -> None:
        if self.half is not None and self.half not in HALVES:
            raise ValueError(f"half must be one of {', '.join(HALVES)}, got {self.half!r}")


@dataclass(frozen=True)
class PlacedRoads:
    """What :func:`place_road_layer` found: the road layer on every raster.

    Attributes:
        scenes: each raster with its area, road shapes and lines, by path.
        layer: the road layer.
        errors: what stops training or scoring, one line each (layer, AOI and
            raster problems; roads in no raster's area).
        notes: what to know.
    """

    scenes: dict[Path, RoadScene]
    layer: RoadLayer
    errors: tuple[str, ...]
    notes: tuple[str, ...]


def place_road_layer(
    data: str | os.PathLike[str],
    labels: RoadLabels,
    *,
    bands: Sequence[int] | None = None,
    model_bands: int = 3,
) -> PlacedRoads:
    """The road layer placed on every raster of ``data``, reading headers and vectors only.

    Problems are collected (per raster in each scene's ``problems``, all of them
    in ``errors``) so ``--check`` can list them; a layer with no road inside any
    raster's area is one of them.

    Args:
        data: raster, folder, glob, VRT or ``@list.txt`` (see :func:`list_rasters`).
        labels: the road layer, its widths, the AOI and the half.
        bands: image bands that feed the model.
        model_bands: bands the model takes.

    Raises:
        DatasetError: no rasters, or the road layer cannot be read at all.
    """
    from shapely import STRtree

    paths = list_rasters(data)
    road_layer = read_road_layer(labels.roads, layer=labels.layer, rule=labels.rule)
    errors = list(road_layer.problems)
    notes = list(road_layer.notes)
    aoi_data = None
    if labels.aoi is not None:
        polys, aoi_crs, aoi_problems = _read_aoi(Path(labels.aoi))
        errors.extend(aoi_problems)
        aoi_data = (polys, aoi_crs) if not aoi_problems else None
    usable = not errors
    tree = STRtree([road_layer.geoms[i] for i in road_layer.drawn]) if usable else None
    scenes: dict[Path, RoadScene] = {}
    for path in paths:
        scene = RoadScene(path)
        scenes[path] = scene
        try:
            with open_raster(path) as src:
                scene.size = (src.width, src.height)
                scene.dtype = src.dtypes[0]
                scene.crs = src.crs.to_string() if src.crs is not None else "none"
                px = pixel_size_m(src)
                scene.gsd = (px[0] + px[1]) / 2.0 if px else None
                scene.problems.extend(_raster_problems(src, path.name))
                try:
                    select_bands(src, bands, model_bands, path.name)
                except RoadsegError as exc:
                    scene.problems.append(str(exc))
                if usable and not scene.problems:
                    _place_roads(scene, src, road_layer, tree, aoi_data, labels.half)
        except (RasterioError, OSError) as exc:
            scene.problems.append(f"{path.name} cannot be read as a raster ({exc})")
    for scene in scenes.values():
        errors.extend(scene.problems)
    if not errors and not any(s.road_share > 0 for s in scenes.values()):
        errors.append(
            f"no roads of {road_layer.path.name} lie inside any raster's area; check that "
            "the layer covers the rasters and that its CRS is right"
        )
    return PlacedRoads(scenes, road_layer, tuple(errors), tuple(notes))


def scan_road_dataset(
    data: str | os.PathLike[str],
    roads: str | os.PathLike[str],
    *,
    layer: str | None = None,
    rule: WidthRule | None = None,
    aoi: str | os.PathLike[str] | None = None,
    half: str | None = None,
    tile_size: int = 224,
    block_m: float = DEFAULT_BLOCK_M,
    val_fraction: float = 0.15,
    seed: int = 0,
    bands: Sequence[int] | None = None,
    model_bands: int = 3,
) -> RoadDataset:
    """Check rasters and a road layer for training, reading headers and vectors only.

    The roads are placed by :func:`place_road_layer`; then each raster's area is
    cut into blocks and a seeded share of them validates. Problems that stop
    training are collected (per raster in each scene's ``problems``, all of them
    in ``report.errors``) so ``--check`` can list them.

    Args:
        data: raster, folder, glob, VRT or ``@list.txt`` (see :func:`list_rasters`).
        roads: the road layer (GeoJSON or GeoPackage).
        layer: its layer, when it has several.
        rule: how lines get their width.
        aoi: polygons limiting where labels are trusted (default: each footprint).
        half: train on this half of each raster only (see
            :func:`roadseg.data.aoi_split.half_window`).
        tile_size: crop side in pixels.
        block_m: side of the spatial split's blocks in metres.
        val_fraction: share of blocks for validation.
        seed: seed of the block choice.
        bands: image bands that feed the model.
        model_bands: bands the model takes.

    Raises:
        DatasetError: no rasters, or the road layer cannot be read at all.
    """
    labels = RoadLabels(
        Path(roads),
        layer=layer,
        rule=rule or WidthRule(),
        aoi=Path(aoi) if aoi is not None else None,
        half=half,
    )
    placed = place_road_layer(data, labels, bands=bands, model_bands=model_bands)
    stride = max(2, tile_size // 4)
    for scene in placed.scenes.values():
        if scene.area is not None and not scene.area.is_empty:
            side = block_side_px(tile_size, scene.gsd, block_m)
            for w in block_windows(scene.size[0], scene.size[1], side):
                pos = crop_positions(w, scene.area, tile_size, stride)
                if pos:
                    scene.blocks.append(BlockCrops(w, tuple(pos), ""))
    return _assemble(placed, data, tile_size, stride, block_m, val_fraction, seed)


def _assemble(
    placed: PlacedRoads,
    data: str | os.PathLike[str],
    tile: int,
    stride: int,
    block_m: float,
    val_fraction: float,
    seed: int,
) -> RoadDataset:
    """The split of every scene's blocks, and the report."""
    scenes, road_layer = placed.scenes, placed.layer
    errors = list(placed.errors)
    every = [(scene, i) for scene in scenes.values() for i in range(len(scene.blocks))]
    split_method = f"spatial blocks of {block_m:g} m (seed {seed})"
    if not errors:
        splits, problem = choose_validation([True] * len(every), val_fraction, seed)
        if problem:
            errors.append(problem)
        for (scene, i), split in zip(every, splits, strict=True):
            b = scene.blocks[i]
            scene.blocks[i] = BlockCrops(b.block, b.positions, split)
        n_val = splits.count("val")
        split_method += f": {len(splits) - n_val} training, {n_val} validation blocks"
    train: list[Sample] = []
    val: list[Sample] = []
    for scene in scenes.values():
        for split, out in (("train", train), ("val", val)):
            if any(b.split == split for b in scene.blocks):
                out.append(Sample(scene.path, road_layer.path, split=split, size=scene.size))
    train_px = sum(
        len(b.positions) * stride * stride
        for s in scenes.values()
        for b in s.blocks
        if b.split == "train"
    )
    gsds = [s.gsd for s in scenes.values() if s.gsd is not None]
    shares = [s.road_share for s in scenes.values() if s.area is not None]
    report = DatasetReport(
        root=Path(str(data)),
        layout=ROADS_LAYOUT,
        train=tuple(train),
        val=tuple(val),
        split_method=split_method,
        decoder=MaskDecoder(description=f"road layer {road_layer.path.name}: {road_layer.source}"),
        gsd=float(np.median(gsds)) if gsds else None,
        gsd_source="georeferencing" if gsds else "unknown",
        size_range=_size_range([s.size for s in scenes.values()]),
        dtypes=tuple(sorted({s.dtype for s in scenes.values() if s.dtype})),
        megapixels=train_px / 1e6,
        road_fraction=float(np.mean(shares)) if shares else None,
        notes=placed.notes,
        errors=tuple(errors),
    )
    return RoadDataset(report, scenes, road_layer, tile, stride, block_m)


def _size_range(sizes: Sequence[tuple[int, int]]) -> tuple[int, int, int, int] | None:
    if not sizes:
        return None
    ws, hs = zip(*sizes, strict=True)
    return min(ws), min(hs), max(ws), max(hs)
