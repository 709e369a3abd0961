"""The ground under everything: fields, meadows, bare soil and their boundaries on a
Voronoi of parcels, forest canopy, and town gardens and yards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from roadseg.synthetic.canvas import Canvas
from roadseg.synthetic.elements import Layout
from roadseg.synthetic.noise import cells, hash2, mix, salt_for, unit
from roadseg.synthetic.palettes import Style

_F32 = np.float32


def background(
    cv: Canvas, lay: Layout, n_mid: np.ndarray, n_fine: np.ndarray, grain: np.ndarray
) -> np.ndarray:
    """Fields, meadows, bare soil and forest on a jittered-grid Voronoi of parcels."""
    st = lay.style
    parcels = _nearest_parcels(cv, st.parcel, lay.seed)
    looks = _parcel_looks(st, lay.seed, parcels)
    img = _paint_parcels(cv, st, lay.seed, parcels, looks, n_mid, n_fine, grain)
    _paint_field_edges(img, st, lay.seed, parcels, n_fine)
    return img


@dataclass(frozen=True)
class _Parcels:
    """The parcel seeds around a window and the two nearest of every pixel."""

    gy_all: np.ndarray  # lattice row of each seed, flat
    gx_all: np.ndarray  # lattice column of each seed, flat
    size: int  # lattice cell size (px)
    sx: np.ndarray  # (ny, nx) seed x
    sy: np.ndarray  # (ny, nx) seed y
    d1: np.ndarray  # squared distance to the nearest seed
    d2: np.ndarray  # squared distance to the second nearest seed
    id1: np.ndarray  # flat index of the nearest seed
    id2: np.ndarray  # flat index of the second nearest seed


def _nearest_parcels(cv: Canvas, P: int, seed: int) -> _Parcels:
    """The two nearest parcel seeds of every pixel (seeds jittered in a P-px grid)."""
    rows, cols = cv.rows, cv.cols
    gys = np.arange(rows[0] // P - 1, rows[-1] // P + 2)
    gxs = np.arange(cols[0] // P - 1, cols[-1] // P + 2)
    ny, nx = len(gys), len(gxs)
    h = hash2(gys[:, None], gxs[None, :], salt_for(seed, "parcel"))
    sx = (gxs[None, :] + 0.2 + 0.6 * unit(h)) * P
    sy = (gys[:, None] + 0.2 + 0.6 * unit(mix(h ^ np.uint32(0x5BD1E995)))) * P
    sx = np.broadcast_to(sx, (ny, nx)).astype(np.float64)
    sy = np.broadcast_to(sy, (ny, nx)).astype(np.float64)
    xs = cols + 0.5
    ys = rows + 0.5
    pcx = cols // P
    pcy = rows // P
    d1 = np.full((cv.h, cv.w), np.inf, dtype=_F32)
    d2 = np.full((cv.h, cv.w), np.inf, dtype=_F32)
    id1 = np.zeros((cv.h, cv.w), dtype=np.int32)
    id2 = np.zeros((cv.h, cv.w), dtype=np.int32)
    # Each pixel takes the two nearest seeds among its own and the 8 neighbouring
    # cells, visited in global order: the same for every window.
    for iy in range(ny):
        gy = gys[iy]
        ra, rb = np.searchsorted(pcy, gy - 1, "left"), np.searchsorted(pcy, gy + 1, "right")
        if ra >= rb:
            continue
        for ix in range(nx):
            gx = gxs[ix]
            ca, cb = np.searchsorted(pcx, gx - 1, "left"), np.searchsorted(pcx, gx + 1, "right")
            if ca >= cb:
                continue
            dxx = ((xs[ca:cb] - sx[iy, ix]) ** 2).astype(_F32)
            dyy = ((ys[ra:rb] - sy[iy, ix]) ** 2).astype(_F32)
            d = dyy[:, None] + dxx[None, :]
            k = iy * nx + ix
            D1 = d1[ra:rb, ca:cb]
            D2 = d2[ra:rb, ca:cb]
            I1 = id1[ra:rb, ca:cb]
            I2 = id2[ra:rb, ca:cb]
            m1 = d < D1
            m2 = d < D2
            # d < D1 implies d < D2: the old nearest becomes second, else d is.
            np.copyto(I2, k, where=m2)
            np.copyto(I2, I1, where=m1)
            np.minimum(D2, np.maximum(d, D1), out=D2)
            np.minimum(D1, d, out=D1)
            np.copyto(I1, k, where=m1)
    gy_all = np.broadcast_to(gys[:, None], (ny, nx)).ravel()
    gx_all = np.broadcast_to(gxs[None, :], (ny, nx)).ravel()
    return _Parcels(gy_all, gx_all, P, sx, sy, d1, d2, id1, id2)


@dataclass(frozen=True)
class _ParcelLooks:
    """Per-parcel attributes, one entry per seed."""

    cls: np.ndarray  # 0 field, 1 meadow, 2 soil, 3 forest
    pal: np.ndarray  # (n, 3) base colour
    cos_t: np.ndarray  # direction of the crop rows
    sin_t: np.ndarray
    period: np.ndarray  # crop row spacing (px)
    row_amp: np.ndarray  # crop row contrast
    strip_w: np.ndarray  # width of sub-field strips (0: none)
    tram: np.ndarray  # tramline spacing (0: none)
    mottle: np.ndarray  # strength of the mid-scale texture


def _parcel_looks(st: Style, seed: int, parcels: _Parcels) -> _ParcelLooks:
    """Per-parcel attributes, hashed from global cell coordinates."""
    gy_all, gx_all = parcels.gy_all, parcels.gx_all
    u = [unit(hash2(gy_all, gx_all, salt_for(seed, f"attr{i}"))) for i in range(8)]
    pc = np.cumsum(st.p_classes)
    cls = np.searchsorted(pc, u[0] * _F32(pc[-1]), side="right").astype(np.int8)
    pal = st.fields[(u[1] * len(st.fields)).astype(int) % len(st.fields)]
    pal = np.where((cls == 1)[:, None], st.meadow[(u[1] * len(st.meadow)).astype(int)], pal)
    pal = np.where((cls == 2)[:, None], st.soil[(u[1] * len(st.soil)).astype(int)], pal)
    pal = pal * (0.9 + 0.2 * u[2])[:, None]
    aligned = u[3] < 0.65
    theta = np.where(
        aligned,
        st.field_angle + np.floor(u[4] * 2) * math.pi / 2 + (u[4] - 0.5) * 0.1,
        u[4] * math.pi,
    )
    cos_t = np.cos(theta).astype(_F32)
    sin_t = np.sin(theta).astype(_F32)
    period = (2.5 + 6.0 * u[5]).astype(_F32)
    row_amp = np.where(cls == 0, 0.04 + 0.2 * u[6], 0).astype(_F32)
    strip_w = np.where(u[7] < 0.45, 0, 16 + 80 * u[5]).astype(_F32)
    tram = np.where((cls == 0) & (u[7] > 0.6), 36 + 24 * u[2], 0).astype(_F32)
    mottle = (0.15 + 0.45 * u[6]).astype(_F32)
    return _ParcelLooks(cls, pal, cos_t, sin_t, period, row_amp, strip_w, tram, mottle)


def _paint_parcels(
    cv: Canvas,
    st: Style,
    seed: int,
    parcels: _Parcels,
    looks: _ParcelLooks,
    n_mid: np.ndarray,
    n_fine: np.ndarray,
    grain: np.ndarray,
) -> np.ndarray:
    """Each pixel in its nearest parcel's colour, with crop rows, strips, tramlines
    and texture."""
    id1 = parcels.id1
    cls, pal, cos_t, sin_t = looks.cls, looks.pal, looks.cos_t, looks.sin_t
    period, row_amp, strip_w, tram = looks.period, looks.row_amp, looks.strip_w, looks.tram
    mottle = looks.mottle
    gy_all, gx_all = parcels.gy_all, parcels.gx_all
    X = cv.xs[None, :]
    Y = cv.ys[:, None]
    c = cos_t[id1]
    s = sin_t[id1]
    q = Y * c - X * s  # across the rows
    f = q / period[id1]
    tri = np.abs((f - np.floor(f)) * _F32(2) - _F32(1))
    bright = _F32(1) + row_amp[id1] * (tri - _F32(0.5)) * _F32(2)
    # Strips: parallel sub-fields with their own shade (and sometimes crop).
    sw = strip_w[id1]
    has_strip = sw > 0
    strip = np.floor(q / np.where(has_strip, sw, _F32(1))).astype(np.int32)
    keys = _cell_key(gy_all, gx_all).astype(np.uint32) ^ np.uint32(salt_for(seed, "strip"))
    hs = unit(mix(strip.astype(np.uint32) * np.uint32(0x9E3779B1) + keys[id1]))
    bright *= np.where(has_strip, _F32(0.9) + _F32(0.2) * hs, _F32(1))
    img = pal.astype(_F32)[id1]
    swap = has_strip & (hs < 0.22) & (cls[id1] == 0)
    if swap.any():
        alt = st.fields[(hs[swap] * 97).astype(int) % len(st.fields)]
        img[swap] = alt
    tr = tram[id1]
    ft = np.where(tr > 0, q - np.floor(q / np.where(tr > 0, tr, _F32(1))) * tr, _F32(99))
    tramline = (ft < _F32(1.1)) | ((ft > _F32(3.6)) & (ft < _F32(4.7)))
    bright *= np.where(tramline, _F32(1.1), _F32(1))
    texture = _F32(1) + mottle[id1] * (n_mid - _F32(0.5))
    texture *= _F32(1) + _F32(0.26) * (n_fine - _F32(0.5))
    texture *= _F32(1) + _F32(0.14) * (grain - _F32(0.5))
    img *= (bright * texture)[..., None]
    return img


def _paint_field_edges(
    img: np.ndarray, st: Style, seed: int, parcels: _Parcels, n_fine: np.ndarray
) -> None:
    """Field boundaries: grass margins, hedges and bare strips (road lookalikes)."""
    P = parcels.size
    d1, d2, id1, id2 = parcels.d1, parcels.d2, parcels.id1, parcels.id2
    sx, sy = parcels.sx, parcels.sy
    gy_all, gx_all = parcels.gy_all, parcels.gx_all
    # Distance to the boundary between the two nearest parcels (their bisector) is
    # (d2 - d1) / (2 |s2 - s1|); only pixels near a boundary need it exactly.
    max_sep = 2 * math.sqrt(2) * P
    cand = np.nonzero(d2 - d1 < _F32(2 * 3.0 * max_sep))
    i1, i2 = id1[cand], id2[cand]
    sxf, syf = sx.ravel(), sy.ravel()
    sep = np.sqrt((sxf[i2] - sxf[i1]) ** 2 + (syf[i2] - syf[i1]) ** 2).astype(_F32)
    bd_c = (d2[cand] - d1[cand]) / (_F32(2) * np.maximum(sep, _F32(1e-3)))
    close = bd_c < _F32(3.0)
    near = (cand[0][close], cand[1][close])
    if close.any():
        bd = bd_c[close]
        k1 = _cell_key(gy_all, gx_all)[id1[near]]
        k2 = _cell_key(gy_all, gx_all)[id2[near]]
        hb = unit(hash2(np.minimum(k1, k2), np.maximum(k1, k2), salt_for(seed, "edge")))
        half = np.where(hb < 0.4, 0, np.where(hb < 0.75, 0.7 + hb, np.where(hb < 0.9, 2.4, 1.0)))
        b = bd
        inside = b < half
        edge_rgb = np.where(
            (hb < 0.75)[:, None],
            st.meadow[0] * 0.95,
            np.where((hb < 0.9)[:, None], st.forest[0] * 1.15, st.soil[0] * 1.18),
        ).astype(_F32)
        hedge = (hb >= 0.75) & (hb < 0.9)
        edge_rgb *= np.where(hedge, 0.75 + 0.5 * n_fine[near], 0.9 + 0.2 * n_fine[near])[:, None]
        alpha = np.where(inside, np.clip(half - b + 0.5, 0, 1), 0).astype(_F32)[:, None]
        img[near] = img[near] * (1 - alpha) + edge_rgb * alpha


def _cell_key(gy: np.ndarray, gx: np.ndarray) -> np.ndarray:
    """A global integer key of a parcel cell."""
    return gy.astype(np.int64) * 100003 + gx.astype(np.int64)


def paint_forest(cv: Canvas, lay: Layout, img: np.ndarray, n_big: np.ndarray) -> None:
    """Forest canopy where the forest noise is high: crowns from cellular noise."""
    st = lay.style
    yy, xx = np.nonzero(n_big > _F32(st.forest_thr))
    if not yy.size:
        return
    px = cv.xs[xx]
    py = cv.ys[yy]
    cell = st.forest_cell
    d, dx, dy, val = cells(px, py, cell, salt_for(lay.seed, "crowns"))
    rad = _F32(cell * 0.62) * (_F32(0.8) + _F32(0.4) * val)
    rel = np.minimum(d / rad, _F32(1.3))
    sun_x, sun_y = st.sun
    lit = (dx * _F32(sun_x) + dy * _F32(sun_y)) / (rad + _F32(1e-3))
    bright = _F32(0.95) - _F32(0.35) * rel * rel + _F32(0.35) * lit
    bright = np.where(rel > 1, _F32(0.4), bright)
    tone = st.forest[(val * len(st.forest)).astype(int) % len(st.forest)]
    tone = tone * (_F32(0.85) + _F32(0.3) * val)[:, None]
    # Soft edge: the canopy thins out over the first 4 % of the noise range.
    edge = np.clip((n_big[yy, xx] - _F32(st.forest_thr)) / _F32(0.04), 0, 1)
    gap = (edge < 1) & (rel > 0.75)
    alpha = np.where(gap, 0, 1).astype(_F32)[:, None]
    img[yy, xx] = img[yy, xx] * (1 - alpha) + tone * np.maximum(bright, 0.2)[:, None] * alpha


def paint_town_ground(
    cv: Canvas, lay: Layout, img: np.ndarray, n_mid: np.ndarray, n_fine: np.ndarray
) -> None:
    """Gardens, lawns and yards in plots aligned with each town's street grid."""
    st = lay.style
    for ti, town in enumerate(lay.towns):
        r = town.radius * 1.15
        c0 = max(int(town.cx - r) - cv.col0, 0)
        c1 = min(int(town.cx + r) + 1 - cv.col0, cv.w)
        r0 = max(int(town.cy - r) - cv.row0, 0)
        r1 = min(int(town.cy + r) + 1 - cv.row0, cv.h)
        if c0 >= c1 or r0 >= r1:
            continue
        X = cv.xs[c0:c1][None, :] - _F32(town.cx)
        Y = cv.ys[r0:r1][:, None] - _F32(town.cy)
        dist = np.sqrt(X * X + Y * Y)
        lim = _F32(town.radius) * (_F32(0.9) + _F32(0.35) * n_mid[r0:r1, c0:c1])
        inside = dist < lim
        if not inside.any():
            continue
        ca, sa = _F32(math.cos(town.angle)), _F32(math.sin(town.angle))
        u = X * ca + Y * sa
        v = Y * ca - X * sa
        pu, pv = _F32(town.plot[0]), _F32(town.plot[1])
        iu = np.floor(u / pu).astype(np.int64)
        iv = np.floor(v / pv).astype(np.int64)
        hp = unit(hash2(iu, iv, salt_for(lay.seed, f"plot{ti}")))
        # Mostly lawns and gardens of slightly different greens; a few paved yards.
        lawn = st.meadow[0] * _F32(1.04)
        garden = (st.meadow[0] + st.crown[0]) * _F32(0.5)
        paved = np.array([150, 146, 138], dtype=_F32)
        rgb = np.where((hp < 0.62)[..., None], lawn, np.where((hp < 0.9)[..., None], garden, paved))
        rgb = rgb * (_F32(0.92) + _F32(0.16) * hp)[..., None]
        fu = u - np.floor(u / pu) * pu
        fv = v - np.floor(v / pv) * pv
        fence = (fu < _F32(1.0)) | (fv < _F32(1.0))
        tex = _F32(1) + _F32(0.25) * (n_fine[r0:r1, c0:c1] - _F32(0.5))
        tex += _F32(0.2) * (n_mid[r0:r1, c0:c1] - _F32(0.5))
        tex = tex * np.where(fence, _F32(0.88), _F32(1))
        rgb = rgb * tex[..., None]
        alpha = np.clip((lim - dist) / _F32(12), 0, 1)[..., None]
        sub = img[r0:r1, c0:c1]
        sub[...] = sub * (1 - alpha) + rgb * alpha
