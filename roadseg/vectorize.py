"""Road mask (or road probabilities) to a clean, georeferenced road network.

The vector flow of roadseg, in the order it runs:

1. **Read and threshold** the raster in chunks (``chunk_size`` pixels square). A
   probability map is thresholded at ``threshold``; with ``low`` set, pixels down to
   ``low`` are kept when they are connected to a pixel at or above ``threshold``
   (hysteresis).
2. **Clean**: holes smaller than ``hole_area_m2`` are filled and blobs smaller than
   ``min_area_m2`` are dropped, unless they are long and thin (a road piece between
   two gaps spans 10 m or more). Both are decisions about connected components of
   the whole raster; they are made exactly by labelling each chunk, joining labels
   across chunk borders with a union-find, and applying the decisions in a second
   pass that writes the cleaned mask to a 1-bit temporary file.
3. **Thin** the cleaned mask to a one-pixel skeleton (Guo & Hall's parallel
   two-subiteration thinning, the algorithm of :func:`skimage.morphology.thin`,
   run sparsely on the pixels that can change) in windows of a chunk plus a halo.
   The thinning is a cellular automaton: after ``t`` sub-iterations a pixel depends
   only on the input within ``t`` pixels. Each window counts the sub-iterations it
   needs to converge; when every window converged within the halo, the skeleton of
   every chunk's core is *exactly* the skeleton of the whole raster (see
   :func:`_skeletonize_chunks`). Otherwise the halo grows and the pass runs again.
   Road half-widths come from the nearest background pixel of each skeleton
   pixel (a k-d tree of the background's edge pixels), which is exact under the
   same halo condition.
4. **Graph**: skeleton pixels become junctions, end points and edges (pixel paths)
   with vectorised numpy/scipy (neighbour tables by binary search, connected
   components and a breadth-first ordering in :mod:`scipy.sparse.csgraph`).
   Every skeleton pixel ends in exactly one edge or node: isolated rings become
   closed edges, loops and parallel edges are kept. Each thinning window also
   builds its core's part of the graph (node pixels, and pieces of chains in
   walking order with where they leave the core; the skeleton two pixels beyond
   the core is exact too) and the parts are stitched across chunk borders into
   the graph :func:`skeleton_graph` gives for the whole skeleton, node and edge
   numbers included (see :func:`_merge_chunk_graphs`).
5. **Clean the graph** (in metres): spurs reaching less than ``spur_m`` beyond the
   road's edge are pruned, junctions closer than ``merge_m`` (or inside each
   other's road body) are merged, gaps up to ``gap_m`` between end points whose
   directions agree are bridged, end to end or end to the side of a line (along
   the path of highest road probability when probabilities are given), fragments
   shorter than ``spur_m`` are dropped, each junction moves to where its roads'
   center lines meet, and roads leaving the raster reach its edge.
6. **Lines**: pixel paths go to map coordinates through the affine transform
   (pixel centres at +0.5), are simplified with Douglas-Peucker in metres, and are
   noded at junctions (every line runs from a junction or end point to another).

Memory is bounded by a chunk plus its halo; of the whole raster only the chunks'
graph structures and the graph are held at once. The chunked result equals the unchunked one
(the tests check it bit for bit).

On Dask (``vectorize_raster(..., workers=N)`` or ``scheduler=ADDRESS``) the chunk
steps of stages 1-3 are tasks: a cleaning summary per chunk (labels' statistics and
border labels), the cleaned mask per chunk (a 1-bit file in a hidden folder beside
the output) and a thinning window per chunk, which returns its core's graph
structure (:class:`_ChunkGraph`). The client numbers and joins the labels,
decides, grows the halo, stitches the chunk graphs and runs stages 5-6 with the
same functions as in-process, so the result is the same bit for bit (see
:func:`extract_network`).

Metres everywhere, in any CRS: see :class:`GroundScale`.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import math
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import shapely
from affine import Affine
from scipy import ndimage as ndi
from scipy import sparse
from scipy.sparse import csgraph
from scipy.spatial import cKDTree
from shapely.geometry import LineString

from roadseg.distributed import DEFAULT_RETRIES
from roadseg.errors import RoadsegError, UnsupportedRasterError, VectorError

log = logging.getLogger(__name__)

__all__ = [
    "VectorizeOptions",
    "VectorizeResult",
    "RoadNetwork",
    "GroundScale",
    "ArraySource",
    "RasterSource",
    "RoadSource",
    "thin",
    "skeleton_graph",
    "PixelGraph",
    "PixelEdge",
    "prune_spurs",
    "merge_junctions",
    "refine_junctions",
    "extend_to_border",
    "clean_graph",
    "douglas_peucker",
    "extract_network",
    "vectorize_array",
    "vectorize_raster",
    "default_output_path",
    "iter_lines",
]

RasterKind = Literal["mask", "probability"]

#: WGS84 ellipsoid, for metres per degree of latitude and longitude.
_WGS84_A = 6378137.0
_WGS84_F = 1.0 / 298.257223563
_WGS84_E2 = _WGS84_F * (2.0 - _WGS84_F)

#: Areas are summed as integers (square centimetres) so that chunked and unchunked
#: sums are exactly equal whatever order they run in.
_AREA_UNIT_M2 = 1e-4

#: uint8 probabilities as roadseg predict writes them: value = probability * 254.
_PREDICT_SCALE = 254
_PREDICT_NODATA = 255

#: Blobs smaller than ``min_area_m2`` are still kept when their bounding box
#: spans at least this much (a thin road piece between two gaps is long, speckle
#: is compact).
_KEEP_EXTENT_M = 10.0


# --------------------------------------------------------------------------------------
# Options and results
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VectorizeOptions:
    """Options of the vector flow. Lengths in metres, areas in square metres.

    Attributes:
        threshold: probability at which a pixel counts as road (probability input
            only). None: the raster's ``ROADSEG_THRESHOLD`` tag (written by
            ``roadseg predict``) or 0.5.
        low: optional lower threshold for hysteresis: pixels at or above ``low`` are
            road when they are connected to a pixel at or above ``threshold``.
        min_area_m2: blobs of road pixels smaller than this are dropped.
        hole_area_m2: holes in the road mask smaller than this are filled.
        spur_m: side branches that end within this distance beyond the road's edge
            are pruned; isolated fragments shorter than this are dropped.
        merge_m: junctions closer than this (or inside each other's road body) merge.
        gap_m: gaps up to this long between end points are bridged when the
            directions of both ends agree with the bridge; 0 disables bridging.
        gap_angle_deg: largest angle between an end's direction and the bridge.
        simplify_m: Douglas-Peucker tolerance; 0 keeps every pixel vertex.
        chunk_size: side of the square chunks, pixels (a multiple of 8, >= 64).
        halo: initial halo around each chunk, pixels; it grows by itself when a
            window's thinning needs more (very wide roads or plazas).
        overwrite: replace an existing output file.
        progress: show a tqdm progress bar.
    """

    threshold: float | None = None
    low: float | None = None
    min_area_m2: float = 30.0
    hole_area_m2: float = 30.0
    spur_m: float = 6.0
    merge_m: float = 5.0
    gap_m: float = 12.0
    gap_angle_deg: float = 35.0
    simplify_m: float = 0.5
    chunk_size: int = 2048
    halo: int = 128
    overwrite: bool = False
    progress: bool = False

    def validate(self) -> None:
        """Check the options.

        Raises:
            RoadsegError: a value out of range, with what was received.
        """
        if self.threshold is not None and not 0.0 < self.threshold < 1.0:
            raise RoadsegError(f"threshold must lie between 0 and 1, got {self.threshold}")
        if self.low is not None:
            if not 0.0 < self.low < 1.0:
                raise RoadsegError(f"low threshold must lie between 0 and 1, got {self.low}")
            if self.threshold is not None and self.low > self.threshold:
                raise RoadsegError(
                    f"low threshold {self.low} is above the threshold {self.threshold}; "
                    "hysteresis needs low <= threshold"
                )
        for name in ("min_area_m2", "hole_area_m2", "spur_m", "merge_m", "gap_m", "simplify_m"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise RoadsegError(f"{name} must be a non-negative number, got {value}")
        if not 0.0 < self.gap_angle_deg <= 90.0:
            raise RoadsegError(f"gap angle must lie in (0, 90] degrees, got {self.gap_angle_deg}")
        if self.chunk_size < 64 or self.chunk_size % 8:
            raise RoadsegError(
                f"chunk size must be a multiple of 8 and at least 64, got {self.chunk_size}"
            )
        if self.halo < 8:
            raise RoadsegError(f"halo must be at least 8 pixels, got {self.halo}")


@dataclass(frozen=True)
class RoadNetwork:
    """A road network: noded LineStrings in the raster's CRS, with attributes.

    Columns are parallel arrays, one entry per line. ``prob_mean`` and
    ``prob_min`` are None unless the input held probabilities.
    """

    lines: tuple[LineString, ...]
    length_m: np.ndarray
    width_m: np.ndarray
    start_node: np.ndarray
    end_node: np.ndarray
    prob_mean: np.ndarray | None
    prob_min: np.ndarray | None
    nodes: np.ndarray  # (n, 2) map x, y
    node_degree: np.ndarray
    crs: Any
    transform: Affine

    def __len__(self) -> int:
        return len(self.lines)

    @property
    def junctions(self) -> int:
        """Nodes where three or more lines meet."""
        return int(np.count_nonzero(self.node_degree >= 3))

    @property
    def total_length_m(self) -> float:
        return float(self.length_m.sum()) if len(self.lines) else 0.0

    def properties(self) -> dict[str, list[Any]]:
        """The attribute columns as plain Python lists, in output order."""
        cols: dict[str, list[Any]] = {
            "length_m": [round(float(v), 3) for v in self.length_m],
            "width_m": [None if not np.isfinite(v) else round(float(v), 2) for v in self.width_m],
        }
        if self.prob_mean is not None and self.prob_min is not None:
            cols["prob_mean"] = [_opt_round(v, 4) for v in self.prob_mean]
            cols["prob_min"] = [_opt_round(v, 4) for v in self.prob_min]
        cols["start_node"] = [int(v) for v in self.start_node]
        cols["end_node"] = [int(v) for v in self.end_node]
        return cols


def _opt_round(value: float, digits: int) -> float | None:
    return None if not np.isfinite(value) else round(float(value), digits)


@dataclass(frozen=True)
class VectorizeResult:
    """What :func:`vectorize_raster` wrote."""

    output: Path
    lines: int
    junctions: int
    length_m: float
    kind: RasterKind
    threshold: float | None
    halo: int
    seconds: float
    warnings: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    where: str = "in-process"


# --------------------------------------------------------------------------------------
# Ground scale: metres in any CRS
# --------------------------------------------------------------------------------------


class GroundScale:
    """Metres on the ground per pixel step, anywhere on a raster's grid.

    The scale is a 2x2 Jacobian ``J(row, col)`` that maps a step ``(d_row, d_col)``
    in pixels to ``(east, north)`` metres on the ground. It is measured at the nodes
    of a coarse grid over the raster (9 x 9 by default) by sending each node and two
    neighbouring points through the affine transform and
    :func:`rasterio.warp.transform` to longitude/latitude, and converting degrees to
    metres with the WGS84 ellipsoid's radii of curvature at that latitude; between
    nodes it is interpolated bilinearly.

    Why this and not a fixed pixel size: it is right for every CRS with one code path
    and no pyproj. In a geographic CRS a pixel of 2.7e-6 degrees is about 0.30 m
    east-west and 0.24 m north-south at Las Vegas, and its east-west size changes
    with latitude; in Web Mercator a "metre" of the map is ``1/cos(latitude)`` metres
    on the ground. Lengths summed segment by segment with the local Jacobian differ
    from geodesic lengths by far less than a millimetre per kilometre at the scale
    of road segments.

    With no CRS the map units are taken to be metres. When the CRS cannot be sent to
    longitude/latitude (a local engineering CRS) its linear unit is used.
    """

    def __init__(
        self,
        transform: Affine,
        crs: Any,
        height: int,
        width: int,
        nodes: int = 9,
    ) -> None:
        self.transform = transform
        self.height = height
        self.width = width
        self.exact = True  # False when metres are a guess (no CRS, or no way to lon/lat)
        linear = np.array([[transform.b, transform.a], [transform.e, transform.d]], float)
        jac: np.ndarray | None = None
        if crs is not None:
            with contextlib.suppress(Exception):
                jac = self._measure(transform, crs, height, width, nodes)
            if jac is None:
                self.exact = False
                factor = 1.0
                with contextlib.suppress(Exception):
                    factor = float(crs.linear_units_factor[1])
                linear = linear * factor
        else:
            self.exact = False
        if jac is None:
            jac = np.broadcast_to(linear, (2, 2, 2, 2)).copy()
        self._grid = jac  # (gr, gc, 2, 2)
        self._gr = np.linspace(0.0, float(height), jac.shape[0])
        self._gc = np.linspace(0.0, float(width), jac.shape[1])
        size = max(float(np.abs(jac).max()), 1e-300)
        self.constant = bool(np.abs(jac - jac[0, 0]).max() <= 1e-12 * size)
        # Over a tile the Jacobian is a quadratic in (row, col) to far better than
        # 1e-7: evaluate that model (cheap) when it fits every grid node that well.
        rr, cc = np.meshgrid(self._gr, self._gc, indexing="ij")
        design = self._design(rr.ravel(), cc.ravel())
        coef, *_ = np.linalg.lstsq(design, jac.reshape(-1, 4), rcond=None)
        self._poly: np.ndarray | None = None
        if np.abs(design @ coef - jac.reshape(-1, 4)).max() <= 1e-7 * size:
            self._poly = coef  # (6, 4)
        self.center = self.jacobian(np.array([height / 2.0]), np.array([width / 2.0]))[0]
        sv = np.linalg.svd(jac.reshape(-1, 2, 2), compute_uv=False)
        #: Smallest ground distance of a one-pixel step anywhere, metres.
        self.min_pixel_m = float(sv[:, 1].min())
        #: Largest ground distance of a one-pixel step anywhere, metres.
        self.max_pixel_m = float(sv[:, 0].max())

    @staticmethod
    def _measure(transform: Affine, crs: Any, height: int, width: int, nodes: int) -> np.ndarray:
        from rasterio.warp import transform as warp_transform

        n_r = nodes if height > 1 else 2
        n_c = nodes if width > 1 else 2
        rows = np.linspace(0.0, float(height), n_r)
        cols = np.linspace(0.0, float(width), n_c)
        rr, cc = np.meshgrid(rows, cols, indexing="ij")
        step = max(1.0, min(16.0, min(height, width) / 4.0))
        pr = np.concatenate([rr.ravel(), rr.ravel() + step, rr.ravel()])
        pc = np.concatenate([cc.ravel(), cc.ravel(), cc.ravel() + step])
        xs = transform.a * pc + transform.b * pr + transform.c
        ys = transform.d * pc + transform.e * pr + transform.f
        lon, lat = warp_transform(crs, "EPSG:4326", xs.tolist(), ys.tolist())
        lon = np.asarray(lon, float).reshape(3, -1)
        lat = np.asarray(lat, float).reshape(3, -1)
        if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
            raise ValueError("non-finite coordinates")
        phi = np.radians(lat[0])
        s2 = np.sin(phi) ** 2
        w = np.sqrt(1.0 - _WGS84_E2 * s2)
        m_per_deg_lat = np.radians(1.0) * _WGS84_A * (1.0 - _WGS84_E2) / w**3
        m_per_deg_lon = np.radians(1.0) * _WGS84_A * np.cos(phi) / w
        dlon_r = (lon[1] - lon[0] + 540.0) % 360.0 - 180.0
        dlon_c = (lon[2] - lon[0] + 540.0) % 360.0 - 180.0
        jac = np.empty((rr.size, 2, 2))
        jac[:, 0, 0] = dlon_r * m_per_deg_lon / step
        jac[:, 0, 1] = dlon_c * m_per_deg_lon / step
        jac[:, 1, 0] = (lat[1] - lat[0]) * m_per_deg_lat / step
        jac[:, 1, 1] = (lat[2] - lat[0]) * m_per_deg_lat / step
        if not np.isfinite(jac).all() or (np.abs(np.linalg.det(jac)) == 0).any():
            raise ValueError("degenerate ground scale")
        return jac.reshape(n_r, n_c, 2, 2)

    def _design(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        r = rows / max(self.height, 1)
        c = cols / max(self.width, 1)
        return np.stack([np.ones_like(r), r, c, r * r, r * c, c * c], axis=1)

    def components(
        self, rows: np.ndarray, cols: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The Jacobian's entries (J00, J01, J10, J11) at pixel positions, each (n,)."""
        rows = np.asarray(rows, float).ravel()
        cols = np.asarray(cols, float).ravel()
        if self.constant:
            j = self._grid[0, 0]
            ones = np.ones(rows.size)
            return ones * j[0, 0], ones * j[0, 1], ones * j[1, 0], ones * j[1, 1]
        if self._poly is not None:
            r = (rows / max(self.height, 1))[:, None]
            c = (cols / max(self.width, 1))[:, None]
            k = self._poly
            # c0 + r (c1 + r c3 + c c4) + c (c2 + c c5), for the four entries at once.
            out = k[0] + r * (k[1] + r * k[3] + c * k[4]) + c * (k[2] + c * k[5])
            return out[:, 0], out[:, 1], out[:, 2], out[:, 3]
        fr = np.interp(rows, self._gr, np.arange(self._gr.size, dtype=float))
        fc = np.interp(cols, self._gc, np.arange(self._gc.size, dtype=float))
        i0 = np.clip(np.floor(fr).astype(int), 0, self._gr.size - 2)
        j0 = np.clip(np.floor(fc).astype(int), 0, self._gc.size - 2)
        tr, tc = fr - i0, fc - j0
        g = self._grid
        out = []
        for a, b in ((0, 0), (0, 1), (1, 0), (1, 1)):
            out.append(
                g[i0, j0, a, b] * (1 - tr) * (1 - tc)
                + g[i0 + 1, j0, a, b] * tr * (1 - tc)
                + g[i0, j0 + 1, a, b] * (1 - tr) * tc
                + g[i0 + 1, j0 + 1, a, b] * tr * tc
            )
        return out[0], out[1], out[2], out[3]

    def jacobian(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The Jacobians at pixel positions ``(rows, cols)``, shape ``(n, 2, 2)``."""
        j00, j01, j10, j11 = self.components(rows, cols)
        return np.stack([np.stack([j00, j01], -1), np.stack([j10, j11], -1)], -2)

    def segment_lengths(self, rc: np.ndarray) -> np.ndarray:
        """Ground length in metres of each segment of a path of ``(row, col)`` points."""
        rc = np.asarray(rc, float)
        if len(rc) < 2:
            return np.zeros(0)
        block = 1 << 16
        if len(rc) > block + 1:  # bounded temporaries; element-wise, so the same result
            return np.concatenate(
                [self.segment_lengths(rc[i : i + block + 1]) for i in range(0, len(rc) - 1, block)]
            )
        d = np.diff(rc, axis=0)
        if self.constant:
            jac = self._grid[0, 0]
            east = d[:, 0] * jac[0, 0] + d[:, 1] * jac[0, 1]
            north = d[:, 0] * jac[1, 0] + d[:, 1] * jac[1, 1]
        else:
            mid = (rc[:-1] + rc[1:]) / 2.0
            j00, j01, j10, j11 = self.components(mid[:, 0], mid[:, 1])
            east = d[:, 0] * j00 + d[:, 1] * j01
            north = d[:, 0] * j10 + d[:, 1] * j11
        return np.hypot(east, north)

    def length(self, rc: np.ndarray) -> float:
        """Ground length in metres of a path of ``(row, col)`` points."""
        return float(self.segment_lengths(rc).sum())

    def to_metres(self, rc: np.ndarray, at: np.ndarray) -> np.ndarray:
        """Points ``(row, col)`` in a local metric frame (east, north) around ``at``."""
        jac = self.jacobian(np.array([at[0]]), np.array([at[1]]))[0]
        return (np.asarray(rc, float) - at) @ jac.T

    def row_area_units(self) -> np.ndarray:
        """Ground area of one pixel for every row (at the central column), in cm^2."""
        rows = np.arange(self.height, dtype=float) + 0.5
        cols = np.full(self.height, self.width / 2.0)
        j00, j01, j10, j11 = self.components(rows, cols)
        return np.rint(np.abs(j00 * j11 - j01 * j10) / _AREA_UNIT_M2)

    def area_ratio(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """sqrt(pixel area here / pixel area at the centre): a local length factor."""
        if self.constant:
            return np.ones(np.asarray(rows).size)
        j00, j01, j10, j11 = self.components(rows, cols)
        return np.sqrt(np.abs(j00 * j11 - j01 * j10) / abs(np.linalg.det(self.center)))


# --------------------------------------------------------------------------------------
# Sources: where road values come from
# --------------------------------------------------------------------------------------


class RoadSource(Protocol):
    """A single-band road raster read window by window as float32 in [0, 1].

    Masks read as 0.0 / 1.0; nodata reads as NaN.
    """

    height: int
    width: int
    transform: Affine
    crs: Any
    kind: RasterKind
    default_threshold: float | None

    def read(self, row0: int, row1: int, col0: int, col1: int) -> np.ndarray: ...


class ArraySource:
    """An in-memory mask or probability array as a :class:`RoadSource`.

    Args:
        values: 2-D array. bool or integer arrays are masks (non-zero = road);
            float arrays are probabilities in [0, 1] (NaN = nodata).
        transform: affine transform of the grid (default: pixel space).
        crs: anything rasterio's ``CRS.from_user_input`` accepts, or None.
        nodata: value that marks missing pixels.
        kind: force "mask" or "probability".

    Raises:
        UnsupportedRasterError: not 2-D, or probabilities outside [0, 1].
    """

    def __init__(
        self,
        values: np.ndarray,
        transform: Affine | None = None,
        crs: Any = None,
        *,
        nodata: float | None = None,
        kind: RasterKind | None = None,
    ) -> None:
        if values.ndim != 2:
            raise UnsupportedRasterError(
                f"a road mask is a 2-D array; got an array of shape {values.shape}"
            )
        self.values = values
        self.height, self.width = values.shape
        self.transform = transform or Affine.identity()
        self.crs = _as_crs(crs)
        self.nodata = nodata
        self.kind: RasterKind = kind or (
            "probability" if np.issubdtype(values.dtype, np.floating) else "mask"
        )
        self.default_threshold: float | None = None

    def read(self, row0: int, row1: int, col0: int, col1: int) -> np.ndarray:
        block = self.values[row0:row1, col0:col1]
        invalid = np.zeros(block.shape, bool)
        if self.nodata is not None:
            invalid |= block == self.nodata
        if self.kind == "mask":
            out = (block != 0).astype(np.float32)
        else:
            out = block.astype(np.float32)
            invalid |= np.isnan(out)
            bad = ~invalid & ((out < 0) | (out > 1))
            if bad.any():
                raise UnsupportedRasterError(
                    f"probabilities must lie in [0, 1]; found {float(out[bad][0]):g}"
                )
        out[invalid] = np.nan
        return out


def _as_crs(crs: Any) -> Any:
    if crs is None:
        return None
    from rasterio.crs import CRS

    return crs if isinstance(crs, CRS) else CRS.from_user_input(crs)


@dataclass(frozen=True)
class _SourceSpec:
    """A road raster as a Dask worker opens it (see :meth:`RasterSource.spec`)."""

    path: str
    name: str
    kind: RasterKind
    scale: float
    nodata: float | None

    @contextlib.contextmanager
    def open(self) -> Iterator[RasterSource]:
        from roadseg.raster_io import gdal_env, open_raster

        with gdal_env(), open_raster(self.path) as ds:
            yield RasterSource(ds, self.name, known=self)


class RasterSource:
    """A rasterio dataset as a :class:`RoadSource`, its kind found from its contents.

    How the kind is decided, in order:

    * ``ROADSEG_VALUE`` tag (``roadseg predict`` writes it): probability or mask.
    * float rasters are probabilities (values outside [0, 1] are refused).
    * integer rasters whose valid pixels hold at most two values, one of them 0,
      are masks (0/1, 0/255, ...): non-zero is road.
    * other uint8 rasters are probabilities scaled by the band's scale factor when
      it is set, else by 1/255.

    Raises:
        UnsupportedRasterError: more than one band, or values that are neither a
            mask nor a probability.
    """

    def __init__(
        self, dataset: Any, name: str | None = None, *, known: _SourceSpec | None = None
    ) -> None:
        self.ds = dataset
        self.name = name or Path(str(dataset.name)).name
        if dataset.count != 1:
            raise UnsupportedRasterError(
                f"{self.name} has {dataset.count} bands; vectorize needs a single-band road "
                "mask or road probability raster (the output of roadseg predict, or one band "
                "cut with gdal_translate -b 1)"
            )
        self.height = dataset.height
        self.width = dataset.width
        self.transform = dataset.transform
        self.crs = dataset.crs if dataset.crs else None
        self.dtype = np.dtype(dataset.dtypes[0])
        if self.dtype.kind not in "uif" or self.dtype.itemsize > 8:
            raise UnsupportedRasterError(
                f"{self.name} has pixel type {self.dtype}; a road mask or probability raster "
                "is an integer or float raster"
            )
        self.nodata = dataset.nodata
        tags = dataset.tags()
        self.tags = {k: v for k, v in tags.items() if k.startswith("ROADSEG_")}
        self.default_threshold = None
        with contextlib.suppress(KeyError, ValueError):
            self.default_threshold = float(tags["ROADSEG_THRESHOLD"])
        self.scale = 1.0
        value = tags.get("ROADSEG_VALUE", "")
        if known is not None:  # decided already (on the client, for a Dask worker)
            self.kind: RasterKind = known.kind
            self.scale, self.nodata = known.scale, known.nodata
        elif value.startswith("probability"):
            self.kind = "probability"
            if self.dtype.kind in "ui":
                band_scale = float(dataset.scales[0] or 1.0)
                self.scale = band_scale if band_scale != 1.0 else 1.0 / _PREDICT_SCALE
        elif value.startswith("1 = road"):
            self.kind = "mask"
        elif self.dtype.kind == "f":
            self.kind = "probability"
        else:
            self.kind = self._sniff()

    def spec(self) -> _SourceSpec:
        """How a Dask worker opens this raster again: its absolute path and the kind,
        scale and nodata decided here (so that no worker sniffs the file again)."""
        return _SourceSpec(
            os.path.abspath(str(self.ds.name)), self.name, self.kind, self.scale, self.nodata
        )

    def _read(self, window: Any) -> np.ndarray:
        """Band 1 in ``window``; a damaged block becomes a one-line error."""
        from rasterio.errors import RasterioError

        from roadseg.raster_io import corrupt

        try:
            return self.ds.read(1, window=window)
        except (RasterioError, OSError) as exc:
            raise corrupt(self.name, exc) from None

    def _sniff(self) -> RasterKind:
        """Mask or probability, from the distinct values of an integer raster."""
        seen: set[int] = set()
        for _, window in self.ds.block_windows(1):
            block = self._read(window)
            if self.nodata is not None:
                block = block[block != self.nodata]
            if self.dtype == np.uint8:
                counts = np.bincount(block.ravel(), minlength=256)
                seen.update(np.flatnonzero(counts).tolist())
            else:
                seen.update(np.unique(block).tolist()[:3])
            if len(seen) > 3:
                break
        if len(seen) <= 1 or (len(seen) == 2 and 0 in seen):
            return "mask"
        if self.dtype == np.uint8 and seen == {0, 1, 255} and self.nodata is None:
            # roadseg predict's mask convention (1 road, 0 not, 255 nodata) without
            # the nodata tag.
            self.nodata = 255
            return "mask"
        band_scale = float(self.ds.scales[0] or 1.0)
        if self.dtype == np.uint8 or band_scale != 1.0:
            self.scale = band_scale if band_scale != 1.0 else 1.0 / 255.0
            return "probability"
        raise UnsupportedRasterError(
            f"{self.name} holds integer values {sorted(seen)[:3]}...; that is neither a road "
            "mask (0 and one other value) nor a probability raster (uint8 or float in 0..1)"
        )

    def read(self, row0: int, row1: int, col0: int, col1: int) -> np.ndarray:
        from rasterio.windows import Window

        block = self._read(Window(col0, row0, col1 - col0, row1 - row0))
        invalid = np.zeros(block.shape, bool)
        if self.nodata is not None and not (
            isinstance(self.nodata, float) and math.isnan(self.nodata)
        ):
            invalid |= block == self.nodata
        if self.kind == "mask":
            out = (block != 0).astype(np.float32)
        elif self.dtype.kind == "f":
            out = block.astype(np.float32)
            invalid |= np.isnan(out)
            if self.nodata is None:
                invalid |= out == -1.0  # predict's float nodata
            bad = ~invalid & ((out < -1e-6) | (out > 1 + 1e-6))
            if bad.any():
                raise UnsupportedRasterError(
                    f"{self.name} holds {float(out[bad][0]):g}, outside 0..1; give a road "
                    "probability raster (0..1) or a mask"
                )
            np.clip(out, 0.0, 1.0, out=out)
        else:
            out = block.astype(np.float32) * np.float32(self.scale)
            if self.nodata is None and self.scale == 1.0 / _PREDICT_SCALE:
                invalid |= block == _PREDICT_NODATA
            np.clip(out, 0.0, 1.0, out=out)
        out[invalid] = np.nan
        return out


# --------------------------------------------------------------------------------------
# Thinning (Guo & Hall 1989), sparse
# --------------------------------------------------------------------------------------


def _guo_hall_luts() -> tuple[np.ndarray, np.ndarray]:
    """Deletion tables of Guo & Hall's two sub-iterations, as scikit-image builds them.

    The neighbour code's bits are E, NE, N, NW, W, SW, S, SE (1, 2, 4, ... 128).
    """

    def bits(n: int) -> list[bool]:
        return [bool(n >> i & 1) for i in range(8)]

    def g1(b: list[bool]) -> bool:
        return sum(1 for i in (0, 2, 4, 6) if not b[i] and (b[i + 1] or b[(i + 2) % 8])) == 1

    def g2(b: list[bool]) -> bool:
        n1 = sum(1 for k in (1, 3, 5, 7) if b[k] or b[k - 1])
        n2 = sum(1 for k in (1, 3, 5, 7) if b[k] or b[(k + 1) % 8])
        return min(n1, n2) in (2, 3)

    def g3(b: list[bool]) -> bool:
        return not ((b[1] or b[2] or not b[7]) and b[0])

    def g3p(b: list[bool]) -> bool:
        return not ((b[5] or b[6] or not b[3]) and b[4])

    lut1 = np.array([g1(bits(n)) and g2(bits(n)) and g3(bits(n)) for n in range(256)])
    lut2 = np.array([g1(bits(n)) and g2(bits(n)) and g3p(bits(n)) for n in range(256)])
    return lut1, lut2


_LUTS = _guo_hall_luts()
#: A pixel whose four edge neighbours are all set is never deleted; the sparse
#: thinning relies on it (only contour pixels are ever candidates).
assert not any(lut[n] for lut in _LUTS for n in range(256) if n & 0b01010101 == 0b01010101)


def _neighbour_code(img: np.ndarray) -> np.ndarray:
    """For each pixel, bit k set when its neighbour in direction k is set (uint8)."""
    kernel = np.array([[8, 4, 2], [16, 0, 1], [32, 64, 128]], dtype=np.uint8)
    return ndi.correlate(img, kernel, mode="constant")


def _thin_framed(img: np.ndarray, code: np.ndarray | None = None) -> int:
    """Thin ``img`` (uint8 0/1) in place, its one-pixel frame held fixed.

    Only pixels that can change are visited: at sub-iteration ``t`` a pixel can be
    deleted only if one of its 8 neighbours was deleted at ``t-1`` or ``t-2`` (the
    two sub-iterations alternate tables), apart from the contour pixels checked at
    the first two sub-iterations. Every pixel's neighbour code is kept up to date
    as its neighbours go, so a visit is one table lookup. The result is the same as
    running the two tables over the whole image until nothing changes.

    Returns:
        The number of sub-iterations run, the last two of which deleted nothing:
        the state after ``steps - 2`` sub-iterations is final.
    """
    h, w = img.shape
    flat = img.reshape(-1)
    offs8 = np.array([1, -w + 1, -w, -w - 1, -1, w - 1, w, w + 1], dtype=np.int64)
    offs4 = np.array([1, -w, -1, w], dtype=np.int64)
    # code[p] has bit k set when the neighbour at offs8[k] is road (updated in place).
    code = (_neighbour_code(img) if code is None else code).reshape(-1)
    movable = np.zeros((h, w), bool)
    movable[1:-1, 1:-1] = True
    movable = movable.reshape(-1) & (flat == 1)  # road pixels inside the frame
    stamp = np.zeros(flat.size, np.int32)  # for de-duplicating candidates without sorting

    fg = np.flatnonzero(movable)
    contour = np.zeros(fg.size, bool)
    for o in offs4:
        contour |= flat[fg + o] == 0
    cand = fg[contour]
    del contour, fg
    prev = np.zeros(0, np.int64)
    steps = 0
    quiet = 0
    while quiet < 2:
        lut = _LUTS[steps % 2]
        kill = lut[code[cand]]
        dele = cand[kill]
        steps += 1
        quiet = 0 if dele.size else quiet + 1
        flat[dele] = 0
        movable[dele] = False
        for k, o in enumerate(offs8):
            # The deleted pixel is neighbour (k + 4) % 8 of the pixel at offset o.
            code[dele + o] -= np.uint8(1 << ((k + 4) % 8))
        if steps == 1:
            # Second sub-iteration: every contour pixel of the current state.
            nb = (dele[:, None] + offs4).reshape(-1)
            nb = nb[movable[nb]]
            cand = _distinct(np.concatenate([cand[~kill], nb]), stamp)
        else:
            touched = np.concatenate([dele, prev])
            if touched.size:
                nb = (touched[:, None] + offs8).reshape(-1)
                cand = _distinct(nb[movable[nb]], stamp)
            else:
                cand = np.zeros(0, np.int64)
        prev = dele
    return steps


def _distinct(idx: np.ndarray, stamp: np.ndarray) -> np.ndarray:
    """The distinct values of ``idx`` (in no particular order), in linear time."""
    if idx.size == 0:
        return idx
    order = np.arange(1, idx.size + 1, dtype=np.int32)
    stamp[idx] = order  # the last write of each index wins
    keep = stamp[idx] == order
    stamp[idx] = 0
    return idx[keep]


def thin(mask: np.ndarray) -> np.ndarray:
    """One-pixel skeleton of a 2-D boolean mask (same result as skimage's ``thin``).

    Returns:
        A boolean array of the mask's shape.
    """
    img = np.zeros((mask.shape[0] + 2, mask.shape[1] + 2), np.uint8)
    img[1:-1, 1:-1] = mask != 0
    _thin_framed(img)
    return img[1:-1, 1:-1].astype(bool)


# --------------------------------------------------------------------------------------
# Chunk grid and cleaning (exact, connected-component based)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Chunk:
    i: int
    j: int
    r0: int
    r1: int
    c0: int
    c1: int


def _chunks(height: int, width: int, size: int) -> list[_Chunk]:
    out = []
    for i, r0 in enumerate(range(0, height, size)):
        for j, c0 in enumerate(range(0, width, size)):
            out.append(_Chunk(i, j, r0, min(r0 + size, height), c0, min(c0 + size, width)))
    return out


_EIGHT = np.ones((3, 3), bool)
_FOUR = ndi.generate_binary_structure(2, 1)


@dataclass
class _Thresholds:
    low: float
    high: float


def _foreground(values: np.ndarray, th: _Thresholds) -> tuple[np.ndarray, np.ndarray | None]:
    with np.errstate(invalid="ignore"):
        fg = values >= th.low
        strong = values >= th.high if th.high > th.low else None
    return fg, strong


def _offset(labels: np.ndarray, offset: int) -> np.ndarray:
    """A copy of a strip of local labels as global ids (0 stays 0)."""
    out = labels.astype(np.int64)
    out[out > 0] += offset
    return out


def _pairs(a: np.ndarray, b: np.ndarray, offset: int) -> np.ndarray:
    """Label pairs (a[k], b[k + offset]) where both are non-zero, shape (n, 2)."""
    n = a.size
    if offset >= 0:
        x, y = a[: n - offset], b[offset:]
    else:
        x, y = a[-offset:], b[: n + offset]
    keep = (x > 0) & (y > 0)
    return np.stack([x[keep], y[keep]], axis=1)


@dataclass(frozen=True)
class _CleanParams:
    """What every chunk step of the cleaning needs (picklable: sent to Dask workers)."""

    th: _Thresholds
    min_area: float  # integer cm^2
    hole_area: float  # integer cm^2
    row_area: np.ndarray  # ground area of a pixel in each raster row, cm^2
    height: int
    width: int

    @property
    def fill_holes(self) -> bool:
        return self.hole_area > 0


@dataclass
class _ChunkSummary:
    """Pass 1 of the cleaning for one chunk, in the chunk's own label numbers.

    Small next to the chunk: per-label statistics and the labels along the four
    borders. :meth:`_Cleaner.merge` numbers the labels of all chunks in chunk order.
    """

    nf: int
    nb: int
    area: np.ndarray  # (nf,) road label areas, cm^2
    strength: np.ndarray | None  # (nf,) holds a strong pixel (hysteresis)
    box: np.ndarray  # (nf, 4) bounding boxes, global pixel indices
    strips: dict[str, np.ndarray]  # border labels: ft fb fl fr (road), bt bb bl br (background)
    barea: np.ndarray | None = None  # (nb,) background label areas, cm^2
    edge: np.ndarray | None = None  # (nb,) background label touches the raster's edge
    holes: np.ndarray | None = None  # (k, 2) (background label, road label) of small holes


def _label_chunk(
    source: RoadSource, chunk: _Chunk, th: _Thresholds, fill_holes: bool
) -> tuple[np.ndarray, int, np.ndarray | None, int, Any, Any]:
    """Read, threshold and label one chunk: road 8-connected, background 4-connected."""
    values = source.read(chunk.r0, chunk.r1, chunk.c0, chunk.c1)
    fg, strong = _foreground(values, th)
    del values
    fl, nf = ndi.label(fg, structure=_EIGHT)
    bl, nb = (None, 0)
    if fill_holes:
        bl, nb = ndi.label(~fg, structure=_FOUR)
    return fl, nf, bl, nb, fg, strong


def _road_stats(
    fl: np.ndarray,
    nf: int,
    fg: np.ndarray,
    strong: np.ndarray | None,
    chunk: _Chunk,
    p: _CleanParams,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Area (integer cm^2, as float64: exact sums), strength and bounding box
    (row0, row1, col0, col1; global, inclusive) of every road label, from the
    road pixels only.

    Only labels smaller than ``min_area`` here need a box (larger ones are kept
    whatever their shape); the others get the chunk's box.
    """
    rr, cc = np.nonzero(fg)
    lab = fl[rr, cc]
    area = np.bincount(lab, p.row_area[chunk.r0 + rr], minlength=nf + 1)[1:]
    strength = None
    if strong is not None:
        strength = np.bincount(lab[strong[rr, cc]], minlength=nf + 1)[1:] > 0
    box = np.empty((nf, 4), np.int64)
    box[:] = (chunk.r0, chunk.r1 - 1, chunk.c0, chunk.c1 - 1)
    small = np.concatenate([[False], area < p.min_area])
    if small.any():
        pick = small[lab]
        lab_s, rr_s, cc_s = lab[pick] - 1, rr[pick] + chunk.r0, cc[pick] + chunk.c0
        sel = np.flatnonzero(small[1:])
        box[sel] = (np.iinfo(np.int64).max, -1, np.iinfo(np.int64).max, -1)
        np.minimum.at(box[:, 0], lab_s, rr_s)
        np.maximum.at(box[:, 1], lab_s, rr_s)
        np.minimum.at(box[:, 2], lab_s, cc_s)
        np.maximum.at(box[:, 3], lab_s, cc_s)
    return area, strength, box


def _background_areas(bl: np.ndarray, nb: int, chunk: _Chunk, p: _CleanParams) -> np.ndarray:
    """Area of every background label (integer cm^2, as float64: exact sums).

    Counted by runs along rows: large labels make per-pixel counting slow
    (every increment hits the same counter), and runs are few.
    """
    h, w = bl.shape
    change = np.empty((h, w), bool)
    change[:, 0] = True
    np.not_equal(bl[:, 1:], bl[:, :-1], out=change[:, 1:])
    starts = np.flatnonzero(change)
    lengths = np.diff(np.append(starts, h * w))
    labels = bl.reshape(-1)[starts]
    rows = p.row_area[chunk.r0 + starts // w]
    return np.bincount(labels, lengths * rows, minlength=nb + 1)[1:]


def _summarise_chunk(
    fl: np.ndarray,
    nf: int,
    bl: np.ndarray | None,
    nb: int,
    fg: np.ndarray,
    strong: np.ndarray | None,
    chunk: _Chunk,
    p: _CleanParams,
) -> _ChunkSummary:
    """Pass 1 of the cleaning on one labelled chunk (see :class:`_Cleaner`)."""
    area, strength, box = _road_stats(fl, nf, fg, strong, chunk, p)
    strips = {"ft": fl[0], "fb": fl[-1], "fl": fl[:, 0], "fr": fl[:, -1]}
    out = _ChunkSummary(nf, nb, area, strength, box, strips)
    if bl is not None:
        barea = _background_areas(bl, nb, chunk, p)
        edge = np.zeros(nb + 1, bool)
        if chunk.r0 == 0:
            edge[bl[0]] = True
        if chunk.r1 == p.height:
            edge[bl[-1]] = True
        if chunk.c0 == 0:
            edge[bl[:, 0]] = True
        if chunk.c1 == p.width:
            edge[bl[:, -1]] = True
        out.barea, out.edge = barea, edge[1:]
        # Road labels that touch each small background label (4-adjacency),
        # from the (few) pixels of small background labels.
        small = np.concatenate([[False], (barea < p.hole_area) & ~edge[1:]])
        if small.any():
            rr, cc = np.nonzero(small[bl])
            found = []
            h, w = bl.shape
            for dr, dc in ((0, 1), (0, -1), (1, 0), (-1, 0)):
                r2, c2 = rr + dr, cc + dc
                ok = (r2 >= 0) & (r2 < h) & (c2 >= 0) & (c2 < w)
                a_lab = bl[rr[ok], cc[ok]]
                b_lab = fl[r2[ok], c2[ok]]
                m = b_lab > 0
                found.append(np.stack([a_lab[m], b_lab[m]], axis=1).astype(np.int64))
            out.holes = np.unique(np.concatenate(found), axis=0)
        strips.update(bt=bl[0], bb=bl[-1], bl=bl[:, 0], br=bl[:, -1])
    # Copies, so that the summary does not keep the chunk's label images alive.
    out.strips = {k: v.copy() for k, v in strips.items()}
    return out


def _apply_decisions(
    fl: np.ndarray, bl: np.ndarray | None, keep_fg: np.ndarray, keep_bg: np.ndarray | None
) -> np.ndarray:
    """The cleaned mask of one chunk from its labels and its labels' decisions."""
    out = keep_fg[fl]
    if bl is not None and keep_bg is not None:
        out |= keep_bg[bl]
    return out


class _Cleaner:
    """Decides which pixels survive cleaning, exactly, chunk by chunk.

    Pass 1 (:meth:`analyse`) labels the road pixels (8-connected) and the background
    (4-connected) of every chunk, records each label's area (in integer cm^2, so sums
    do not depend on order), whether it holds a strong pixel (hysteresis), whether a
    background label touches the raster's edge, which road labels border each
    background label, and the labels along chunk borders (:func:`_summarise_chunk`).
    :meth:`merge` numbers the labels of all chunks in chunk order; a union-find over
    the border pairs gives the components of the whole raster; holes smaller than
    ``hole_area_m2`` join the road components around them; components smaller than
    ``min_area_m2`` or without a strong pixel are dropped.

    Pass 2 (:meth:`apply`) labels each chunk again (the same input gives the same
    labels) and looks the decisions up (:meth:`decisions`).
    """

    def __init__(
        self,
        source: RoadSource,
        chunks: list[_Chunk],
        th: _Thresholds,
        min_area_units: float,
        hole_area_units: float,
        row_area: np.ndarray,
        keep_extent_m: float,
        metric: np.ndarray,
    ) -> None:
        self.source = source
        self.chunks = chunks
        self.th = th
        self.min_area = min_area_units
        self.keep_extent = keep_extent_m
        self.metric = metric
        self.hole_area = hole_area_units
        self.fill_holes = hole_area_units > 0
        self.row_area = row_area
        self.params = _CleanParams(
            th, min_area_units, hole_area_units, row_area, source.height, source.width
        )
        self.counts: dict[tuple[int, int], tuple[int, int]] = {}
        self.fg_offset: dict[tuple[int, int], int] = {}
        self.bg_offset: dict[tuple[int, int], int] = {}
        self.keep_fg = np.zeros(1, bool)
        self.keep_bg = np.zeros(1, bool)
        self._cache: tuple[_Chunk, np.ndarray, np.ndarray | None, np.ndarray] | None = None

    def _label(self, chunk: _Chunk) -> tuple[np.ndarray, int, np.ndarray | None, int, Any, Any]:
        return _label_chunk(self.source, chunk, self.th, self.fill_holes)

    def _summaries_here(self) -> Iterator[tuple[int, _ChunkSummary]]:
        for k, chunk in enumerate(self.chunks):
            fl, nf, bl, nb, fg, strong = self._label(chunk)
            summary = _summarise_chunk(fl, nf, bl, nb, fg, strong, chunk, self.params)
            if len(self.chunks) == 1:
                self._cache = (chunk, fl, bl, np.zeros(0))
            yield k, summary

    def analyse(
        self,
        tick: Callable[[], None],
        summaries: Iterator[tuple[int, _ChunkSummary]] | None = None,
    ) -> None:
        """Pass 1 over every chunk, then the decisions.

        Args:
            tick: called as each chunk's summary arrives.
            summaries: ``(chunk index, summary)`` pairs in any order (from Dask);
                None: label the chunks here, one after the other.
        """
        got: list[_ChunkSummary | None] = [None] * len(self.chunks)
        for k, summary in summaries if summaries is not None else self._summaries_here():
            got[k] = summary
            tick()
        self.merge([s for s in got if s is not None])

    def merge(self, summaries: list[_ChunkSummary]) -> None:
        """Number the labels of all chunks (in chunk order), join them across chunk
        borders and decide which survive."""
        if len(summaries) != len(self.chunks):
            raise RoadsegError(
                f"cleaning got {len(summaries)} chunk summaries for {len(self.chunks)} chunks"
            )
        n_fg = 0
        n_bg = 0
        fg_area: list[np.ndarray] = []
        fg_strong: list[np.ndarray] = []
        fg_box: list[np.ndarray] = []
        bg_area: list[np.ndarray] = []
        bg_edge: list[np.ndarray] = []
        hole_pairs: list[np.ndarray] = []
        strips: dict[tuple[int, int], dict[str, np.ndarray]] = {}
        for chunk, sm in zip(self.chunks, summaries, strict=True):
            key = (chunk.i, chunk.j)
            self.fg_offset[key] = n_fg
            self.bg_offset[key] = n_bg
            self.counts[key] = (sm.nf, sm.nb)
            fg_area.append(sm.area)
            fg_box.append(sm.box)
            if sm.strength is not None:
                fg_strong.append(sm.strength)
            s = {}
            for k, v in sm.strips.items():
                s[k] = _offset(v, n_fg if k[0] == "f" else n_bg)
            if sm.barea is not None and sm.edge is not None:
                bg_area.append(sm.barea)
                bg_edge.append(sm.edge)
                if sm.holes is not None:
                    hole_pairs.append(sm.holes + np.array([n_bg, n_fg], np.int64))
            strips[key] = s
            n_fg += sm.nf
            n_bg += sm.nb

        fg_pairs, bg_pairs, cross_holes = self._border_pairs(strips)
        hole_pairs.extend(cross_holes)
        self._decide(
            n_fg,
            n_bg,
            np.concatenate(fg_area) if fg_area else np.zeros(0),
            np.concatenate(fg_strong) if fg_strong else None,
            np.concatenate(fg_box) if fg_box else np.zeros((0, 4), np.int64),
            np.concatenate(bg_area) if bg_area else np.zeros(0),
            np.concatenate(bg_edge) if bg_edge else np.zeros(0, bool),
            fg_pairs,
            bg_pairs,
            np.concatenate(hole_pairs) if hole_pairs else np.zeros((0, 2), np.int64),
        )

    def _border_pairs(
        self, strips: dict[tuple[int, int], dict[str, np.ndarray]]
    ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        rows = sorted({c.i for c in self.chunks})
        cols = sorted({c.j for c in self.chunks})
        fg_pairs: list[np.ndarray] = [np.zeros((0, 2), np.int64)]
        bg_pairs: list[np.ndarray] = [np.zeros((0, 2), np.int64)]
        holes: list[np.ndarray] = []

        def joined(keys: list[tuple[int, int]], name: str) -> np.ndarray:
            return np.concatenate([strips[k][name] for k in keys]).astype(np.int64)

        # Horizontal borders between chunk rows i and i + 1, over the full width:
        # 8-connectivity for road (offsets -1, 0, 1, corners included), 4 for background.
        for side_a, side_b, lines, other in (
            (("fb", "bb"), ("ft", "bt"), rows, cols),
            (("fr", "br"), ("fl", "bl"), cols, rows),
        ):
            for a, b in zip(lines[:-1], lines[1:], strict=True):
                if side_a[0] == "fb":
                    ka = [(a, j) for j in other]
                    kb = [(b, j) for j in other]
                else:
                    ka = [(i, a) for i in other]
                    kb = [(i, b) for i in other]
                fa, fb = joined(ka, side_a[0]), joined(kb, side_b[0])
                for off in (-1, 0, 1):
                    fg_pairs.append(_pairs(fa, fb, off))
                if self.fill_holes:
                    ba, bb = joined(ka, side_a[1]), joined(kb, side_b[1])
                    bg_pairs.append(_pairs(ba, bb, 0))
                    holes.append(_pairs(ba, fb, 0))
                    holes.append(_pairs(bb, fa, 0))
        return np.concatenate(fg_pairs), np.concatenate(bg_pairs), holes

    def _decide(
        self,
        n_fg: int,
        n_bg: int,
        fg_area: np.ndarray,
        fg_strong: np.ndarray | None,
        fg_box: np.ndarray,
        bg_area: np.ndarray,
        bg_edge: np.ndarray,
        fg_pairs: np.ndarray,
        bg_pairs: np.ndarray,
        hole_pairs: np.ndarray,
    ) -> None:
        n = n_fg + n_bg
        if n == 0:
            self.keep_fg = np.zeros(1, bool)
            self.keep_bg = np.zeros(1, bool)
            return
        # Stage 1: components of road and of background over the whole raster.
        links = [fg_pairs - 1]
        if n_bg:
            links.append(bg_pairs - 1 + n_fg)
        comp = _components(n, np.concatenate(links))
        area_c = np.bincount(comp, np.concatenate([fg_area, bg_area]), minlength=comp.max() + 1)
        edge_c = np.zeros(comp.max() + 1, bool)
        if n_bg:
            np.logical_or.at(edge_c, comp[n_fg:], bg_edge)
        is_bg = np.zeros(n, bool)
        is_bg[n_fg:] = True
        hole = is_bg & (area_c[comp] < self.hole_area) & ~edge_c[comp]
        # Stage 2: small holes join the road around them; then area and strength.
        pairs = []
        if hole_pairs.size:
            hp = hole_pairs.astype(np.int64)
            bg_node = hp[:, 0] - 1 + n_fg
            fg_node = hp[:, 1] - 1
            ok = hole[bg_node]
            pairs.append(np.stack([comp[bg_node[ok]], comp[fg_node[ok]]], axis=1))
        ncomp = int(comp.max()) + 1
        merged = _components(ncomp, np.concatenate(pairs) if pairs else np.zeros((0, 2), int))
        final = merged[comp]
        use = np.ones(n, bool)
        use[n_fg:] = hole[n_fg:]
        area_f = np.bincount(
            final[use], np.concatenate([fg_area, bg_area])[use], minlength=final.max() + 1
        )
        strong_f = np.ones(final.max() + 1, bool)
        if fg_strong is not None:
            strong_f = np.zeros(final.max() + 1, bool)
            np.logical_or.at(strong_f, final[:n_fg], fg_strong)
        # Small blobs go unless they are long (a thin road piece between two gaps).
        nf_ = final.max() + 1
        lo_r = np.full(nf_, np.iinfo(np.int64).max)
        hi_r = np.full(nf_, -1)
        lo_c = np.full(nf_, np.iinfo(np.int64).max)
        hi_c = np.full(nf_, -1)
        if n_fg:
            f = final[:n_fg]
            np.minimum.at(lo_r, f, fg_box[:, 0])
            np.maximum.at(hi_r, f, fg_box[:, 1])
            np.minimum.at(lo_c, f, fg_box[:, 2])
            np.maximum.at(hi_c, f, fg_box[:, 3])
        span = np.stack([hi_r - lo_r + 1, hi_c - lo_c + 1], axis=1).astype(float)
        span[hi_r < 0] = 0.0
        extent = np.hypot(*(span @ self.metric.T).T)
        keep = ((area_f >= self.min_area) | (extent >= self.keep_extent)) & strong_f
        self.keep_fg = np.concatenate([[False], keep[final[:n_fg]]])
        self.keep_bg = np.concatenate([[False], hole[n_fg:] & keep[final[n_fg:]]])

    def decisions(self, chunk: _Chunk) -> tuple[np.ndarray, np.ndarray | None]:
        """Keep-or-drop of each of one chunk's local road and background labels
        (index 0, no label, is dropped)."""
        key = (chunk.i, chunk.j)
        nf, nb = self.counts[key]
        off, boff = self.fg_offset[key], self.bg_offset[key]
        keep_fg = np.concatenate([[False], self.keep_fg[off + 1 : off + nf + 1]])
        keep_bg = None
        if self.fill_holes:
            keep_bg = np.concatenate([[False], self.keep_bg[boff + 1 : boff + nb + 1]])
        return keep_fg, keep_bg

    def apply(self, chunk: _Chunk) -> np.ndarray:
        """The cleaned mask of one chunk (bool)."""
        if self._cache is not None and self._cache[0] == chunk:
            _, fl, bl, _ = self._cache
            self._cache = None
        else:
            fl, _, bl, _, _, _ = self._label(chunk)
        return _apply_decisions(fl, bl, *self.decisions(chunk))


def _components(n: int, pairs: np.ndarray) -> np.ndarray:
    """Connected-component label of each of ``n`` nodes given undirected pairs."""
    if n == 0:
        return np.zeros(0, np.int64)
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    graph = sparse.coo_matrix(
        (np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n)
    ).tocsr()
    _, labels = csgraph.connected_components(graph, directed=False)
    return labels.astype(np.int64)


class _MaskStore:
    """The cleaned mask of the whole raster: in memory for one chunk, else a
    1-bit-per-pixel temporary file read and written with plain file I/O (so it
    costs no resident memory)."""

    def __init__(self, height: int, width: int, single: bool, folder: Path | None) -> None:
        self.height, self.width = height, width
        self.array: np.ndarray | None = np.zeros((height, width), bool) if single else None
        self.rowbytes = (width + 7) // 8
        self._tmp: Any = None
        self.fd = -1
        if not single:
            self._tmp = tempfile.TemporaryDirectory(prefix=".roadseg-", dir=folder)
            path = os.path.join(self._tmp.name, "clean.bits")
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0))
            os.ftruncate(self.fd, self.rowbytes * height)

    def write(self, r0: int, c0: int, block: np.ndarray) -> None:
        if self.array is not None:
            self.array[r0 : r0 + block.shape[0], c0 : c0 + block.shape[1]] = block
            return
        packed = np.packbits(block, axis=1)  # c0 is a multiple of 8
        b0 = c0 // 8
        for k in range(block.shape[0]):
            os.pwrite(self.fd, packed[k].tobytes(), (r0 + k) * self.rowbytes + b0)

    def read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        if self.array is not None:
            return self.array[r0:r1, c0:c1].copy()
        b0, b1 = c0 // 8, (c1 + 7) // 8
        buf = np.empty((r1 - r0, b1 - b0), np.uint8)
        for k in range(r1 - r0):
            buf[k] = np.frombuffer(
                os.pread(self.fd, b1 - b0, (r0 + k) * self.rowbytes + b0), np.uint8
            )
        bits = np.unpackbits(buf, axis=1)
        return bits[:, c0 - 8 * b0 : c1 - 8 * b0].astype(bool)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


class _MaskReader(Protocol):
    """Where the thinning reads the cleaned mask: :class:`_MaskStore` or :class:`_ChunkFiles`."""

    @property
    def height(self) -> int: ...

    @property
    def width(self) -> int: ...

    def read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray: ...


@dataclass(frozen=True)
class _ChunkFiles:
    """The cleaned mask as one 1-bit file per chunk, in a folder every Dask worker sees.

    Used instead of :class:`_MaskStore` on Dask: each cleaning task writes its own
    chunk's file (whole, through a rename, so a retried or duplicated task never
    leaves a torn file, and no two processes write to one file, which a network
    file system might not keep apart); a thinning task reads the chunks its window
    overlaps. Picklable: a folder name and the grid.
    """

    folder: str
    height: int
    width: int
    size: int

    def path(self, i: int, j: int) -> str:
        return os.path.join(self.folder, f"clean_{i}_{j}.bits")

    def write(self, chunk: _Chunk, block: np.ndarray) -> None:
        packed = np.packbits(block, axis=1)
        final = self.path(chunk.i, chunk.j)
        tmp = f"{final}.{os.getpid()}.{time.monotonic_ns()}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(packed.tobytes())
        os.replace(tmp, final)

    def read(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        size = self.size
        out = np.zeros((r1 - r0, c1 - c0), bool)
        for i in range(r0 // size, (r1 - 1) // size + 1):
            cr0, cr1 = i * size, min(i * size + size, self.height)
            a0, a1 = max(r0, cr0), min(r1, cr1)
            for j in range(c0 // size, (c1 - 1) // size + 1):
                cc0, cc1 = j * size, min(j * size + size, self.width)
                rowbytes = (cc1 - cc0 + 7) // 8
                with open(self.path(i, j), "rb") as fh:
                    fh.seek((a0 - cr0) * rowbytes)
                    data = fh.read((a1 - a0) * rowbytes)
                if len(data) != (a1 - a0) * rowbytes:
                    raise OSError(f"{self.path(i, j)} is shorter than a chunk of the mask")
                bits = np.unpackbits(np.frombuffer(data, np.uint8).reshape(a1 - a0, rowbytes), 1)
                b0, b1 = max(c0, cc0), min(c1, cc1)
                out[a0 - r0 : a1 - r0, b0 - c0 : b1 - c0] = bits[:, b0 - cc0 : b1 - cc0]
        return out


# --------------------------------------------------------------------------------------
# Skeleton in chunks with a halo
# --------------------------------------------------------------------------------------


@dataclass
class _Skeleton:
    """The skeleton of the whole raster as the graph structures of its chunks."""

    parts: list[_ChunkGraph]
    halo: int

    @property
    def pixels(self) -> int:
        return sum(p.pixels for p in self.parts)


class _HaloTooSmall(Exception):
    def __init__(self, needed: int) -> None:
        self.needed = needed


def _skeleton_window(
    store: _MaskReader,
    chunk: _Chunk,
    halo: int,
    scale: GroundScale,
    metric: np.ndarray,
    probs: RoadSource | None = None,
) -> tuple[_ChunkGraph, int]:
    """The graph structure of one chunk's core (:func:`_chunk_graph`: its skeleton
    pixels with their half-widths and, from ``probs``, probabilities) and the
    thinning steps the window needed.

    The window is the core plus ``halo`` pixels (clipped to the raster) and a
    one-pixel frame: beyond the raster's edge the frame repeats the edge pixels
    (roads that leave the raster are cut there, not rounded off); at a cut inside
    the raster the frame is road, which is never background for the widths and
    cannot matter to the thinning within the halo.
    """
    H, W = store.height, store.width
    wr0, wr1 = max(0, chunk.r0 - halo), min(H, chunk.r1 + halo)
    wc0, wc1 = max(0, chunk.c0 - halo), min(W, chunk.c1 + halo)
    block = store.read(wr0, wr1, wc0, wc1)
    img = np.pad(block, 1, mode="edge").astype(np.uint8)
    if wr0 > 0:
        img[0] = 1
    if wr1 < H:
        img[-1] = 1
    if wc0 > 0:
        img[:, 0] = 1
    if wc1 < W:
        img[:, -1] = 1
    code = _neighbour_code(img)
    # Background pixels next to road: the only candidates for the nearest background.
    edge_bg = (img == 0) & (code > 0)
    steps = _thin_framed(img, code)
    del code
    # Distances in pixels to the nearest cut of the window (inf where none).
    cut_top = chunk.r0 - wr0 if wr0 > 0 else math.inf
    cut_bottom = wr1 - chunk.r1 if wr1 < H else math.inf
    cut_left = chunk.c0 - wc0 if wc0 > 0 else math.inf
    cut_right = wc1 - chunk.c1 if wc1 < W else math.inf
    margin = min(cut_top, cut_bottom, cut_left, cut_right)
    if steps > margin:
        raise _HaloTooSmall(steps)
    core = img[1 + chunk.r0 - wr0 : 1 + chunk.r1 - wr0, 1 + chunk.c0 - wc0 : 1 + chunk.c1 - wc0]
    rr, cc = np.nonzero(core)
    rows = rr.astype(np.int64) + chunk.r0
    cols = cc.astype(np.int64) + chunk.c0
    half = np.zeros(rows.size)
    if rows.size:
        # Nearest background pixel (those next to road are enough) in the metric of
        # the raster's centre, then scaled to the local ground scale.
        br, bc = np.nonzero(edge_bg)
        if br.size == 0:
            raise _HaloTooSmall(2 * halo + 1)
        # Global pixel indices, so that the search does not depend on the window.
        br = br.astype(np.int64) + wr0 - 1
        bc = bc.astype(np.int64) + wc0 - 1
        tree = cKDTree(np.stack([br, bc], axis=1).astype(float) @ metric.T)
        _, idx = tree.query(np.stack([rows, cols], axis=1).astype(float) @ metric.T)
        # The distance is a function of the integer offset only, rounded to
        # micrometres, so equally near background pixels give the same value.
        off = np.stack([br[idx] - rows, bc[idx] - cols], axis=1).astype(float)
        dist = np.round(np.hypot(*(off @ metric.T).T), 6)
        if np.isfinite(margin):
            # Any pixel beyond a cut lies at least `margin` + 1 pixels away.
            sigma = float(np.linalg.svd(metric, compute_uv=False)[-1])
            if (dist >= margin * sigma).any():
                raise _HaloTooSmall(int(np.ceil(dist.max() / sigma)) + 2)
        # The road's edge lies half a pixel before the background pixel's centre;
        # on roads an even number of pixels wide the skeleton sits half a pixel off
        # the middle and sees the nearer edge. A quarter pixel makes the width
        # estimate unbiased over even and odd widths.
        pixel = math.sqrt(abs(np.linalg.det(metric)))
        half = np.maximum(dist - 0.25 * pixel, 0.0) * scale.area_ratio(rows, cols)
    prob = None
    if probs is not None:
        prob = np.zeros(0, np.float32)
        if rows.size:
            block = probs.read(chunk.r0, chunk.r1, chunk.c0, chunk.c1)
            prob = block[rows - chunk.r0, cols - chunk.c0].astype(np.float32)
    # The skeleton two pixels beyond the core (within the raster) is exact too: a
    # pixel d steps outside the core agrees with the whole raster's thinning for
    # h - d sub-iterations, and both are final after steps - 2 <= h - 2.
    er0, er1 = max(0, chunk.r0 - 2), min(H, chunk.r1 + 2)
    ec0, ec1 = max(0, chunk.c0 - 2), min(W, chunk.c1 + 2)
    ext = img[1 + er0 - wr0 : 1 + er1 - wr0, 1 + ec0 - wc0 : 1 + ec1 - wc0]
    return _chunk_graph(ext, er0, ec0, chunk, W, half, prob), steps


def _thin_chunk(
    chunk: _Chunk,
    store: _MaskReader,
    halo: int,
    scale: GroundScale,
    metric: np.ndarray,
    probs: RoadSource | _SourceSpec | None,
) -> tuple[_ChunkGraph, int] | int:
    """One thinning window (a task): its result, or the halo it needs when the given
    one is too small (returned, not raised, so that Dask does not retry it).

    ``probs``: where the probabilities of the skeleton pixels come from (a source,
    or on a worker the spec of the raster, opened here); None for a mask.
    """
    try:
        if isinstance(probs, _SourceSpec):
            with probs.open() as source:
                return _skeleton_window(store, chunk, halo, scale, metric, source)
        return _skeleton_window(store, chunk, halo, scale, metric, probs)
    except _HaloTooSmall as exc:
        return exc.needed


def _skeletonize_chunks(
    store: _MaskReader,
    chunks: list[_Chunk],
    halo: int,
    scale: GroundScale,
    tick: Callable[[], None],
    restart: Callable[[int], None],
    mapper: Mapper | None = None,
    probs: RoadSource | _SourceSpec | None = None,
) -> _Skeleton:
    """The skeleton of the whole cleaned mask, one chunk window at a time, as the
    graph structures of the chunks (:func:`_chunk_graph`; ``probs`` as for
    :func:`_thin_chunk`).

    Why the result equals the skeleton of the whole raster: the thinning is a
    cellular automaton whose state after ``t`` sub-iterations depends on the input
    within ``t`` pixels only. Let window ``i`` converge after ``T_i`` sub-iterations
    (its last two deleting nothing) and let every window's halo be ``h``. For
    ``t <= h`` the whole-raster thinning agrees with window ``i`` on its core. If
    ``h >= max_i T_i``, the whole-raster state therefore stops changing on every
    core at ``max_i T_i - 2``: it is converged, and equals the union of the cores.
    When a window needs more than its halo, the halo grows and the pass restarts.
    The nearest background pixel of a core pixel lies in the window when it is
    closer than the halo, so the widths are exact under the same test.

    ``mapper`` runs the windows (:func:`_map_here`: one after the other, here;
    :class:`_DaskMap`: as Dask tasks); the halo grows exactly as it does here.
    """
    mapper = mapper or _map_here
    metric = scale.center
    while True:
        parts: list[Any] = [None] * len(chunks)
        failed: dict[int, int] = {}
        with contextlib.closing(
            mapper(_thin_chunk, chunks, store, halo, scale, metric, probs)
        ) as done:
            for k, out in done:
                if isinstance(out, int):
                    failed[k] = out
                else:
                    parts[k] = out
                    tick()
                # The first window in chunk order that needs more decides the new
                # halo (as in one process, where the pass stops there), once every
                # window before it is known to have converged.
                if failed and all(p is not None for p in parts[: min(failed)]):
                    break
        if not failed:
            break
        halo = max(2 * halo, failed[min(failed)] + 16)
        restart(halo)
    return _Skeleton([p[0] for p in parts], halo)


# --------------------------------------------------------------------------------------
# Chunk steps as tasks: here, or on Dask
# --------------------------------------------------------------------------------------

#: Runs ``fn(item, *shared)`` for every item and yields ``(index, result)`` pairs as
#: they complete (in any order). Closing the iterator early cancels what is left.
Mapper = Callable[..., Generator[tuple[int, Any], None, None]]


def _map_here(
    fn: Callable[..., Any], items: list[Any], *shared: Any
) -> Generator[tuple[int, Any], None, None]:
    """The in-process :data:`Mapper`: one item after the other, in order."""
    for k, item in enumerate(items):
        yield k, fn(item, *shared)


@dataclass(frozen=True)
class _TaskError:
    """A :class:`RoadsegError` raised in a task, returned so that Dask does not retry
    it (a bad raster fails the same way again) and re-raised on the client."""

    error: RoadsegError


def _run_task(fn: Callable[..., Any], item: Any, shared: tuple[Any, ...]) -> Any:
    try:
        return fn(item, *shared)
    except RoadsegError as exc:
        return _TaskError(exc)


class _DaskMap:
    """The Dask :data:`Mapper`: one task per item on ``client``'s cluster.

    The shared arguments go to every worker once (scattered), not with each task.
    Tasks that raise an unexpected exception are retried ``retries`` times (a worker
    that dies is rescheduled by Dask itself); then the run stops with a one-line
    :class:`RoadsegError`.
    """

    def __init__(self, client: Any, retries: int) -> None:
        self.client = client
        self.retries = retries
        self.token = f"{os.getpid():x}-{time.time_ns():x}"
        self.calls = 0

    def __call__(
        self, fn: Callable[..., Any], items: list[Any], *shared: Any
    ) -> Generator[tuple[int, Any], None, None]:
        from roadseg.distributed import import_distributed

        distributed = import_distributed()
        stage = fn.__name__.strip("_").replace("_", "-")
        # A key per call: a thinning pass run again with a wider halo must not meet
        # the tasks of the pass it replaces, which are being cancelled.
        self.calls += 1
        token = f"{self.token}-{self.calls}"
        [packed] = self.client.scatter([shared], broadcast=True, hash=False)
        futures = {
            self.client.submit(
                _run_task,
                fn,
                item,
                packed,
                key=f"roadseg-vectorize-{stage}-{k}-{token}",
                retries=self.retries,
                pure=False,
            ): k
            for k, item in enumerate(items)
        }
        try:
            for future in distributed.as_completed(futures):
                k = futures[future]
                try:
                    out = future.result()
                except Exception as exc:  # retries used up, or the worker died too often
                    raise RoadsegError(
                        f"{stage} of chunk {k + 1} of {len(items)} failed on Dask "
                        f"({_task_failure(exc)})"
                    ) from None
                if isinstance(out, _TaskError):
                    raise out.error
                yield k, out
        finally:
            self.client.cancel([*futures, packed])


def _task_failure(exc: BaseException) -> str:
    if type(exc).__name__ == "KilledWorker":
        return "the worker running it died several times (out of memory?)"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _analyse_chunk(chunk: _Chunk, spec: _SourceSpec, params: _CleanParams) -> _ChunkSummary:
    """Pass 1 of the cleaning for one chunk, on a worker that opens the raster itself."""
    with spec.open() as source:
        labelled = _label_chunk(source, chunk, params.th, params.fill_holes)
    return _summarise_chunk(*labelled, chunk, params)


def _clean_chunk(
    item: tuple[_Chunk, np.ndarray, np.ndarray | None],
    spec: _SourceSpec,
    params: _CleanParams,
    store: _ChunkFiles,
) -> int:
    """Pass 2 of the cleaning for one chunk: label it again, keep what was decided,
    write the chunk's file. Returns the road pixels kept."""
    chunk, keep_fg, keep_bg = item
    with spec.open() as source:
        fl, _, bl, _, _, _ = _label_chunk(source, chunk, params.th, params.fill_holes)
    block = _apply_decisions(fl, bl, keep_fg, keep_bg)
    store.write(chunk, block)
    return int(np.count_nonzero(block))


# --------------------------------------------------------------------------------------
# Skeleton to graph
# --------------------------------------------------------------------------------------

_OFFS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


@dataclass(slots=True)
class PixelEdge:
    """An edge of a :class:`PixelGraph`: a path in pixel coordinates with per-vertex
    road half-widths (metres; NaN at nodes and bridges) and probabilities."""

    u: int
    v: int
    rc: np.ndarray  # (n, 2) float64 (row, col); rc[0] at node u, rc[-1] at node v
    hw: np.ndarray  # (n,) half-width, metres; NaN where unknown (nodes, bridges)
    prob: np.ndarray | None  # (n,) probabilities, or None
    length: float
    bridged: bool = False


class PixelGraph:
    """A multigraph of nodes (pixel positions) and edges (pixel paths).

    ``pos``, ``rad`` (road half-width, metres) and ``nprob`` describe the nodes;
    ``inc`` lists each node's edges (a loop twice); ``edges`` maps ids to
    :class:`PixelEdge`. Lengths are ground metres through ``scale``.
    """

    def __init__(self, scale: GroundScale, with_prob: bool) -> None:
        self.scale = scale
        self.with_prob = with_prob
        self.pos: dict[int, np.ndarray] = {}
        self.rad: dict[int, float] = {}
        self.nprob: dict[int, float] = {}
        self.inc: dict[int, list[int]] = {}
        self.edges: dict[int, PixelEdge] = {}
        self._next_node = 0
        self._next_edge = 0

    # -- building blocks -------------------------------------------------------------

    def add_node(self, pos: np.ndarray, rad: float, prob: float = math.nan) -> int:
        n = self._next_node
        self._next_node += 1
        self.pos[n] = np.asarray(pos, float)
        self.rad[n] = float(rad)
        self.nprob[n] = float(prob)
        self.inc[n] = []
        return n

    def remove_node(self, n: int) -> None:
        assert not self.inc[n]
        del self.pos[n], self.rad[n], self.nprob[n], self.inc[n]

    def add_edge(
        self,
        u: int,
        v: int,
        rc: np.ndarray,
        hw: np.ndarray,
        prob: np.ndarray | None,
        bridged: bool = False,
        length: float | None = None,
    ) -> int:
        e = self._next_edge
        self._next_edge += 1
        if length is None:
            length = self.scale.length(rc)
        self.edges[e] = PixelEdge(u, v, rc, hw, prob, length, bridged)
        self.inc[u].append(e)
        self.inc[v].append(e)
        return e

    def remove_edge(self, e: int) -> PixelEdge:
        edge = self.edges.pop(e)
        self.inc[edge.u].remove(e)
        self.inc[edge.v].remove(e)
        return edge

    def degree(self, n: int) -> int:
        return len(self.inc[n])

    def other(self, e: int, n: int) -> int:
        edge = self.edges[e]
        return edge.v if edge.u == n else edge.u

    def oriented(self, e: int, start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The edge's arrays running from node ``start``."""
        edge = self.edges[e]
        if edge.u == start:
            return edge.rc, edge.hw, edge.prob
        return edge.rc[::-1], edge.hw[::-1], None if edge.prob is None else edge.prob[::-1]

    def merge_through(self, n: int) -> int | None:
        """Join the two edges at a node of degree 2 into one; returns the new edge."""
        if n not in self.inc or self.degree(n) != 2:
            return None
        e1, e2 = self.inc[n]
        if e1 == e2:  # a ring anchored at n
            return None
        a, b = self.other(e1, n), self.other(e2, n)
        rc1, hw1, p1 = self.oriented(e1, a)
        rc2, hw2, p2 = self.oriented(e2, n)
        bridged = self.edges[e1].bridged or self.edges[e2].bridged
        length = self.edges[e1].length + self.edges[e2].length
        rc = np.concatenate([rc1, rc2[1:]])
        hw = np.concatenate([hw1[:-1], [self.rad[n]], hw2[1:]])
        prob = None
        if p1 is not None and p2 is not None:
            prob = np.concatenate([p1, p2[1:]])
        self.remove_edge(e1)
        self.remove_edge(e2)
        self.remove_node(n)
        return self.add_edge(a, b, rc, hw, prob, bridged, length)

    def merge_all_degree2(self) -> None:
        for n in sorted(self.inc):
            if n in self.inc and self.degree(n) == 2:
                self.merge_through(n)

    def drop_isolated_nodes(self) -> None:
        for n in [n for n, es in self.inc.items() if not es]:
            self.remove_node(n)


def skeleton_graph(
    rows: np.ndarray,
    cols: np.ndarray,
    shape: tuple[int, int],
    scale: GroundScale,
    half_width: np.ndarray | None = None,
    prob: np.ndarray | None = None,
) -> PixelGraph:
    """Turn skeleton pixels into a graph of junctions, end points and edges.

    Adjacency is 8-connected, except that a diagonal step is ignored when the two
    pixels also touch through a common edge neighbour (so staircases are paths, not
    junctions). Pixels with other than two neighbours are node pixels; touching node
    pixels form one node at their centroid. Chains of two-neighbour pixels are edges;
    a chain with no node at all is an isolated ring and becomes a closed edge. No
    skeleton pixel is lost, and loops and parallel edges are kept.

    Everything is vectorised (neighbour tables by binary search, components and a
    breadth-first ordering with :mod:`scipy.sparse.csgraph`); each edge's arrays
    are slices of one array holding all chains with their end nodes.

    Args:
        rows, cols: skeleton pixel indices (any order, no duplicates).
        shape: raster (height, width).
        scale: ground scale for lengths.
        half_width: road half-width at each pixel, metres.
        prob: road probability at each pixel.
    """
    H, W = shape
    rows = np.asarray(rows).astype(np.int32)  # raster sides are far below 2**31
    cols = np.asarray(cols).astype(np.int32)
    n = rows.size
    graph = PixelGraph(scale, prob is not None)
    if n == 0:
        return graph
    half_width = np.full(n, np.nan) if half_width is None else np.asarray(half_width, float)
    keys = rows.astype(np.int64) * W + cols
    order = np.argsort(keys, kind="stable")
    keys, rows, cols, half_width = keys[order], rows[order], cols[order], half_width[order]
    if prob is not None:
        prob = np.asarray(prob, float)[order]

    nbrs = _Neighbours(keys, rows, cols, H, W)
    block = 1 << 17
    spans = [(i, min(i + block, n)) for i in range(0, n, block)]
    # Pass 1: which pixels are nodes (other than two neighbours).
    is_node = np.zeros(n, bool)
    for i0, i1 in spans:
        _, keep = nbrs.table(np.arange(i0, i1))
        is_node[i0:i1] = keep.sum(axis=1) != 2
    is_path = ~is_node
    node_ext = np.append(is_node, False)  # index -1 (no neighbour) reads False
    path_ext = np.append(is_path, False)
    # Pass 2: node-node links (8-connected) for clusters; path-path links (pruned)
    # for chains, as CSR pieces; and the node neighbours of chain ends.
    cl_src, cl_dst, p_count, p_idx, end_ids, end_n1, end_n2 = [], [], [], [], [], [], []
    for i0, i1 in spans:
        idx = np.arange(i0, i1)
        full, keep = nbrs.table(idx)
        fm = np.zeros(full.shape, bool)
        pm = np.zeros(full.shape, bool)
        nm = np.zeros(full.shape, bool)
        for k in range(8):
            fm[:, k] = (full[:, k] >= 0) & node_ext[full[:, k]]
            pm[:, k] = keep[:, k] & path_ext[full[:, k]]
            nm[:, k] = keep[:, k] & node_ext[full[:, k]]
        fm &= is_node[i0:i1, None]
        pm &= is_path[i0:i1, None]
        r, k = np.nonzero(fm)
        cl_src.append(idx[r])
        cl_dst.append(full[r, k])
        p_count.append(pm.sum(axis=1))
        p_idx.append(full[pm])
        ends = np.flatnonzero(is_path[i0:i1] & (p_count[-1] < 2))
        first, second = _first_two(full[ends], nm[ends])
        end_ids.append(idx[ends])
        end_n1.append(first)
        end_n2.append(second)
    del full, keep, fm, pm, nm
    pairs = np.stack([np.concatenate(cl_src), np.concatenate(cl_dst)], axis=1)
    cl_all = _components(n, pairs)
    del pairs, cl_src, cl_dst
    pdeg = np.concatenate(p_count)
    indices = np.concatenate(p_idx).astype(np.int32)
    indptr = np.concatenate([[0], np.cumsum(pdeg)]).astype(np.int64)
    del p_idx, p_count
    end_ids_a = np.concatenate(end_ids)
    end_pair = (np.concatenate(end_n1), np.concatenate(end_n2))

    node_ids = np.flatnonzero(is_node)
    cluster = np.full(n, -1, np.int64)
    node_of_cluster = np.zeros(0, np.int64)
    if node_ids.size:
        _, cluster[node_ids] = np.unique(cl_all[node_ids], return_inverse=True)
        node_of_cluster = _add_cluster_nodes(
            graph,
            cluster[node_ids],
            rows[node_ids],
            cols[node_ids],
            half_width[node_ids],
            None if prob is None else prob[node_ids],
        )
    del cl_all

    # Chains of path pixels, ordered by a breadth-first walk from one end.
    path_ids = np.flatnonzero(is_path)
    if path_ids.size:
        data = np.ones(indices.size, np.int8)
        links = sparse.csr_matrix((data, indices, indptr), shape=(n, n))
        _, chain = csgraph.connected_components(links, directed=False)
        n_chain_ids = int(chain.max()) + 1
        ends = path_ids[pdeg[path_ids] < 2]
        has_end = np.zeros(n_chain_ids, bool)
        has_end[chain[ends]] = True
        start = np.full(n_chain_ids, n, np.int64)
        np.minimum.at(start, chain[ends], ends)
        ring_chains = np.unique(chain[path_ids][~has_end[chain[path_ids]]])
        if ring_chains.size:
            ring_start = np.full(n_chain_ids, n, np.int64)
            np.minimum.at(ring_start, chain[path_ids], path_ids)
            start[ring_chains] = ring_start[ring_chains]
            # Break each ring between its start and its lowest-numbered neighbour.
            for s_ in start[ring_chains]:
                t_ = int(indices[indptr[s_] : indptr[s_ + 1]].min())
                for a_, b_ in ((int(s_), t_), (t_, int(s_))):
                    row = slice(indptr[a_], indptr[a_ + 1])
                    data[row][indices[row] == b_] = 0
            links = sparse.csr_matrix((data, indices, indptr), shape=(n, n))
            links.eliminate_zeros()
        chains = np.unique(chain[path_ids])
        starts = start[chains]
        seq = _walk_from(links, starts)  # along the path links (symmetric)
        del links, indices, indptr, data
        seq = seq[np.argsort(chain[seq], kind="stable")]
        first_at = np.concatenate([[0], np.flatnonzero(np.diff(chain[seq])) + 1])
        last_at = np.concatenate([first_at[1:], [seq.size]]) - 1
        ring = np.isin(chain[seq[first_at]], ring_chains)
        del chain, pdeg

        def node_pair(pix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            at = np.searchsorted(end_ids_a, pix)
            return end_pair[0][at], end_pair[1][at]

        _add_chains(
            graph,
            seq,
            first_at,
            last_at,
            ring,
            rows,
            cols,
            half_width,
            prob,
            node_pair,
            cluster,
            node_of_cluster,
        )
    graph.drop_isolated_nodes()
    return graph


def _add_cluster_nodes(
    graph: PixelGraph,
    cid: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    half_width: np.ndarray,
    prob: np.ndarray | None,
) -> np.ndarray:
    """Add one node per cluster of node pixels; returns the node of each cluster.

    The node pixels come in (row, col) order with their cluster numbers ``cid``
    (0, 1, ... in that order of first appearance): a node sits at its pixels'
    centroid, with their widest half-width and their mean probability (summed in
    pixel order, so the same pixels always give the same bits).
    """
    n_clusters = int(cid.max()) + 1
    cnt = np.bincount(cid, minlength=n_clusters)
    cr = np.bincount(cid, rows, minlength=n_clusters) / cnt
    cc_ = np.bincount(cid, cols, minlength=n_clusters) / cnt
    crad = np.full(n_clusters, -np.inf)
    np.maximum.at(crad, cid, np.nan_to_num(half_width, nan=0.0))
    cprob = np.full(n_clusters, np.nan)
    if prob is not None:
        cprob = np.bincount(cid, prob, minlength=n_clusters) / cnt
    return np.array(
        [
            graph.add_node(np.array([cr[c], cc_[c]]), float(crad[c]), float(cprob[c]))
            for c in range(n_clusters)
        ],
        np.int64,
    )


def _add_chains(
    graph: PixelGraph,
    seq: np.ndarray,
    first_at: np.ndarray,
    last_at: np.ndarray,
    ring: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    half_width: np.ndarray,
    prob: np.ndarray | None,
    node_pair: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    cluster: np.ndarray,
    node_of_cluster: np.ndarray,
) -> None:
    """Edges for ordered chains: open chains get their end nodes, rings close."""
    # Open chains: the node beside the first pixel, and beside the last one (or the
    # first pixel's second node when the chain is a single pixel).
    op = np.flatnonzero(~ring)
    if op.size:
        first, last = seq[first_at[op]], seq[last_at[op]]
        n1_first, n2_first = node_pair(first)
        n1_last, _ = node_pair(last)
        single = first == last
        u_pix = n1_first
        v_pix = np.where(single, np.where(n2_first >= 0, n2_first, n1_first), n1_last)
        u = node_of_cluster[cluster[u_pix]]
        v = node_of_cluster[cluster[v_pix]]
        chain_sizes = last_at - first_at + 1
        members = seq[np.flatnonzero(np.repeat(~ring, chain_sizes))]  # open chains, in order
        _add_open_chains(
            graph,
            chain_sizes[op],
            u,
            v,
            rows[members],
            cols[members],
            half_width[members],
            None if prob is None else prob[members],
        )
    for j in np.flatnonzero(ring):
        piece = seq[first_at[j] : last_at[j] + 1]
        _add_ring(
            graph,
            rows[piece],
            cols[piece],
            half_width[piece],
            None if prob is None else prob[piece],
        )


def _add_open_chains(
    graph: PixelGraph,
    length: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    half_width: np.ndarray,
    prob: np.ndarray | None,
) -> None:
    """One edge per open chain, in order, from node ``u`` to node ``v``.

    ``rows``, ``cols``, ``half_width`` and ``prob`` hold the chains' pixels one
    chain after the other, each in walking order, ``length`` pixels per chain. All
    edges' arrays are slices of one array holding every chain with its end nodes
    around it, and their lengths are sums over it (so the bits of a length depend
    only on the chains given, in the order given).
    """
    offset = np.concatenate([[0], np.cumsum(length + 2)[:-1]])
    total = int((length + 2).sum())
    starts = np.concatenate([[0], np.cumsum(length)[:-1]])
    pixel_slot = np.arange(rows.size) + np.repeat(offset + 1 - starts, length)
    rc = np.empty((total, 2))
    hw = np.full(total, np.nan)
    rc[pixel_slot, 0] = rows
    rc[pixel_slot, 1] = cols
    hw[pixel_slot] = half_width
    upos = np.array([graph.pos[x] for x in u]).reshape(-1, 2)
    vpos = np.array([graph.pos[x] for x in v]).reshape(-1, 2)
    rc[offset] = upos
    rc[offset + length + 1] = vpos
    pr = None
    if prob is not None:
        pr = np.full(total, np.nan)
        pr[pixel_slot] = prob
        pr[offset] = [graph.nprob[x] for x in u]
        pr[offset + length + 1] = [graph.nprob[x] for x in v]
    seg = np.concatenate([graph.scale.segment_lengths(rc), [0.0]])
    seg[offset[1:] - 1] = 0.0  # the joins between consecutive chains
    lengths = np.add.reduceat(seg, offset)
    for j in range(length.size):
        a, b = int(offset[j]), int(offset[j] + length[j] + 2)
        graph.add_edge(
            int(u[j]),
            int(v[j]),
            rc[a:b],
            hw[a:b],
            None if pr is None else pr[a:b],
            length=float(lengths[j]),
        )


def _add_ring(
    graph: PixelGraph,
    rows: np.ndarray,
    cols: np.ndarray,
    half_width: np.ndarray,
    prob: np.ndarray | None,
) -> None:
    """A closed edge for an isolated ring (pixels in walking order), anchored at a
    new node on its first pixel."""
    rc_r = np.stack([rows, cols], axis=1).astype(float)
    hw_r = half_width
    pr_r = prob
    a = graph.add_node(rc_r[0], float(np.nan_to_num(hw_r[0])), _first(pr_r))
    rc_r = np.concatenate([rc_r, rc_r[:1]])
    hw_r = np.concatenate([[np.nan], hw_r[1:], [np.nan]])
    if pr_r is not None:
        pr_r = np.concatenate([pr_r, pr_r[:1]])
    graph.add_edge(a, a, rc_r, hw_r, pr_r)


def _first_two(table: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first and second entries of each row of ``table`` where ``mask``; -1: none."""
    rows = np.arange(len(table))
    k1 = np.argmax(mask, axis=1)
    first = np.where(mask[rows, k1], table[rows, k1], -1)
    rest = mask.copy()
    rest[rows, k1] = False
    k2 = np.argmax(rest, axis=1)
    second = np.where(rest[rows, k2], table[rows, k2], -1)
    return first.astype(np.int64), second.astype(np.int64)


class _Neighbours:
    """8-neighbour tables of skeleton pixels sorted by (row, col), for any subset.

    Computed block by block when needed (binary search in the sorted keys), so no
    (pixels x 8) table of the whole skeleton is ever held.
    """

    def __init__(self, keys: np.ndarray, rows: np.ndarray, cols: np.ndarray, h: int, w: int):
        self.keys, self.rows, self.cols, self.h, self.w = keys, rows, cols, h, w

    def table(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(full, keep)`` for pixels ``idx``: ``full[i, k]`` is the index of the
        neighbour in direction ``_OFFS[k]`` (-1: none); ``keep`` drops diagonals
        already joined through an edge neighbour (``(dr, 0)`` or ``(0, dc)``)."""
        n = self.keys.size
        full = np.full((idx.size, 8), -1, np.int32)
        r0, c0 = self.rows[idx], self.cols[idx]
        for k, (dr, dc) in enumerate(_OFFS):
            rr, cc = r0 + dr, c0 + dc
            q = rr.astype(np.int64) * self.w + cc
            at = np.minimum(np.searchsorted(self.keys, q), n - 1)
            hit = (rr >= 0) & (rr < self.h) & (cc >= 0) & (cc < self.w) & (self.keys[at] == q)
            full[hit, k] = at[hit]
        present = full >= 0
        keep = present.copy()
        for k, (dr, dc) in enumerate(_OFFS):
            if dr and dc:
                keep[:, k] &= ~(present[:, _OFFS.index((dr, 0))] | present[:, _OFFS.index((0, dc))])
        return full, keep


def _first(values: np.ndarray | None) -> float:
    return float(values[0]) if values is not None and values.size else math.nan


# --------------------------------------------------------------------------------------
# Skeleton to graph, chunk by chunk
# --------------------------------------------------------------------------------------


@dataclass
class _ChunkGraph:
    """The graph structure of one chunk's core, as compact arrays (a task's result).

    Node pixels (other than two neighbours) with their local cluster, and the pairs
    of touching node pixels across the core's border (as global keys
    ``row * width + col``). Chain pieces: maximal runs of two-neighbour pixels
    inside the core, each in walking order, with an exit at each end: the
    neighbour the chain continues to beyond the piece (a node pixel, or a
    two-neighbour pixel across the border) as its key and direction (an index of
    ``_OFFS``); -1 where there is none (a ring inside the core). A single-pixel
    piece has both of its exits at that pixel, in ``_OFFS`` order.
    """

    node_keys: np.ndarray  # (k,) int64, increasing
    node_hw: np.ndarray  # (k,) float64
    node_prob: np.ndarray | None  # (k,) float32
    node_label: np.ndarray  # (k,) int32, local cluster 0..n_labels-1
    n_labels: int
    cross: np.ndarray  # (m, 2) int64: node pixel keys (in the core, beyond it)
    piece_len: np.ndarray  # (p,) int32, pixels per piece
    rows: np.ndarray  # (sum(piece_len),) int32, the pieces' pixels in walking order
    cols: np.ndarray
    hw: np.ndarray  # float64
    prob: np.ndarray | None  # float32
    exit_key: np.ndarray  # (p, 2) int64, -1: none
    exit_dir: np.ndarray  # (p, 2) int8
    exit_node: np.ndarray  # (p, 2) bool: the exit is a node pixel

    @property
    def pixels(self) -> int:
        return int(self.node_keys.size + self.rows.size)


def _chunk_graph(
    ext: np.ndarray,
    er0: int,
    ec0: int,
    chunk: _Chunk,
    width: int,
    half_width: np.ndarray,
    prob: np.ndarray | None,
) -> _ChunkGraph:
    """The graph structure of a chunk's core (see :class:`_ChunkGraph`).

    ``ext`` is the skeleton of the core and of up to two pixels around it (within
    the raster), starting at ``(er0, ec0)``: what the neighbour counts of the core's
    pixels and of the pixels next to it depend on. ``half_width`` and ``prob``
    belong to the core's skeleton pixels in (row, col) order.
    """
    h, w = ext.shape
    yy, xx = np.nonzero(ext)
    n = yy.size
    full, keep = _Neighbours(yy.astype(np.int64) * w + xx, yy, xx, h, w).table(np.arange(n))
    # Exact on the core and the pixel ring around it (their neighbours are in ext).
    is_node = keep.sum(axis=1) != 2
    in_core = (
        (yy >= chunk.r0 - er0)
        & (yy < chunk.r1 - er0)
        & (xx >= chunk.c0 - ec0)
        & (xx < chunk.c1 - ec0)
    )
    gkey = (yy + er0).astype(np.int64) * width + (xx + ec0)
    rank = np.cumsum(in_core) - 1  # index among the core's pixels, for its arrays
    node_x = np.append(is_node, False)
    core_x = np.append(in_core, False)

    # Nodes: local clusters (8-connected) and the touching pairs across the border.
    nid = np.flatnonzero(in_core & is_node)
    nb = full[nid]
    touch = (nb >= 0) & node_x[nb]
    inside = touch & core_x[nb]
    r, k = np.nonzero(inside)
    labels = _components(n, np.stack([nid[r], nb[r, k]], axis=1))
    _, node_label = np.unique(labels[nid], return_inverse=True)
    r, k = np.nonzero(touch & ~core_x[nb])
    cross = np.stack([gkey[nid[r]], gkey[nb[r, k]]], axis=1)

    # Chain pieces: two-neighbour pixels of the core linked inside the core.
    pids = np.flatnonzero(in_core & ~is_node)
    n_path = pids.size
    pid = np.full(n + 1, -1, np.int64)
    pid[pids] = np.arange(n_path)
    nb = full[pids]
    kp = keep[pids]
    link = kp & core_x[nb] & ~node_x[nb]
    r, k = np.nonzero(link)
    seq, first_at, last_at = _walk_pieces(n_path, r, pid[nb[r, k]])
    exits = kp & ~link  # to a node pixel, or beyond the core
    head, tail = seq[first_at], seq[last_at]
    piece_len = (last_at - first_at + 1).astype(np.int32)
    # First and second exit of each pixel, in _OFFS order (-1: none).
    k1 = np.where(exits.any(axis=1), np.argmax(exits, axis=1), -1)
    rest = exits.copy()
    rest[np.arange(n_path), np.maximum(k1, 0)] = False
    k2 = np.where(rest.any(axis=1), np.argmax(rest, axis=1), -1)
    single = piece_len == 1
    exit_dir = np.stack([k1[head], np.where(single, k2[head], k1[tail])], axis=1).astype(np.int8)
    end_pix = np.stack([head, tail], axis=1)
    target = nb[end_pix, np.maximum(exit_dir, 0)]
    target = np.where(exit_dir >= 0, target, n)
    exit_key = np.where(exit_dir >= 0, gkey[np.minimum(target, max(n - 1, 0))], -1)
    walk = pids[seq]
    core_of_seq = rank[walk]
    at = rank[nid]
    return _ChunkGraph(
        node_keys=gkey[nid],
        node_hw=half_width[at],
        node_prob=None if prob is None else prob[at],
        node_label=node_label.astype(np.int32).reshape(-1),
        n_labels=int(node_label.max()) + 1 if nid.size else 0,
        cross=cross.astype(np.int64).reshape(-1, 2),
        piece_len=piece_len,
        rows=(yy[walk] + er0).astype(np.int32),
        cols=(xx[walk] + ec0).astype(np.int32),
        hw=half_width[core_of_seq],
        prob=None if prob is None else prob[core_of_seq],
        exit_key=exit_key.reshape(-1, 2),
        exit_dir=exit_dir.reshape(-1, 2),
        exit_node=node_x[target].reshape(-1, 2),
    )


def _walk_from(links: sparse.csr_matrix, starts: np.ndarray) -> np.ndarray:
    """The nodes of ``links`` (a directed adjacency matrix, n x n) in
    breadth-first order from ``starts``, taken in the given order: a virtual
    root linked to every start is walked from, then dropped."""
    n = links.shape[0]
    walk = sparse.csr_matrix(
        (
            np.ones(links.indices.size + starts.size, np.int8),
            np.concatenate([links.indices, starts.astype(np.int32)]),
            np.concatenate([links.indptr, [links.indptr[-1] + starts.size]]),
        ),
        shape=(n + 1, n + 1),
    )
    return csgraph.breadth_first_order(walk, n, directed=True, return_predecessors=False)[1:]


def _walk_pieces(
    n: int, src: np.ndarray, dst: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Order the vertices of a graph of paths and cycles (degree <= 2, ``n``
    vertices, symmetric links ``src``-``dst``) along each component.

    Returns ``seq`` (every vertex once, component by component in the order of
    their lowest vertex) and the positions in ``seq`` where each component starts
    and ends. A path runs from its lower-numbered end; a cycle starts at its lowest
    vertex and leaves it away from that vertex's lower-numbered neighbour.
    """
    if n == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    links = sparse.csr_matrix((np.ones(src.size, np.int8), (src, dst)), shape=(n, n))
    _, comp = csgraph.connected_components(links, directed=False)
    n_comp = int(comp.max()) + 1
    pdeg = np.diff(links.indptr)
    ends = np.flatnonzero(pdeg < 2)
    start = np.full(n_comp, n, np.int64)
    np.minimum.at(start, comp[ends], ends)
    cyc = np.flatnonzero(start == n)
    if cyc.size:
        lowest = np.full(n_comp, n, np.int64)
        np.minimum.at(lowest, comp, np.arange(n))
        start[cyc] = lowest[cyc]
        cut = []
        for s_ in start[cyc]:
            t_ = int(links.indices[links.indptr[s_] : links.indptr[s_ + 1]].min())
            cut += [(int(s_), t_), (t_, int(s_))]
        cut_a = np.array(cut, np.int64)
        drop = sparse.csr_matrix(
            (np.ones(len(cut_a), np.int8), (cut_a[:, 0], cut_a[:, 1])), shape=(n, n)
        )
        links = (links - drop).tocsr()
        links.eliminate_zeros()
    seq = _walk_from(links, start)
    seq = seq[np.argsort(comp[seq], kind="stable")].astype(np.int64)
    first_at = np.concatenate([[0], np.flatnonzero(np.diff(comp[seq])) + 1])
    last_at = np.concatenate([first_at[1:], [seq.size]]) - 1
    return seq, first_at, last_at


def _merge_chunk_graphs(
    parts: list[_ChunkGraph],
    shape: tuple[int, int],
    scale: GroundScale,
    with_prob: bool,
) -> PixelGraph:
    """Stitch the chunks' graph structures into the graph of the whole skeleton.

    The result equals :func:`skeleton_graph` of the whole skeleton, node ids, edge
    ids and every array included: clusters of node pixels are joined across
    borders and numbered in the order of their first pixel (row, col); pieces are
    joined end to end where their exits meet into chains; open chains (numbered in
    the order of their first pixel) become edges walked from their lower end
    pixel, then isolated rings (in the same order) become closed edges starting
    at their first pixel and leaving it away from its lower neighbour.

    Raises:
        RoadsegError: the chunks do not agree across a border (an internal error).
    """
    _, width = shape
    graph = PixelGraph(scale, with_prob)
    if not parts or sum(p.pixels for p in parts) == 0:
        return graph

    # Nodes: the local clusters joined across borders, numbered by first pixel.
    node_keys = np.concatenate([p.node_keys for p in parts])
    label_base = np.cumsum([0] + [p.n_labels for p in parts])
    node_label = np.concatenate(
        [p.node_label.astype(np.int64) + b for p, b in zip(parts, label_base, strict=False)]
    )
    order = np.argsort(node_keys, kind="stable")
    node_keys, node_label = node_keys[order], node_label[order]
    node_hw = np.concatenate([p.node_hw for p in parts])[order]
    node_prob = None
    if with_prob:
        node_prob = np.concatenate([p.node_prob for p in parts])[order].astype(float)  # type: ignore[misc]

    def node_index(keys: np.ndarray) -> np.ndarray:
        at = np.minimum(np.searchsorted(node_keys, keys), max(node_keys.size - 1, 0))
        if keys.size and not np.array_equal(node_keys[at], keys):
            raise RoadsegError("the chunks' graphs do not agree across a border (internal error)")
        return at

    cross = np.concatenate([p.cross for p in parts])
    pairs = node_label[node_index(cross.reshape(-1))].reshape(-1, 2)
    comp = _components(int(label_base[-1]), pairs)[node_label]
    cluster = np.zeros(0, np.int64)
    node_of_cluster = np.zeros(0, np.int64)
    if node_keys.size:
        uniq, first = np.unique(comp, return_index=True)
        rank = np.empty(uniq.size, np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(uniq.size)
        cluster = rank[np.searchsorted(uniq, comp)]
        node_of_cluster = _add_cluster_nodes(
            graph,
            cluster,
            (node_keys // width).astype(np.int32),
            (node_keys % width).astype(np.int32),
            node_hw,
            node_prob,
        )

    # Pieces: vertex 2p is piece p's head (exit 0), 2p + 1 its tail (exit 1).
    piece_len = np.concatenate([p.piece_len for p in parts]).astype(np.int64)
    n_pieces = piece_len.size
    if n_pieces:
        rows = np.concatenate([p.rows for p in parts])
        cols = np.concatenate([p.cols for p in parts])
        keys = rows.astype(np.int64) * width + cols
        exit_key = np.concatenate([p.exit_key for p in parts]).reshape(-1)
        exit_dir = np.concatenate([p.exit_dir for p in parts]).reshape(-1).astype(np.int64)
        exit_node = np.concatenate([p.exit_node for p in parts]).reshape(-1)
        pstart = np.concatenate([[0], np.cumsum(piece_len)[:-1]])
        end_key = np.stack([keys[pstart], keys[pstart + piece_len - 1]], axis=1).reshape(-1)
        # Links across borders: the exit (a, k) of one piece meets (a + k, 7 - k).
        is_link = (exit_key >= 0) & ~exit_node
        lv = np.flatnonzero(is_link)
        lid_ = end_key[lv] * 8 + exit_dir[lv]
        want = exit_key[lv] * 8 + (7 - exit_dir[lv])
        lorder = np.argsort(lid_)
        at = np.minimum(np.searchsorted(lid_, want, sorter=lorder), max(lv.size - 1, 0))
        if lv.size and not np.array_equal(lid_[lorder[at]], want):
            raise RoadsegError("the chunks' graphs do not agree across a border (internal error)")
        partner = lv[lorder[at]]
        n_v = 2 * n_pieces
        inner = np.arange(n_v) ^ 1
        src = np.concatenate([np.arange(n_v), lv])
        dst = np.concatenate([inner, partner])
        links = sparse.csr_matrix((np.ones(src.size, np.int8), (src, dst)), shape=(n_v, n_v))
        _, chain = csgraph.connected_components(links, directed=False)
        n_chains = int(chain.max()) + 1
        terminal = exit_node
        n_term = np.bincount(chain, terminal, minlength=n_chains).astype(np.int64)
        if np.any((n_term != 0) & (n_term != 2)):
            raise RoadsegError("the chunks' graphs do not agree across a border (internal error)")
        ring = n_term == 0
        # The start: an open chain's terminal end with the lower pixel (the head of
        # a single pixel: its first exit); a ring's lowest vertex, whose link is cut.
        tv = np.flatnonzero(terminal)
        tkey = end_key[tv] * 2 + (tv & 1)
        start = np.full(n_chains, np.iinfo(np.int64).max, np.int64)
        np.minimum.at(start, chain[tv], tkey)
        start_v = np.full(n_chains, -1, np.int64)
        best = tkey == start[chain[tv]]
        start_v[chain[tv[best]]] = tv[best]
        if ring.any():
            lowest = np.full(n_chains, n_v, np.int64)
            np.minimum.at(lowest, chain, np.arange(n_v))
            start_v[ring] = lowest[ring]
            touches = np.isin(src, lowest[ring]) | np.isin(dst, lowest[ring])
            keep_link = ~touches | (dst == (src ^ 1))
            src, dst = src[keep_link], dst[keep_link]
            links = sparse.csr_matrix((np.ones(src.size, np.int8), (src, dst)), shape=(n_v, n_v))
        seq = _walk_from(links, start_v)
        if seq.size != n_v:
            raise RoadsegError("the chunks' graphs do not agree across a border (internal error)")
        # Chains in the order of their first pixel: open ones, then rings.
        pmin = np.minimum.reduceat(keys, pstart)
        cmin = np.full(n_chains, np.iinfo(np.int64).max, np.int64)
        np.minimum.at(cmin, chain[0::2], pmin)
        rank_c = np.lexsort((cmin, ring))
        pos_c = np.empty(n_chains, np.int64)
        pos_c[rank_c] = np.arange(n_chains)
        seq = seq[np.argsort(pos_c[chain[seq]], kind="stable")]
        bounds = np.flatnonzero(np.diff(pos_c[chain[seq]])) + 1
        cfirst = np.concatenate([[0], bounds])
        clast = np.concatenate([bounds, [n_v]]) - 1
        enter = seq[0::2]  # each piece is entered at one end and left at the other
        piece = enter // 2
        # Pixel indices of all chains, in walking order.
        plen = piece_len[piece]
        out_start = np.concatenate([[0], np.cumsum(plen)[:-1]])
        i = np.arange(int(plen.sum())) - np.repeat(out_start, plen)
        base = np.repeat(pstart[piece], plen)
        forward = np.repeat((enter & 1) == 0, plen)
        idx = np.where(forward, base + i, base + np.repeat(plen, plen) - 1 - i)
        del i, base, forward
        csize = np.bincount(chain[0::2], piece_len, minlength=n_chains).astype(np.int64)[rank_c]
        n_open = int(np.count_nonzero(~ring))
        hw_all = np.concatenate([p.hw for p in parts])
        prob_all = None
        if with_prob:
            prob_all = np.concatenate([p.prob for p in parts]).astype(float)  # type: ignore[misc]
        if n_open:
            # u: the node beyond the exit the walk starts from; v: beyond its last.
            u_key = exit_key[seq[cfirst[:n_open]]]
            v_key = exit_key[seq[clast[:n_open]]]
            u = node_of_cluster[cluster[node_index(u_key)]]
            v = node_of_cluster[cluster[node_index(v_key)]]
            sel = idx[: int(csize[:n_open].sum())]
            _add_open_chains(
                graph,
                csize[:n_open],
                u,
                v,
                rows[sel],
                cols[sel],
                hw_all[sel],
                None if prob_all is None else prob_all[sel],
            )
        at = int(csize[:n_open].sum())
        for size in csize[n_open:]:
            cyc = idx[at : at + size]
            at += int(size)
            ck = keys[cyc]
            s_ = int(np.argmin(ck))
            m = cyc.size
            step = -1 if ck[(s_ + 1) % m] < ck[(s_ - 1) % m] else 1
            cyc = cyc[(s_ + step * np.arange(m)) % m]
            _add_ring(
                graph,
                rows[cyc],
                cols[cyc],
                hw_all[cyc],
                None if prob_all is None else prob_all[cyc],
            )
    graph.drop_isolated_nodes()
    return graph


# --------------------------------------------------------------------------------------
# Graph cleaning
# --------------------------------------------------------------------------------------


def _drop_small_loops(g: PixelGraph, limit_m: float) -> None:
    for e in sorted(g.edges):
        edge = g.edges.get(e)
        if edge is not None and edge.u == edge.v and g.degree(edge.u) > 2:
            if edge.length < max(limit_m, 2 * math.pi * g.rad[edge.u]):
                g.remove_edge(e)
                g.merge_through(edge.u)


def prune_spurs(g: PixelGraph, spur_m: float) -> int:
    """Remove side branches that end less than ``spur_m`` beyond the road's edge.

    A spur is an edge from an end point to a junction (degree >= 3). What counts is
    how far it reaches beyond the road body at the junction: its length minus the
    road's half-width there. Spurs go shortest first and one at a time, so of the
    two prongs that thinning leaves at a blunt road end only one goes, and the
    other becomes the road's continuation.

    Returns:
        The number of spurs removed.
    """
    removed = 0
    heap: list[tuple[float, int]] = []

    def push(e: int) -> None:
        edge = g.edges[e]
        if edge.u == edge.v:
            return
        du, dv = g.degree(edge.u), g.degree(edge.v)
        if (du == 1 and dv >= 3) or (dv == 1 and du >= 3):
            junction = edge.v if du == 1 else edge.u
            reach = edge.length - g.rad[junction]
            if reach < spur_m:
                heapq.heappush(heap, (edge.length, e))

    for e in sorted(g.edges):
        push(e)
    while heap:
        _, e = heapq.heappop(heap)
        if e not in g.edges:
            continue
        edge = g.edges[e]
        du, dv = g.degree(edge.u), g.degree(edge.v)
        if not ((du == 1 and dv >= 3) or (dv == 1 and du >= 3)):
            continue
        tip, junction = (edge.u, edge.v) if du == 1 else (edge.v, edge.u)
        if edge.length - g.rad[junction] >= spur_m:
            continue
        g.remove_edge(e)
        g.remove_node(tip)
        removed += 1
        new = g.merge_through(junction)
        if new is not None:
            push(new)
        elif junction in g.inc:
            for f in list(g.inc[junction]):
                push(f)
    return removed


def merge_junctions(g: PixelGraph, merge_m: float) -> int:
    """Contract edges between junctions that are closer than ``merge_m`` or lie
    inside each other's road body (length < sum of the two half-widths).

    Thinning splits an X crossing of wide roads into two T junctions a few pixels
    apart; this puts them back together at the middle of the short edge. Parallel
    edges between the two become loops; loops shorter than a junction's
    circumference are dropped.

    Returns:
        The number of contractions.
    """
    count = 0
    heap: list[tuple[float, int]] = []

    def short(e: int) -> bool:
        edge = g.edges[e]
        if edge.u == edge.v or g.degree(edge.u) < 3 or g.degree(edge.v) < 3:
            return False
        return edge.length < max(merge_m, g.rad[edge.u] + g.rad[edge.v])

    for e in sorted(g.edges):
        if short(e):
            heapq.heappush(heap, (g.edges[e].length, e))
    while heap:
        _, e = heapq.heappop(heap)
        if e not in g.edges or not short(e):
            continue
        edge = g.remove_edge(e)
        u, v = edge.u, edge.v
        cum = np.concatenate([[0.0], np.cumsum(g.scale.segment_lengths(edge.rc))])
        k = int(np.searchsorted(cum, cum[-1] / 2.0))
        k = min(max(k, 0), len(edge.rc) - 1)
        w = g.add_node(edge.rc[k], max(g.rad[u], g.rad[v]), _mean2(g.nprob[u], g.nprob[v]))
        for old in (u, v):
            for f in list(dict.fromkeys(g.inc[old])):
                fe = g.remove_edge(f)
                rc, hw = fe.rc.copy(), fe.hw
                pr = None if fe.prob is None else fe.prob.copy()
                nu = w if fe.u in (u, v) else fe.u
                nv = w if fe.v in (u, v) else fe.v
                if fe.u in (u, v):
                    rc[0] = g.pos[w]
                if fe.v in (u, v):
                    rc[-1] = g.pos[w]
                g.add_edge(nu, nv, rc, hw, pr, fe.bridged)
        g.remove_node(u)
        g.remove_node(v)
        count += 1
        # Loops made of former parallel edges.
        for f in list(dict.fromkeys(g.inc[w])):
            fe = g.edges[f]
            if fe.u == fe.v and fe.length < max(merge_m, 2 * math.pi * g.rad[w]):
                g.remove_edge(f)
        new = g.merge_through(w)
        if new is None and w in g.inc:
            for f in g.inc[w]:
                if short(f):
                    heapq.heappush(heap, (g.edges[f].length, f))
    return count


def _mean2(a: float, b: float) -> float:
    vals = [x for x in (a, b) if math.isfinite(x)]
    return sum(vals) / len(vals) if vals else math.nan


@dataclass
class _EndAxis:
    """Where and in which direction a dead end points, ignoring its last metres.

    Thinning rounds a road's end into a fork; spur pruning leaves one prong, so the
    last half-width or so of every dead end hooks sideways. The axis point sits
    ``trim`` metres back from the tip, and the direction is measured from
    ``reach`` metres back to the axis point.
    """

    node: int
    k: int  # vertex index of the axis point, counted from the tip
    point: np.ndarray  # (row, col)
    direction: np.ndarray  # unit (east, north), pointing out of the end
    half: float  # road half-width near the end, metres


def _end_axis(g: PixelGraph, n: int, reach_m: float) -> _EndAxis:
    (e,) = g.inc[n]
    rc, hw, _ = g.oriented(e, n)
    cum = np.concatenate([[0.0], np.cumsum(g.scale.segment_lengths(rc))])
    # The road thins where a gap cuts it: take the half-width of the whole edge.
    finite = hw[np.isfinite(hw)]
    half = float(np.median(finite)) if finite.size else 0.0
    trim = min(max(2.0 * half, 2.0), cum[-1] / 3.0)
    k = min(int(np.searchsorted(cum, trim)), len(rc) - 1)
    far = int(np.searchsorted(cum, cum[k] + reach_m, side="right"))
    far = min(max(far, k + 2), len(rc))
    # Least-squares direction of the stretch behind the axis point.
    pts = g.scale.to_metres(rc[k:far], rc[k])
    if len(pts) >= 2:
        centred = pts - pts.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        direction = vt[0]
        if float(direction @ (pts[0] - pts[-1])) < 0:
            direction = -direction
    else:
        direction = np.zeros(2)
    return _EndAxis(n, k, rc[k].copy(), direction, half)


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = math.hypot(a[0], a[1]), math.hypot(b[0], b[1])
    if na == 0 or nb == 0:
        return math.pi
    return math.acos(max(-1.0, min(1.0, float(a @ b) / (na * nb))))


class _Bridger:
    """Bridges gaps at dead ends, straight or along the best probabilities.

    First end to end: pairs of dead ends at most ``gap_m`` apart whose directions
    both agree with the bridge within ``gap_angle_deg``, cheapest first (distance,
    weighted by the angles), each end used once. Then end to line: a dead end that
    points at another line within ``gap_m`` (a T junction hidden by a tree) is
    joined to it. Pairs already joined over the network within three bridge
    lengths are left alone (that would only close a tiny loop). A bridged end
    loses its hook: the bridge starts at its axis point.
    """

    def __init__(self, g: PixelGraph, source: RoadSource | None, options: VectorizeOptions) -> None:
        self.g = g
        self.source = source
        self.gap = options.gap_m
        self.max_angle = math.radians(options.gap_angle_deg)
        self.reach = max(4.0, options.gap_m / 2.0)

    def _network_distance(self, a: int, targets: list[int], limit: float) -> dict[int, float]:
        """Network distances (metres) from node ``a`` to ``targets``, up to ``limit``."""
        dist = {a: 0.0}
        heap = [(0.0, a)]
        found: dict[int, float] = {}
        want = set(targets)
        while heap:
            d, x = heapq.heappop(heap)
            if d > dist.get(x, math.inf):
                continue
            if x in want:
                found[x] = d
            for e in self.g.inc[x]:
                y = self.g.other(e, x)
                nd = d + self.g.edges[e].length
                if nd < dist.get(y, math.inf) and nd <= limit:
                    dist[y] = nd
                    heapq.heappush(heap, (nd, y))
        return found

    def run(self) -> int:
        if self.gap <= 0:
            return 0
        g = self.g
        ends = sorted(n for n in g.inc if g.degree(n) == 1)
        if not ends:
            return 0
        axes = {n: _end_axis(g, n, self.reach) for n in ends}
        made = self._end_to_end(ends, axes)
        ends = [n for n in ends if n in g.inc and g.degree(n) == 1]
        made += self._end_to_edge(ends, axes)
        return made

    def _end_to_end(self, ends: list[int], axes: dict[int, _EndAxis]) -> int:
        g = self.g
        pts = np.array([g.pos[n] for n in ends])
        tree = cKDTree(pts @ g.scale.center.T)
        slack = g.scale.max_pixel_m / max(g.scale.min_pixel_m, 1e-12)
        cands = []
        widest = max((ax.half for ax in axes.values()), default=0.0)
        for i, j in sorted(tree.query_pairs((self.gap + 2 * widest) * slack)):
            a, b = ends[i], ends[j]
            ea, eb = axes[a], axes[b]
            tip = g.scale.to_metres(g.pos[b][None], g.pos[a])[0]
            # Thinning rounds each end back by about a half-width: the gap in the
            # mask is the distance between the tips less the two half-widths.
            if math.hypot(tip[0], tip[1]) - ea.half - eb.half > self.gap:
                continue
            vec = g.scale.to_metres(eb.point[None], ea.point)[0]
            dist = math.hypot(vec[0], vec[1])
            if dist == 0:
                continue
            ang_a = _angle(ea.direction, vec)
            ang_b = _angle(eb.direction, -vec)
            # A lateral tolerance of a half-width: short gaps are otherwise too
            # sensitive to a metre of noise across the road.
            allowed = self.max_angle + math.atan2(max(ea.half, eb.half, 1.0), dist)
            if ang_a > allowed or ang_b > allowed:
                continue
            # The two roads must continue each other, not meet at a corner.
            if _angle(ea.direction, -eb.direction) > 1.5 * self.max_angle:
                continue
            cost = dist * (1.0 + (ang_a + ang_b) / allowed)
            cands.append((cost, a, b, dist))
        cands.sort()
        used: set[int] = set()
        made = 0
        for _, a, b, dist in cands:
            if a in used or b in used:
                continue
            if b in self._network_distance(a, [b], 3.0 * dist + 1.0):
                continue
            used.update((a, b))
            self._bridge(self._trim(axes[a]), self._trim(axes[b]))
            made += 1
        return made

    def _end_to_edge(self, ends: list[int], axes: dict[int, _EndAxis]) -> int:
        """Bridge ends that point at the side of another line (a hidden T junction).

        Targets are found on the graph as it stands, then each target edge is split
        once at all the vertices that ends chose on it.
        """
        g = self.g
        if not ends or not g.edges:
            return 0
        eids = sorted(g.edges)
        verts = np.concatenate([g.edges[e].rc for e in eids])
        owner = np.concatenate([np.full(len(g.edges[e].rc), e) for e in eids])
        index = np.concatenate([np.arange(len(g.edges[e].rc)) for e in eids])
        vhalf = np.concatenate([g.edges[e].hw for e in eids])
        widest = float(np.nanmax(vhalf)) if np.isfinite(vhalf).any() else 0.0
        tree = cKDTree(verts @ g.scale.center.T)
        slack = g.scale.max_pixel_m / max(g.scale.min_pixel_m, 1e-12)
        targets: list[tuple[int, int, int]] = []  # (end, edge, vertex)
        for a in ends:
            (own,) = g.inc[a]
            ax = axes[a]
            reach = self.gap + ax.half + widest
            near = np.asarray(
                tree.query_ball_point(g.pos[a] @ g.scale.center.T, reach * slack), dtype=int
            )
            near = near[owner[near] != own] if near.size else near
            if near.size == 0:
                continue
            tip = g.scale.to_metres(verts[near], g.pos[a])
            vec = g.scale.to_metres(verts[near], ax.point)
            dist = np.hypot(vec[:, 0], vec[:, 1])
            with np.errstate(invalid="ignore", divide="ignore"):
                ang = np.arccos(np.clip((vec @ ax.direction) / dist, -1.0, 1.0))
                allowed = self.max_angle + np.arctan2(max(ax.half, 1.0), dist)
            side = np.nan_to_num(vhalf[near], nan=0.0)
            gap = np.hypot(tip[:, 0], tip[:, 1]) - ax.half - side
            ok = (gap <= self.gap) & (dist > 0) & (ang <= allowed)
            if not ok.any():
                continue
            pick = np.flatnonzero(ok)
            pick = pick[np.lexsort((near[pick], dist[pick]))]
            k = int(pick[0])
            e, vk, d = int(owner[near[k]]), int(index[near[k]]), float(dist[k])
            edge = g.edges[e]
            offs = g.scale.segment_lengths(edge.rc)
            along_u, along_v = float(offs[:vk].sum()), float(offs[vk:].sum())
            known = self._network_distance(a, [edge.u, edge.v], 3.0 * d + 1.0)
            via = min(known.get(edge.u, math.inf) + along_u, known.get(edge.v, math.inf) + along_v)
            if via <= 3.0 * d + 1.0:
                continue  # already joined nearby: this would only close a tiny loop
            targets.append((a, e, vk))
        if not targets:
            return 0
        node_at: dict[tuple[int, int], int] = {}
        by_edge: dict[int, list[int]] = {}
        for _, e, vk in targets:
            by_edge.setdefault(e, []).append(vk)
        # Trim the ends first: a target may lie on another end's own edge.
        starts = {a: self._trim(axes[a]) for a, _, _ in targets}
        for e, ks in sorted(by_edge.items()):
            if e not in g.edges:
                continue
            node_at.update({(e, k): n for k, n in self._split(e, sorted(set(ks))).items()})
        made = 0
        for a, e, vk in targets:
            b = node_at.get((e, vk))
            if b is not None and b != starts[a] and starts[a] in g.inc:
                self._bridge(starts[a], b)
                made += 1
        return made

    def _trim(self, axis: _EndAxis) -> int:
        """Cut a dead end back to its axis point; returns the new end node."""
        g = self.g
        n = axis.node
        if axis.k == 0 or n not in g.inc or g.degree(n) != 1:
            return n
        (e,) = g.inc[n]
        rc, hw, pr = g.oriented(e, n)
        other = g.other(e, n)
        k = min(axis.k, len(rc) - 2)
        if k <= 0:
            return n
        bridged = g.edges[e].bridged
        g.remove_edge(e)
        g.remove_node(n)
        hw_k = float(hw[k]) if math.isfinite(hw[k]) else 0.0
        w = g.add_node(rc[k], hw_k, float(pr[k]) if pr is not None else math.nan)
        hw_new = hw[k:].copy()
        hw_new[0] = np.nan
        g.add_edge(w, other, rc[k:].copy(), hw_new, None if pr is None else pr[k:].copy(), bridged)
        return w

    def _split(self, e: int, ks: list[int]) -> dict[int, int]:
        """Split edge ``e`` at vertices ``ks``; returns the node for each vertex.

        Vertices within two pixels of an end of the edge use that end's node.
        """
        g = self.g
        edge = g.edges[e]
        cum = np.concatenate([[0.0], np.cumsum(g.scale.segment_lengths(edge.rc))])
        snap = 2.0 * g.scale.max_pixel_m
        result: dict[int, int] = {}
        cuts = []
        for k in ks:
            if cum[k] <= snap:
                result[k] = edge.u
            elif cum[-1] - cum[k] <= snap:
                result[k] = edge.v
            else:
                cuts.append(k)
        if not cuts:
            return result
        g.remove_edge(e)
        prev_node, prev_k = edge.u, 0
        for k in [*cuts, len(edge.rc) - 1]:
            if k == len(edge.rc) - 1:
                node = edge.v
            else:
                hw_k = edge.hw[k]
                pr_k = float(edge.prob[k]) if edge.prob is not None else math.nan
                node = g.add_node(edge.rc[k], float(hw_k) if math.isfinite(hw_k) else 0.0, pr_k)
                result[k] = node
            hw = edge.hw[prev_k : k + 1].copy()
            hw[0] = hw[-1] = np.nan
            pr = None if edge.prob is None else edge.prob[prev_k : k + 1]
            g.add_edge(prev_node, node, edge.rc[prev_k : k + 1], hw, pr, edge.bridged)
            prev_node, prev_k = node, k
        return result

    def _bridge(self, a: int, b: int) -> None:
        g = self.g
        pa, pb = g.pos[a], g.pos[b]
        rc = np.stack([pa, pb])
        prob = None
        if g.with_prob and self.source is not None:
            rc, prob = self._best_path(pa, pb)
            prob[0], prob[-1] = g.nprob[a], g.nprob[b]
        hw = np.full(len(rc), np.nan)
        g.add_edge(a, b, rc, hw, prob, bridged=True)

    def _best_path(self, pa: np.ndarray, pb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The path of highest road probability between two pixels, in a corridor."""
        from skimage.graph import MCP_Geometric

        assert self.source is not None
        src = self.source
        ia = np.rint(pa).astype(int)
        ib = np.rint(pb).astype(int)
        span = int(np.abs(ia - ib).max())
        pad = max(4, span // 2)
        r0 = max(0, min(ia[0], ib[0]) - pad)
        r1 = min(src.height, max(ia[0], ib[0]) + pad + 1)
        c0 = max(0, min(ia[1], ib[1]) - pad)
        c1 = min(src.width, max(ia[1], ib[1]) + pad + 1)
        values = src.read(r0, r1, c0, c1)
        # Cost per metre -log(p): the path of highest probability (the product of
        # the probabilities along it), plus a little length so that it stays short
        # across confident road.
        cost = -np.log(np.clip(np.nan_to_num(values.astype(float), nan=0.0), 0.01, 1.0)) + 0.05
        jac = self.g.scale.jacobian(np.array([pa[0]]), np.array([pa[1]]))[0]
        sampling = (float(np.hypot(*jac[:, 0])), float(np.hypot(*jac[:, 1])))
        mcp = MCP_Geometric(cost, fully_connected=True, sampling=sampling)
        start = (int(ia[0] - r0), int(ia[1] - c0))
        end = (int(ib[0] - r0), int(ib[1] - c0))
        mcp.find_costs([start], [end])
        path = np.asarray(mcp.traceback(end), float)
        probs = values[path[:, 0].astype(int), path[:, 1].astype(int)].astype(float)
        path[:, 0] += r0
        path[:, 1] += c0
        path[0], path[-1] = pa, pb
        return path, probs


def refine_junctions(g: PixelGraph, min_zone_m: float = 1.0) -> int:
    """Move each junction to where its roads' center lines meet.

    Thinning puts a junction where the skeleton's branches meet, which for a T is
    pulled into the stem by about a quarter of the crossing road's width. For each
    incident edge a straight line is fitted (least squares) to its vertices just
    outside the junction zone (the road's half-width around the node); the node
    moves to the point nearest to all these lines when that point lies inside the
    zone, and the edges then run straight from it to their first vertex outside.

    Returns:
        The number of junctions moved.
    """
    moved = 0
    for n in sorted(g.inc):
        if n not in g.inc or g.degree(n) < 3:
            continue
        zone = max(g.rad[n], min_zone_m)
        span = max(2.0 * zone, 4.0)
        origin = g.pos[n]
        jac = g.scale.jacobian(np.array([origin[0]]), np.array([origin[1]]))[0]
        normal = np.zeros((2, 2))
        rhs = np.zeros(2)
        ends: list[tuple[int, bool, int]] = []  # (edge, from its start, first vertex kept)
        fits = 0
        for e in dict.fromkeys(g.inc[n]):
            edge = g.edges[e]
            for forward in (True, False) if edge.u == edge.v else (edge.u == n,):
                rc = edge.rc if forward else edge.rc[::-1]
                cum = np.concatenate([[0.0], np.cumsum(g.scale.segment_lengths(rc))])
                k = int(np.searchsorted(cum, zone))
                ends.append((e, forward, k))
                sel = (cum >= zone) & (cum <= zone + span)
                if np.count_nonzero(sel) < 3 or cum[-1] < zone + 1.0:
                    continue
                pts = (rc[sel] - origin) @ jac.T
                centre = pts.mean(axis=0)
                _, _, vt = np.linalg.svd(pts - centre, full_matrices=False)
                proj = np.eye(2) - np.outer(vt[0], vt[0])
                normal += proj
                rhs += proj @ centre
                fits += 1
        if fits < 2 or np.linalg.cond(normal) > 1e3:
            continue
        target = np.linalg.solve(normal, rhs)
        if math.hypot(target[0], target[1]) > zone:
            continue
        new_pos = origin + np.linalg.solve(jac, target)
        if any(k >= len(g.edges[e].rc) - 1 for e, _, k in ends):
            continue  # an edge would vanish into the junction
        g.pos[n] = new_pos
        for e, forward, k in ends:
            edge = g.edges[e]
            if forward:
                edge.rc = np.concatenate([new_pos[None], edge.rc[max(k, 1) :]])
                edge.hw = np.concatenate([[np.nan], edge.hw[max(k, 1) :]])
                if edge.prob is not None:
                    edge.prob = np.concatenate([edge.prob[:1], edge.prob[max(k, 1) :]])
            else:
                stop = len(edge.rc) - max(k, 1)
                edge.rc = np.concatenate([edge.rc[:stop], new_pos[None]])
                edge.hw = np.concatenate([edge.hw[:stop], [np.nan]])
                if edge.prob is not None:
                    edge.prob = np.concatenate([edge.prob[:stop], edge.prob[-1:]])
            edge.length = g.scale.length(edge.rc)
        moved += 1
    return moved


def _drop_fragments(g: PixelGraph, min_m: float) -> None:
    """Remove connected pieces of the network shorter than ``min_m`` in all."""
    if min_m <= 0 or not g.edges:
        return
    nodes = sorted(g.inc)
    index = {n: i for i, n in enumerate(nodes)}
    pairs = np.array([(index[e.u], index[e.v]) for e in g.edges.values()], np.int64)
    comp = _components(len(nodes), pairs)
    total = np.zeros(comp.max() + 1)
    for e in g.edges.values():
        total[comp[index[e.u]]] += e.length
    for e in sorted(g.edges):
        edge = g.edges[e]
        if total[comp[index[edge.u]]] < min_m:
            g.remove_edge(e)
    g.drop_isolated_nodes()


def extend_to_border(g: PixelGraph, shape: tuple[int, int]) -> int:
    """Move dead ends on the raster's first or last row or column to its edge.

    Pixel centres stop half a pixel short of the edge; a road that leaves the
    raster should reach it, so that networks of neighbouring tiles meet.
    """
    h, w = shape
    moved = 0
    for n in sorted(g.inc):
        if g.degree(n) != 1:
            continue
        r, c = g.pos[n]
        new = np.array([r, c])
        new[0] = -0.5 if r <= 0 else (h - 0.5 if r >= h - 1 else r)
        new[1] = -0.5 if c <= 0 else (w - 0.5 if c >= w - 1 else c)
        if np.array_equal(new, g.pos[n]):
            continue
        (e,) = g.inc[n]
        edge = g.edges[e]
        g.pos[n] = new
        edge.rc = edge.rc.copy()
        edge.rc[0 if edge.u == n else -1] = new
        edge.length = g.scale.length(edge.rc)
        moved += 1
    return moved


def clean_graph(g: PixelGraph, options: VectorizeOptions, source: RoadSource | None) -> None:
    """Prune spurs, merge junctions, bridge gaps, drop fragments, refine junctions
    and extend roads to the raster's edge, in place."""
    _drop_small_loops(g, options.merge_m)
    g.merge_all_degree2()
    prune_spurs(g, options.spur_m)
    merge_junctions(g, options.merge_m)
    prune_spurs(g, options.spur_m)
    _Bridger(g, source, options).run()
    g.merge_all_degree2()
    prune_spurs(g, options.spur_m)
    _drop_fragments(g, options.spur_m)
    g.merge_all_degree2()
    refine_junctions(g)
    if source is not None:
        extend_to_border(g, (source.height, source.width))


# --------------------------------------------------------------------------------------
# Lines: simplification, map coordinates, attributes
# --------------------------------------------------------------------------------------


def douglas_peucker(points: np.ndarray, tolerance: float) -> np.ndarray:
    """Indices of the vertices that Douglas-Peucker keeps (first and last always).

    Args:
        points: (n, 2) coordinates in a metric frame.
        tolerance: largest allowed distance of a dropped vertex from the line.
    """
    n = len(points)
    if n <= 2 or tolerance <= 0:
        return np.arange(n)
    keep = np.zeros(n, bool)
    keep[0] = keep[-1] = True
    stack = [(0, n - 1)]
    while stack:
        i, j = stack.pop()
        if j - i < 2:
            continue
        seg = points[i + 1 : j]
        a, b = points[i], points[j]
        d = b - a
        norm = math.hypot(d[0], d[1])
        if norm == 0:
            dist = np.hypot(seg[:, 0] - a[0], seg[:, 1] - a[1])
        else:
            dist = np.abs(d[0] * (seg[:, 1] - a[1]) - d[1] * (seg[:, 0] - a[0])) / norm
        k = int(np.argmax(dist))
        if dist[k] > tolerance:
            m = i + 1 + k
            keep[m] = True
            stack.append((i, m))
            stack.append((m, j))
    return np.flatnonzero(keep)


def _finish(g: PixelGraph, options: VectorizeOptions, transform: Affine, crs: Any) -> RoadNetwork:
    """Number the nodes, orient and simplify the edges, and build the lines."""
    nodes = sorted(g.inc, key=lambda n: (g.pos[n][0], g.pos[n][1]))
    number = {n: i for i, n in enumerate(nodes)}
    items = []
    for edge in g.edges.values():
        u, v = number[edge.u], number[edge.v]
        rc, hw, pr = edge.rc, edge.hw, edge.prob
        if (u, tuple(rc[0])) > (v, tuple(rc[-1])):
            u, v = v, u
            rc, hw = rc[::-1], hw[::-1]
            pr = None if pr is None else pr[::-1]
        items.append((u, v, tuple(rc[1]) if len(rc) > 1 else (), len(rc), rc, hw, pr))
    items.sort(key=lambda t: (t[0], t[1], t[2], t[3]))
    lines = []
    length = np.zeros(len(items))
    width = np.full(len(items), np.nan)
    pmean = np.full(len(items), np.nan) if g.with_prob else None
    pmin = np.full(len(items), np.nan) if g.with_prob else None
    starts = np.zeros(len(items), np.int64)
    stops = np.zeros(len(items), np.int64)
    for i, (u, v, _, _, rc, hw, pr) in enumerate(items):
        keep = _simplify(g.scale, rc, options.simplify_m)
        sub = rc[keep]
        x, y = _to_map(transform, sub)
        lines.append(LineString(np.stack([x, y], axis=1)))
        length[i] = g.scale.length(sub)
        finite = hw[np.isfinite(hw)]
        if finite.size:
            width[i] = 2.0 * float(np.median(finite))
        if pr is not None and pmean is not None and pmin is not None:
            fin = pr[np.isfinite(pr)]
            if fin.size:
                pmean[i] = float(fin.mean())
                pmin[i] = float(fin.min())
        starts[i], stops[i] = u, v
    pos = np.array([g.pos[n] for n in nodes]).reshape(-1, 2)
    nx, ny = _to_map(transform, pos)
    degree = np.array([g.degree(n) for n in nodes], np.int64)
    return RoadNetwork(
        lines=tuple(lines),
        length_m=length,
        width_m=width,
        start_node=starts,
        end_node=stops,
        prob_mean=pmean,
        prob_min=pmin,
        nodes=np.stack([nx, ny], axis=1) if len(nodes) else np.zeros((0, 2)),
        node_degree=degree,
        crs=crs,
        transform=transform,
    )


def _simplify(scale: GroundScale, rc: np.ndarray, tolerance: float) -> np.ndarray:
    """Indices of the vertices Douglas-Peucker keeps, in a local metric frame.

    GEOS does the work (the vertex index rides along as Z); the same as
    :func:`douglas_peucker`, in C.
    """
    if tolerance <= 0 or len(rc) <= 2:
        return np.arange(len(rc))
    pts = scale.to_metres(rc, rc[len(rc) // 2])
    line = shapely.linestrings(np.column_stack([pts, np.arange(len(rc), dtype=float)]))
    kept = shapely.get_coordinates(
        shapely.simplify(line, tolerance, preserve_topology=False), include_z=True
    )
    closed = np.array_equal(rc[0], rc[-1])
    if len(kept) < (4 if closed else 2):
        return np.arange(len(rc))
    return kept[:, 2].astype(np.int64)


def _to_map(transform: Affine, rc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r = rc[:, 0] + 0.5
    c = rc[:, 1] + 0.5
    x = transform.a * c + transform.b * r + transform.c
    y = transform.d * c + transform.e * r + transform.f
    return x, y


# --------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------


def _resolve_thresholds(source: RoadSource, options: VectorizeOptions) -> _Thresholds:
    if source.kind == "mask":
        return _Thresholds(0.5, 0.5)
    high = options.threshold
    if high is None:
        high = source.default_threshold if source.default_threshold is not None else 0.5
    low = options.low if options.low is not None else high
    if low > high:
        raise RoadsegError(
            f"low threshold {low} is above the threshold {high}; hysteresis needs low <= threshold"
        )
    return _Thresholds(low, high)


def extract_network(
    source: RoadSource,
    options: VectorizeOptions = VectorizeOptions(),
    *,
    temp_dir: str | os.PathLike[str] | None = None,
    stats: dict[str, Any] | None = None,
    client: Any = None,
    retries: int = DEFAULT_RETRIES,
) -> RoadNetwork:
    """Run the vector flow on a road source and return the network in memory.

    With a Dask ``client``, the chunk steps run as tasks on its cluster: reading,
    thresholding and labelling each chunk for the cleaning (pass 1, which returns
    per-label statistics and the labels along the chunk's borders), applying the
    decisions (pass 2, which writes the chunk's cleaned mask to its own 1-bit file
    in a hidden folder ``.roadseg-*`` in ``temp_dir``, removed at the end, also on
    error) and thinning each window (which reads the chunk files it overlaps and
    returns its core's graph structure: node pixels, chain pieces in walking order
    with their half-widths and probabilities, and where they leave the core). The
    client numbers and joins the labels, decides, grows the halo, stitches the
    chunks' graphs and cleans the graph with the same code as the in-process run,
    so the network is the same, bit for bit.

    What the client holds (in-process and on Dask alike): never the sorted
    skeleton with its neighbour tables and link matrices, only the chunks' graph
    structures (the node pixels, about 24 bytes each, the chain pixels in walking
    order, 20 bytes each, and 24 bytes per chain piece; while stitching, a copy or
    two of the chain pixels in the order of the graph's edges) and the graph; the
    :class:`PixelGraph` keeps every chain pixel in its edges' paths (32 bytes
    each), which the graph cleaning needs. So the client's memory grows with the
    network's pixel length, not with the raster's area.

    Workers open the raster by its absolute path, so they must see it, and
    ``temp_dir``, under the same paths (a shared file system).

    Why the cleaned mask goes through files rather than being recomputed by the
    thinning tasks: a window (chunk plus halo) overlaps up to nine chunks, whose
    labels and decisions it would have to compute again; a 1-bit file per chunk
    costs an eighth of a byte per pixel of disk and is read once per window.

    Args:
        source: an :class:`ArraySource` or :class:`RasterSource` (on Dask: a
            :class:`RasterSource` of a file the workers can open).
        options: see :class:`VectorizeOptions` (``overwrite`` is not used here).
        temp_dir: folder for the 1-bit temporary mask of chunked runs (on Dask it
            must be shared with the workers; default: the system's temporary
            folder, which only a LocalCluster's workers share).
        stats: if given, filled with timings and counts (for benchmarks).
        client: a ``distributed.Client`` to run the chunk steps on; None: here.
        retries: retries of a Dask task that raised an unexpected exception.

    Returns:
        The :class:`RoadNetwork` (possibly empty).

    Raises:
        RoadsegError: invalid options; a Dask task that failed after its retries;
            a ``client`` with a source that is not a raster file.
        UnsupportedRasterError: values that are neither a mask nor probabilities.
    """
    options.validate()
    if client is not None and not isinstance(source, RasterSource):
        raise RoadsegError(
            "running on Dask needs a raster file the workers can open (a RasterSource); "
            f"got {type(source).__name__}"
        )
    t0 = time.perf_counter()
    th = _resolve_thresholds(source, options)
    height, width = source.height, source.width
    scale = GroundScale(source.transform, source.crs, height, width)
    chunks = _chunks(height, width, options.chunk_size)
    single = len(chunks) == 1
    row_area = scale.row_area_units()
    cleaner = _Cleaner(
        source,
        chunks,
        th,
        options.min_area_m2 / _AREA_UNIT_M2,
        options.hole_area_m2 / _AREA_UNIT_M2,
        row_area,
        _KEEP_EXTENT_M,
        scale.center,
    )
    bar = _progress(options.progress, 3 * len(chunks))
    try:
        bar.set_description("cleaning")

        def restart(halo: int) -> None:
            log.info("a window needs a wider halo; thinning again with %d px", halo)
            bar.total += len(chunks)
            bar.refresh()

        if client is None:
            cleaner.analyse(lambda: bar.update(1))
            store = _MaskStore(height, width, single, Path(temp_dir) if temp_dir else None)
            try:
                for chunk in chunks:
                    store.write(chunk.r0, chunk.c0, cleaner.apply(chunk))
                    bar.update(1)
                t1 = time.perf_counter()
                bar.set_description("thinning")
                skel = _skeletonize_chunks(
                    store, chunks, options.halo, scale, lambda: bar.update(1), restart,
                    probs=source if source.kind == "probability" else None,
                )  # fmt: skip
            finally:
                store.close()
        else:
            assert isinstance(source, RasterSource)  # checked above
            mapper = _DaskMap(client, retries)
            spec = source.spec()
            cleaner.analyse(
                lambda: bar.update(1), mapper(_analyse_chunk, chunks, spec, cleaner.params)
            )
            folder = tempfile.mkdtemp(prefix=".roadseg-", dir=temp_dir)
            try:
                files = _ChunkFiles(os.path.abspath(folder), height, width, options.chunk_size)
                items = [(chunk, *cleaner.decisions(chunk)) for chunk in chunks]
                for _ in mapper(_clean_chunk, items, spec, cleaner.params, files):
                    bar.update(1)
                t1 = time.perf_counter()
                bar.set_description("thinning")
                skel = _skeletonize_chunks(
                    files, chunks, options.halo, scale, lambda: bar.update(1), restart,
                    mapper, spec if source.kind == "probability" else None,
                )  # fmt: skip
            finally:
                shutil.rmtree(folder, ignore_errors=True)
        t2 = time.perf_counter()
        bar.set_description("graph")
        with_prob = source.kind == "probability" and skel.pixels > 0
        graph = _merge_chunk_graphs(skel.parts, (height, width), scale, with_prob)
        t3 = time.perf_counter()
        clean_graph(graph, options, source)
        network = _finish(graph, options, source.transform, source.crs)
    finally:
        bar.close()
    if stats is not None:
        stats.update(
            clean_s=t1 - t0,
            skeleton_s=t2 - t1,
            graph_s=time.perf_counter() - t2,
            stitch_s=t3 - t2,
            skeleton_pixels=skel.pixels,
            halo=skel.halo,
            chunks=len(chunks),
        )
    return network


class _NoBar:
    total = 0

    def update(self, n: int = 1) -> None:
        pass

    def set_description(self, text: str) -> None:
        pass

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(enabled: bool, total: int) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="chunk", leave=False)


def vectorize_array(
    values: np.ndarray,
    transform: Affine | None = None,
    crs: Any = None,
    options: VectorizeOptions = VectorizeOptions(),
    *,
    nodata: float | None = None,
    kind: RasterKind | None = None,
) -> RoadNetwork:
    """The road network of an in-memory mask (bool/int) or probability (float) array.

    Raises:
        RoadsegError: invalid options or values (see :func:`extract_network`).
    """
    source = ArraySource(values, transform, crs, nodata=nodata, kind=kind)
    return extract_network(source, options)


def default_output_path(input_path: str | os.PathLike[str]) -> Path:
    """``<stem>_roads.gpkg`` beside the input (``<stem>.gpkg`` if the stem already
    ends in ``_roads``, as ``roadseg predict``'s outputs do)."""
    src = Path(input_path)
    stem = src.stem if src.stem.endswith("_roads") else f"{src.stem}_roads"
    return src.with_name(f"{stem}.gpkg")


def vectorize_raster(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    options: VectorizeOptions = VectorizeOptions(),
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    retries: int = DEFAULT_RETRIES,
) -> VectorizeResult:
    """Vectorize a road mask or probability GeoTIFF into a GeoPackage or GeoJSON file.

    ``roadseg predict --vectorize`` calls this on its finished probability file.
    The output format follows the extension: ``.gpkg`` (in the raster's CRS) or
    ``.geojson`` / ``.json`` (WGS84 longitude/latitude, RFC 7946). The file appears
    whole or not at all.

    With ``workers`` or ``scheduler`` the chunk steps (reading, thresholding and
    labelling for the cleaning, thinning) run as Dask tasks and the result is the
    same as in-process, bit for bit (see :func:`extract_network`). Workers need
    roadseg installed and must see the input and the output's folder under the
    same paths; the cleaned mask passes through a hidden ``.roadseg-*`` folder
    beside the output, removed at the end.

    Args:
        input_path: single-band road mask (non-zero = road) or road probabilities
            (uint8 as ``roadseg predict`` writes them, or float 0..1).
        output_path: the vector file to write.
        options: see :class:`VectorizeOptions`.
        workers: run the chunk steps on a Dask LocalCluster of this many worker
            processes on this machine, each limited to ``cores // workers`` threads.
        scheduler: run them on the running Dask cluster at this address
            (``tcp://host:8786``).
        retries: retries of a Dask task that raised an unexpected exception.

    Returns:
        A :class:`VectorizeResult`.

    Raises:
        InvalidRasterError: the input is missing or not a raster.
        UnsupportedRasterError: several bands, or values neither mask nor probability.
        OutputError: the output exists (without ``overwrite``), its folder is
            missing, or it is the input.
        VectorError: GeoJSON asked for a raster with no CRS, or an unknown extension.
        MissingDependencyError: ``workers`` or ``scheduler`` without Dask installed.
        RoadsegError: invalid options; both ``workers`` and ``scheduler``; an
            unreachable scheduler; a Dask task that failed after its retries.
    """
    from roadseg import __version__
    from roadseg.raster_io import check_output, gdal_env, open_raster
    from roadseg.vector_io import output_format, write_lines

    started = time.perf_counter()
    input_path = Path(input_path)
    output_path = Path(output_path)
    options.validate()
    where = "in-process"
    if workers is not None or scheduler is not None:
        from roadseg.distributed import import_distributed

        if workers is not None and scheduler is not None:
            raise RoadsegError("give either a number of workers or a scheduler address, not both")
        if workers is not None and workers < 1:
            raise RoadsegError(f"the number of workers must be at least 1, got {workers}")
        import_distributed()  # fail before any file is looked at
        where = f"Dask scheduler {scheduler}" if scheduler else f"{workers} local worker processes"
    fmt = output_format(output_path)
    check_output(output_path, overwrite=options.overwrite, inputs=(input_path,), what="output")
    notes: list[str] = []
    with gdal_env(), open_raster(input_path) as ds:
        source = RasterSource(ds, input_path.name)
        if source.crs is None:
            if fmt == "geojson":
                raise VectorError(
                    f"{input_path.name} has no CRS, so its coordinates cannot be sent to "
                    "longitude/latitude for GeoJSON (RFC 7946); write a GeoPackage (.gpkg) "
                    "instead, or set the CRS (gdal_edit.py -a_srs EPSG:...)"
                )
            notes.append(
                f"{input_path.name} has no CRS; lines are in its map units (pixel space if "
                "it has no transform either) and lengths assume metres"
            )
            log.warning(notes[-1])
        if source.kind == "mask" and (options.threshold is not None or options.low is not None):
            notes.append(f"{input_path.name} is a mask; --threshold and --low are not used")
            log.warning(notes[-1])
        th = _resolve_thresholds(source, options)
        stats: dict[str, Any] = {}
        with warnings.catch_warnings(), contextlib.ExitStack() as stack:
            warnings.simplefilter("ignore")
            client = None
            if where != "in-process":
                from roadseg.distributed import dask_client

                client = stack.enter_context(dask_client(workers=workers, scheduler=scheduler))
            network = extract_network(
                source,
                options,
                temp_dir=output_path.parent,
                stats=stats,
                client=client,
                retries=retries,
            )
        tags = {
            "ROADSEG_VERSION": __version__,
            "ROADSEG_INPUT": input_path.name,
            "ROADSEG_INPUT_KIND": source.kind,
            "ROADSEG_THRESHOLD": f"{th.high:g}" if source.kind == "probability" else "",
            "ROADSEG_LOW": f"{th.low:g}" if th.low < th.high else "",
            "ROADSEG_MIN_AREA_M2": f"{options.min_area_m2:g}",
            "ROADSEG_HOLE_AREA_M2": f"{options.hole_area_m2:g}",
            "ROADSEG_SPUR_M": f"{options.spur_m:g}",
            "ROADSEG_MERGE_M": f"{options.merge_m:g}",
            "ROADSEG_GAP_M": f"{options.gap_m:g}",
            "ROADSEG_GAP_ANGLE_DEG": f"{options.gap_angle_deg:g}",
            "ROADSEG_SIMPLIFY_M": f"{options.simplify_m:g}",
        }
        tags = {k: v for k, v in tags.items() if v}
        for key in ("ROADSEG_MODEL", "ROADSEG_MODEL_SHA256", "ROADSEG_TILE_SIZE"):
            if key in source.tags:
                tags[key] = source.tags[key]
        write_lines(
            output_path,
            network.lines,
            network.properties(),
            network.crs,
            layer="roads",
            metadata=tags,
            overwrite=options.overwrite,
        )
    return VectorizeResult(
        output=output_path,
        lines=len(network),
        junctions=network.junctions,
        length_m=network.total_length_m,
        kind=source.kind,
        threshold=th.high if source.kind == "probability" else None,
        halo=int(stats.get("halo", options.halo)),
        seconds=time.perf_counter() - started,
        warnings=tuple(notes),
        tags=tags,
        where=where,
    )


def iter_lines(network: RoadNetwork) -> Iterator[tuple[LineString, dict[str, Any]]]:
    """Each line with its attributes as a dict."""
    props = network.properties()
    for i, line in enumerate(network.lines):
        yield line, {k: v[i] for k, v in props.items()}
