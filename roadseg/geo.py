"""Metres on the ground for any CRS: the one home of ground distances.

* :class:`GroundScale`: the local Jacobian from pixel steps to metres east and
  north anywhere on a grid (lengths, widths, areas and tolerances of the vector
  flow);
* :func:`pixel_size_on_ground`: a raster's ground sample distance at its centre
  (predict's resampling to the model's GSD, dataset scanning);
* :func:`to_metric`: line sets in any CRS sent into one UTM frame (network
  metrics).

All measure through longitude/latitude on the WGS84 ellipsoid. numpy, affine and
rasterio only at import time; shapely is imported by :func:`to_metric` alone.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from affine import Affine

from roadseg.errors import VectorError

if TYPE_CHECKING:  # pragma: no cover
    import rasterio
    from shapely.geometry.base import BaseGeometry

#: WGS84 ellipsoid, for metres per degree of latitude and longitude.
_WGS84_A = 6378137.0
_WGS84_F = 1.0 / 298.257223563
_WGS84_E2 = _WGS84_F * (2.0 - _WGS84_F)

#: Areas are summed as integers (square centimetres) so that chunked and unchunked
#: sums are exactly equal whatever order they run in.
AREA_UNIT_M2 = 1e-4


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
        return np.rint(np.abs(j00 * j11 - j01 * j10) / AREA_UNIT_M2)

    def area_ratio(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """sqrt(pixel area here / pixel area at the centre): a local length factor."""
        if self.constant:
            return np.ones(np.asarray(rows).size)
        j00, j01, j10, j11 = self.components(rows, cols)
        return np.sqrt(np.abs(j00 * j11 - j01 * j10) / abs(np.linalg.det(self.center)))


# --------------------------------------------------------------------------- GSD


def pixel_size_on_ground(src: rasterio.io.DatasetReader) -> tuple[float, float] | None:
    """Metres on the ground covered by one pixel step along x and y.

    Measured at the raster's centre: the centre pixel and its right and
    lower neighbours are taken to WGS 84 longitude/latitude and the steps
    measured on the ellipsoid. This gives the true ground size for any CRS:
    metres in UTM, feet in a State Plane CRS, degrees in EPSG:4326 and the
    stretched "metres" of Web Mercator (which overstate the ground size by
    1 / cos(latitude)). Rotated transforms are handled too.

    Returns:
        ``(x, y)`` in metres, or None when the raster has no CRS or an
        identity transform (no georeferencing to measure).
    """
    if src.crs is None or src.transform.is_identity:
        return None
    t = src.transform
    cx, cy = src.width / 2.0, src.height / 2.0
    points = [t @ (cx, cy), t @ (cx + 1.0, cy), t @ (cx, cy + 1.0)]
    try:
        from rasterio.warp import transform as reproject_points

        lons, lats = reproject_points(
            src.crs, "EPSG:4326", [p[0] for p in points], [p[1] for p in points]
        )
    except Exception:  # a local or engineering CRS: fall back on its units
        return _size_from_units(src)
    if not all(math.isfinite(v) for v in (*lons, *lats)):
        return _size_from_units(src)
    return (
        _ellipsoid_distance(lons[0], lats[0], lons[1], lats[1]),
        _ellipsoid_distance(lons[0], lats[0], lons[2], lats[2]),
    )


def _size_from_units(src: rasterio.io.DatasetReader) -> tuple[float, float] | None:
    """Pixel size in metres from the CRS's linear unit, or None without one."""
    t = src.transform
    try:
        _, factor = src.crs.linear_units_factor
    except Exception:  # no linear unit: not measurable
        return None
    return math.hypot(t.a, t.d) * factor, math.hypot(t.b, t.e) * factor


def _ellipsoid_distance(lon0: float, lat0: float, lon1: float, lat1: float) -> float:
    """Metres between two nearby points on the WGS 84 ellipsoid.

    Uses the local radii of curvature (meridional and prime vertical), exact
    to a few parts per million over the length of a pixel.
    """
    phi = math.radians((lat0 + lat1) / 2.0)
    w = math.sqrt(1.0 - _WGS84_E2 * math.sin(phi) ** 2)
    meridional = _WGS84_A * (1.0 - _WGS84_E2) / w**3
    prime_vertical = _WGS84_A / w
    dlon = (lon1 - lon0 + 180.0) % 360.0 - 180.0  # across the antimeridian too
    dx = math.radians(dlon) * prime_vertical * math.cos(phi)
    dy = math.radians(lat1 - lat0) * meridional
    return math.hypot(dx, dy)


# --------------------------------------------------------------------------- lines


def _utm_for(lines: Sequence[BaseGeometry], crs: Any) -> Any:
    """The UTM CRS of the centre of ``lines`` (given in ``crs``)."""
    import shapely
    from rasterio.crs import CRS
    from rasterio.warp import transform as warp_transform

    minx, miny, maxx, maxy = shapely.total_bounds(np.asarray(lines, dtype=object))
    lon, lat = warp_transform(crs, "EPSG:4326", [(minx + maxx) / 2], [(miny + maxy) / 2])
    zone = int(math.floor((lon[0] + 180.0) / 6.0)) % 60 + 1
    return CRS.from_epsg((32600 if lat[0] >= 0 else 32700) + zone)


def to_metric(
    groups: Sequence[tuple[Sequence[BaseGeometry], Any]],
) -> list[list[BaseGeometry]]:
    """Send several line sets, each with its CRS, into one metric frame.

    The frame is the UTM zone of the first non-empty set's centre. Sets with no
    CRS are taken to be in metres already (allowed only if all lack one).

    Raises:
        VectorError: some sets have a CRS and others do not, or GDAL cannot
            transform them.
    """
    import shapely

    from roadseg.vector_io import reproject_lines  # shapely, only when lines are measured

    have = [crs is not None for lines, crs in groups if len(lines)]
    if not any(have):
        return [list(lines) for lines, _ in groups]
    if not all(have):
        raise VectorError(
            "one of the line sets has no CRS, so it cannot be compared with the other; "
            "give both a CRS"
        )
    ref = next((lines, crs) for lines, crs in groups if len(lines))
    try:
        utm = _utm_for(ref[0], ref[1])
    except Exception:
        utm = None
    out: list[list[BaseGeometry]] = []
    for lines, crs in groups:
        if not len(lines):
            out.append([])
        elif utm is None:
            factor = float(crs.linear_units_factor[1])
            out.append([shapely.transform(g, lambda xy, f=factor: xy * f) for g in lines])
        else:
            out.append(reproject_lines(list(lines), crs, utm))
    return out
