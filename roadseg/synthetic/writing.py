"""Writing scenes to files: an RGB GeoTIFF, a road-mask GeoTIFF and GeoJSON
centerlines, streamed in blocks with bounded memory.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

from roadseg import encoding as enc
from roadseg.synthetic.elements import Layout
from roadseg.synthetic.generate import iter_blocks
from roadseg.synthetic.layout import scene_layout
from roadseg.synthetic.rendering import render
from roadseg.synthetic.spec import ScenePaths, SceneSpec, check_size


def scene_transform(spec: SceneSpec) -> Affine:
    """The affine transform (pixel -> map) of scenes made with ``spec``."""
    ox, oy = spec.origin
    return Affine(spec.gsd, 0.0, ox, 0.0, -spec.gsd, oy)


def write_scene(
    out_dir: str | Path,
    height: int,
    width: int,
    spec: SceneSpec = SceneSpec(),
    *,
    name: str = "scene",
    block: int = 1024,
    progress: bool = False,
    overwrite: bool = True,
    workers: int = 1,
) -> ScenePaths:
    """Write a scene as GeoTIFFs and GeoJSON, streaming it in blocks.

    Writes ``<name>.tif`` (RGB uint8, tiled 256 x 256, deflate), ``<name>_mask.tif``
    (uint8, 255 = road, 0 = not road, no nodata; same grid) and
    ``<name>_centerlines.geojson`` (RFC 7946, WGS84 lon/lat, property ``width_m``).
    Memory is bounded by ``block`` (a 16384 x 16384 scene fits in a few hundred MB).
    Each file appears whole or not at all (temporary name, then rename).

    Args:
        out_dir: existing or new folder.
        height, width: size in pixels.
        spec: seed and georeferencing (CRS, ``gsd``, ``origin``).
        name: file name stem.
        block: rendering block side in pixels (a multiple of 256 is best).
        progress: show a tqdm progress bar.
        overwrite: replace existing files; when False, raise instead.
        workers: threads rendering blocks (and compressing tiles) in parallel; the
            output does not depend on it.

    Returns:
        The paths written.

    Raises:
        ValueError: if the size, block, workers, name or CRS is invalid.
        roadseg.errors.OutputError: if the files exist (and ``overwrite`` is False)
            or cannot be written.
    """
    import rasterio
    from rasterio.windows import Window

    from roadseg.errors import OutputError

    height, width = check_size(height, width)
    _check_write_options(spec, block, workers, name)
    out = Path(out_dir)
    paths = ScenePaths(
        out / f"{name}.tif", out / f"{name}_mask.tif", out / f"{name}_centerlines.geojson"
    )
    if not overwrite:
        for p in (paths.image, paths.mask, paths.centerlines):
            if p.exists():
                raise OutputError(f"{p} exists; not replacing it (overwrite=False)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {out}: {exc.strerror}") from exc
    lay = scene_layout(height, width, spec)
    tag = uuid.uuid4().hex[:8]
    tmp = ScenePaths(
        out / f".{name}.{tag}.tmp.tif",
        out / f".{name}_mask.{tag}.tmp.tif",
        out / f".{name}_centerlines.{tag}.tmp.geojson",
    )
    common, tags = _profile(height, width, spec, workers)
    blocks = list(iter_blocks(height, width, int(block)))
    try:
        with (
            rasterio.open(
                tmp.image, "w", count=3, photometric="RGB", interleave="pixel", **common
            ) as img_dst,
            rasterio.open(tmp.mask, "w", count=1, **common) as mask_dst,
        ):
            img_dst.update_tags(**tags)
            mask_dst.update_tags(**tags, **{enc.TAG_MASK: "255 = road surface, 0 = not road"})
            rendered = _render_blocks(lay, blocks, workers)
            if progress:
                from tqdm import tqdm

                rendered = tqdm(rendered, total=len(blocks), desc=name, unit="block")
            for (r, c, h, w), image, mask in rendered:
                win = Window(c, r, w, h)
                img_dst.write(np.moveaxis(image, -1, 0), window=win)
                mask_dst.write((mask * np.uint8(255))[None], window=win)
        _write_geojson(tmp.centerlines, lay, spec)
        os.replace(tmp.image, paths.image)
        os.replace(tmp.mask, paths.mask)
        os.replace(tmp.centerlines, paths.centerlines)
    except (OSError, rasterio.errors.RasterioIOError) as exc:
        raise OutputError(f"cannot write scene {name!r} to {out}: {exc}") from exc
    finally:
        for p in (tmp.image, tmp.mask, tmp.centerlines):
            p.unlink(missing_ok=True)
    return paths


def _check_write_options(spec: SceneSpec, block: int, workers: int, name: str) -> None:
    """Refuse a CRS rasterio does not know, a bad block, workers or file name stem."""
    import rasterio
    from rasterio.crs import CRS

    try:
        CRS.from_user_input(spec.crs)
    except rasterio.errors.CRSError as exc:
        raise ValueError(f"crs {spec.crs!r} is not a CRS rasterio understands: {exc}") from exc
    if not isinstance(block, (int, np.integer)) or block < 16:
        raise ValueError(f"block must be an integer >= 16 pixels, got {block!r}")
    if not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if not name or any(ch in name for ch in "/\\") or name.startswith("."):
        raise ValueError(f"name must be a plain file name stem, got {name!r}")


def _profile(
    height: int, width: int, spec: SceneSpec, workers: int
) -> tuple[dict[str, Any], dict[str, str]]:
    """The creation options shared by the image and the mask, and their tags."""
    common: dict[str, Any] = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "dtype": "uint8",
        "crs": spec.crs,
        "transform": scene_transform(spec),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "predictor": 2,
        "nodata": None,
    }
    if height * width * 3 > 3_900_000_000:
        common["BIGTIFF"] = "YES"
    tags = {
        enc.TAG_GENERATOR: "roadseg.synthetic",
        enc.TAG_SEED: str(spec.seed),
        enc.TAG_SIZE: f"{height}x{width}",
    }
    if spec.setting != "countryside":
        tags[enc.TAG_SETTING] = spec.setting
    if workers > 1:
        common["num_threads"] = workers  # GDAL compresses tiles in parallel too
    return common, tags


def _render_blocks(
    lay: Layout, blocks: list[tuple[int, int, int, int]], workers: int
) -> Iterator[tuple[tuple[int, int, int, int], np.ndarray, np.ndarray]]:
    """Render blocks in order, ``workers`` at a time (NumPy releases the GIL in its
    array loops). At most ``2 * workers`` rendered blocks wait in memory."""
    if workers <= 1:
        for b in blocks:
            yield (b, *render(lay, *b))
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque = deque()
        todo = iter(blocks)
        for b in todo:
            pending.append((b, pool.submit(render, lay, *b)))
            if len(pending) >= 2 * workers:
                break
        while pending:
            b, fut = pending.popleft()
            image, mask = fut.result()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(render, lay, *nxt)))
            yield b, image, mask


def _write_geojson(path: Path, lay: Layout, spec: SceneSpec) -> None:
    """The centerlines as RFC 7946 GeoJSON (WGS84 lon/lat), property ``width_m``."""
    from rasterio.warp import transform_geom

    tr = scene_transform(spec)
    features = []
    for line, w in zip(lay.centerlines, lay.widths, strict=True):
        xy = np.asarray(line.coords)
        mx = tr.a * xy[:, 0] + tr.b * xy[:, 1] + tr.c
        my = tr.d * xy[:, 0] + tr.e * xy[:, 1] + tr.f
        geom = {"type": "LineString", "coordinates": np.column_stack([mx, my]).tolist()}
        ll = transform_geom(spec.crs, "EPSG:4326", geom)
        coords = [[round(x, 8), round(y, 8)] for x, y in ll["coordinates"]]
        features.append(
            {
                "type": "Feature",
                "properties": {"width_m": round(w * spec.gsd, 3)},
                "geometry": {"type": "LineString", "coordinates": coords},
            }
        )
    doc = {"type": "FeatureCollection", "features": features}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
