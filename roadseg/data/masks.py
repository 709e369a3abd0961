"""Labels to 0/1 road masks: decoding raster masks (threshold, colour, index value,
palettes), learning the decoder from a few sampled masks, and rasterising vector
road lines (SpaceNet GeoJSON) buffered to a width in metres.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.windows import Window

from roadseg.data.rasters import open_raster, pixel_size_m
from roadseg.data.types import LabelRule, MaskDecoder, Sample

#: Masks sampled (decimated) to learn how they encode roads.
MASK_SAMPLES = 8
MASK_SAMPLE_SIDE = 512


def colormap_lut(src: rasterio.io.DatasetReader) -> np.ndarray | None:
    """A (256, 3) uint8 lookup table for a palette band, or None."""
    if src.count != 1 or src.dtypes[0] != "uint8":
        return None
    try:
        cmap = src.colormap(1)
    except ValueError:
        return None
    lut = np.zeros((256, 3), dtype=np.uint8)
    for idx, rgba in cmap.items():
        if 0 <= idx < 256:
            lut[idx] = rgba[:3]
    return lut


def decode_mask(raw: np.ndarray, decoder: MaskDecoder, lut: np.ndarray | None = None) -> np.ndarray:
    """Turn a label raster block into a 0/1 road mask.

    Args:
        raw: ``(bands, height, width)`` label values.
        decoder: the rule (see :class:`MaskDecoder`).
        lut: ``(256, 3)`` colour table of a palette mask, if any.

    Returns:
        ``(height, width)`` uint8 array of 0 and 1.
    """
    if decoder.kind == "value":
        return (raw[0] == decoder.value).astype(np.uint8)
    if lut is not None:
        raw = np.moveaxis(lut[raw[0]], -1, 0)
    if decoder.kind == "color":
        if raw.shape[0] < 3:
            return np.zeros(raw.shape[1:], dtype=np.uint8)
        color = np.asarray(decoder.color, dtype=np.int16)[:, None, None]
        diff = np.abs(raw[:3].astype(np.int16) - color)
        return np.all(diff <= decoder.tolerance, axis=0).astype(np.uint8)
    channels = raw[:3] if raw.shape[0] >= 3 else raw[:1]
    return (channels.max(axis=0) >= decoder.threshold).astype(np.uint8)


def sample_masks(samples: Sequence[Sample]) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Decimated reads of a few raster masks spread over the dataset."""
    rasters = [s for s in samples if not s.is_vector]
    if not rasters:
        return []
    picks = np.linspace(0, len(rasters) - 1, num=min(MASK_SAMPLES, len(rasters))).round()
    out = []
    for i in sorted({int(p) for p in picks}):
        try:
            with open_raster(rasters[i].label) as src:
                scale = max(1.0, max(src.width, src.height) / MASK_SAMPLE_SIDE)
                shape = (
                    src.count,
                    max(1, round(src.height / scale)),
                    max(1, round(src.width / scale)),
                )
                raw = src.read(out_shape=shape, resampling=rasterio.enums.Resampling.nearest)
                out.append((raw, colormap_lut(src)))
        except (RasterioError, OSError, ValueError):
            continue  # reported by the header check
    return out


def _colour_listing(colours: Counter[tuple[int, ...]], total: int, limit: int = 6) -> str:
    items = [
        f"({','.join(str(int(c)) for c in colour)}) {n / total:.0%}"
        for colour, n in colours.most_common(limit)
    ]
    more = len(colours) - limit
    return ", ".join(items) + (f" and {more} more" if more > 0 else "")


_UNKNOWN = MaskDecoder(description="not understood (see the problem below)")

#: Masks as :func:`infer_decoder` takes them: ``(raw (bands, h, w), palette lut or None)``.
SampledMasks: TypeAlias = Sequence[tuple[np.ndarray, np.ndarray | None]]


def infer_decoder(
    masks: SampledMasks, rule: LabelRule
) -> tuple[MaskDecoder, float | None, str | None]:
    """Learn how masks encode roads from a few decimated masks.

    Args:
        masks: ``(raw (bands, h, w), palette lut or None)`` pairs.
        rule: what the user said (``road_color`` / ``road_value``).

    Returns:
        ``(decoder, road fraction in the samples or None, error or None)``.
    """
    if rule.road_value is not None:
        dec = MaskDecoder(
            kind="value",
            value=rule.road_value,
            description=f"road where the mask = {rule.road_value}",
        )
    elif rule.road_color is not None:
        r, g, b = rule.road_color
        dec = MaskDecoder(
            kind="color",
            color=rule.road_color,
            description=f"road where the mask is RGB ({r},{g},{b})",
        )
    else:
        dec = None
    if not masks:
        return dec or MaskDecoder(), None, None

    colours, index_values, total = _mask_values(masks)
    if dec is not None:
        return _check_given_decoder(dec, masks, colours, index_values, total)
    guessed, problem = _guess_decoder(colours, total)
    if problem is not None:
        return guessed, None, problem
    return guessed, _road_fraction(masks, guessed), None


def _mask_values(masks: SampledMasks) -> tuple[Counter[tuple[int, ...]], Counter[int], int]:
    """Colours (or grey values) present, as tuples, palette masks expanded; the values
    of band 1; and the number of pixels."""
    colours: Counter[tuple[int, ...]] = Counter()
    index_values: Counter[int] = Counter()
    total = 0
    for raw, lut in masks:
        index_values.update(np.unique(raw[0], return_counts=True)[0].tolist())
        rgb = np.moveaxis(lut[raw[0]], -1, 0) if lut is not None else raw[:3]
        flat = rgb.reshape(rgb.shape[0], -1).T
        uniq, counts = np.unique(flat, axis=0, return_counts=True)
        for u, n in zip(uniq, counts, strict=True):
            colours[tuple(int(v) for v in u)] += int(n)
        total += flat.shape[0]
    return colours, index_values, total


def _road_fraction(masks: SampledMasks, dec: MaskDecoder) -> float:
    """Share of road pixels in the sampled masks under ``dec``."""
    return float(
        np.mean(np.concatenate([decode_mask(raw, dec, lut).ravel() for raw, lut in masks]))
    )


def _check_given_decoder(
    dec: MaskDecoder,
    masks: SampledMasks,
    colours: Counter[tuple[int, ...]],
    index_values: Counter[int],
    total: int,
) -> tuple[MaskDecoder, float | None, str | None]:
    """The decoder of the user's road colour or value, checked against the masks."""
    # Kept as it was written before the split: the palette test sees only the last
    # sampled mask's table (the name leaked from a loop), not each mask's own.
    last_lut = masks[-1][1]
    multiband = any(raw.shape[0] >= 3 or last_lut is not None for raw, _ in masks)
    if dec.kind == "color" and not multiband:
        values = ", ".join(str(v) for v in sorted(index_values)[:12])
        return (
            dec,
            None,
            (
                f"--road-color needs colour (RGB) masks, but the masks have one band "
                f"(values {values}); use --road-value N"
            ),
        )
    fraction = _road_fraction(masks, dec)
    if fraction == 0.0:
        found = (
            _colour_listing(colours, total)
            if dec.kind == "color"
            else ", ".join(str(v) for v in sorted(index_values)[:12])
        )
        return (
            dec,
            0.0,
            (f"no sampled mask contains the road class you gave; the masks hold {found}"),
        )
    return dec, fraction, None


def _guess_decoder(colours: Counter[tuple[int, ...]], total: int) -> tuple[MaskDecoder, str | None]:
    """The decoder the masks' colours imply, or ``(_UNKNOWN, why)`` when they are unclear."""
    grey = all(len(set(c)) == 1 for c in colours)
    if grey:
        values = sorted({c[0] for c in colours})
        counts = {c[0]: n for c, n in colours.items()}
        # JPEG-compressed 0/255 masks: nearly all pixels near black or white.
        extreme = sum(n for v, n in counts.items() if v <= 32 or v >= 223)
        if set(values) <= {0, 1}:
            dec = MaskDecoder(kind="threshold", threshold=1, description="0/1 masks, road = 1")
        elif set(values) <= {0, 255}:
            dec = MaskDecoder(
                kind="threshold", threshold=128, description="0/255 masks, road = 255"
            )
        elif values[-1] >= 223 and extreme >= 0.98 * total:
            dec = MaskDecoder(
                kind="threshold",
                threshold=128,
                description="near-binary 0/255 masks (compression noise), road >= 128",
            )
        elif len(values) <= 32:
            listing = ", ".join(f"{v} {counts[v] / total:.0%}" for v in values[:12])
            return (
                _UNKNOWN,
                (
                    f"the masks hold {len(values)} classes (values {listing}); "
                    "say which is road with --road-value N"
                ),
            )
        else:
            return (
                _UNKNOWN,
                (
                    f"the masks are not binary ({len(values)} grey levels); give 0/255 or 0/1 "
                    "masks, or --road-value N for an index mask"
                ),
            )
    else:
        non_black = [c for c in colours if any(c)]
        if len(colours) == 2 and len(non_black) == 1:
            colour = tuple(int(v) for v in non_black[0][:3])
            r, g, b = colour
            dec = MaskDecoder(
                kind="color",
                color=(r, g, b),
                description=f"two-colour masks, road = RGB ({r},{g},{b})",
            )
        else:
            return (
                _UNKNOWN,
                (
                    f"the masks hold {len(colours)} colours: {_colour_listing(colours, total)}; "
                    "say which is road with --road-color R,G,B"
                ),
            )
    return dec, None


def read_geojson(path: Path) -> tuple[list[Any], str | None]:
    """Geometries of a GeoJSON file and its legacy ``crs`` name (None: lon/lat)."""
    from shapely.geometry import shape

    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a GeoJSON object")
    if data.get("type") == "FeatureCollection":
        geoms = [f.get("geometry") for f in data.get("features", [])]
    elif data.get("type") == "Feature":
        geoms = [data.get("geometry")]
    else:
        geoms = [data]
    crs = (data.get("crs") or {}).get("properties", {}).get("name")
    shapes = [shape(g) for g in geoms if g]
    return [g for g in shapes if not g.is_empty], crs


def road_shapes(
    geoms: Sequence[Any],
    widths_m: Sequence[float],
    src: rasterio.io.DatasetReader,
    *,
    cap_style: str = "flat",
) -> list[Any]:
    """Road geometries in the raster's CRS as polygons in its pixel coordinates.

    The one home of road burning: lines are buffered to their width in metres
    (whatever the pixel aspect ratio), polygons (road surfaces) are kept as they
    are; lines of width 0 or less, and points, are dropped.

    Args:
        geoms: shapely geometries in ``src``'s CRS.
        widths_m: the full width of each line's road band (ignored for polygons).
        src: the raster the mask is for.
        cap_style: how line ends are drawn: ``"flat"`` (SpaceNet) or ``"round"``
            (road layers cut into many features, so that joints stay closed).
    """
    from shapely import affinity

    px = pixel_size_m(src) or (1.0, 1.0)
    inv = ~src.transform
    out = []
    for g, width in zip(geoms, widths_m, strict=True):
        if g is None or g.is_empty:
            continue
        g = affinity.affine_transform(g, [inv.a, inv.b, inv.d, inv.e, inv.xoff, inv.yoff])
        if g.geom_type in ("Polygon", "MultiPolygon"):
            out.append(g)
            continue
        if "LineString" not in g.geom_type and g.geom_type != "GeometryCollection":
            continue
        if not width > 0:
            continue
        metric = affinity.scale(g, px[0], px[1], origin=(0, 0))
        band = metric.buffer(width / 2.0, cap_style=cap_style)
        out.append(affinity.scale(band, 1 / px[0], 1 / px[1], origin=(0, 0)))
    return out


def shapes_mask(shapes: Sequence[Any]) -> Callable[[Window], np.ndarray]:
    """A function rasterising pixel-space polygons into a window (0/1 uint8); only
    the polygons that touch the window are drawn, so a large layer stays cheap."""
    from affine import Affine
    from rasterio.features import rasterize
    from shapely import STRtree, box

    kept = [g for g in shapes if not g.is_empty]
    tree = STRtree(kept) if kept else None

    def read(window: Window) -> np.ndarray:
        shape_ = (int(window.height), int(window.width))
        if tree is None:
            return np.zeros(shape_, dtype=np.uint8)
        c0, r0 = float(window.col_off), float(window.row_off)
        hits = tree.query(box(c0, r0, c0 + shape_[1], r0 + shape_[0]))
        if len(hits) == 0:
            return np.zeros(shape_, dtype=np.uint8)
        return rasterize(
            [(kept[int(i)], 1) for i in hits],
            out_shape=shape_,
            transform=Affine.translation(c0, r0),
            fill=0,
            dtype="uint8",
        )

    return read


def vector_mask(
    label: Path, src: rasterio.io.DatasetReader, width_m: float
) -> Callable[[Window], np.ndarray]:
    """A function rasterising the label's road lines (buffered) into a window."""
    from rasterio.warp import transform_geom
    from shapely.geometry import mapping, shape
    from shapely.ops import unary_union

    geoms, crs_name = read_geojson(label)
    lonlat = crs_name is None or "CRS84" in crs_name.upper() or crs_name.endswith(":4326")
    reproject = src.crs is not None and not (lonlat and src.crs.to_epsg() == 4326)
    if reproject:
        geoms = [shape(transform_geom(crs_name or "OGC:CRS84", src.crs, mapping(g))) for g in geoms]
    shapes = road_shapes(geoms, [width_m] * len(geoms), src)
    return shapes_mask([unary_union(shapes)] if shapes else [])
