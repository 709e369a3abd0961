"""Rendering of one window: noise fields, land cover, water, tracks, roads (and the
road mask), islands, buildings, cars, trees and their shadows, then the camera response.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import correlate1d

from roadseg.synthetic.canvas import Canvas, rasterise_lines
from roadseg.synthetic.elements import GRAVEL, Layout
from roadseg.synthetic.landcover import background, paint_forest, paint_town_ground
from roadseg.synthetic.noise import fbm, hash2, salt_for, value_noise, white
from roadseg.synthetic.surfaces import paint_pads

#: Pixels rendered beyond each side of a window so the blur sees real neighbours.
_HALO = 2

_F32 = np.float32


def _water(cv: Canvas, lay: Layout, img: np.ndarray, n_mid: np.ndarray, n_fine: np.ndarray) -> None:
    """Rivers with irregular, darker banks."""
    if not lay.rivers:
        return
    e, owner, _ = rasterise_lines(cv, lay.river_segs)
    e = e + _F32(3.5) * (n_mid - _F32(0.5))  # irregular banks
    near = e < _F32(3.5)
    if not near.any():
        return
    rgb = np.array([r.rgb for r in lay.rivers], dtype=_F32)[owner[near]]
    ee = e[near]
    water = rgb * (_F32(0.92) + _F32(0.16) * n_fine[near])[:, None]
    bank = lay.style.forest[1] * _F32(1.1) * (_F32(0.8) + _F32(0.4) * n_fine[near])[:, None]
    a_w = np.clip(_F32(0.5) - ee, 0, 1)[:, None]
    a_b = np.clip(_F32(3.0) - ee, 0, 1)[:, None] * _F32(0.8)
    px = img[near]
    px = px * (1 - a_b) + bank * a_b
    img[near] = px * (1 - a_w) + water * a_w


def _track_paint(
    cv: Canvas, lay: Layout, img: np.ndarray, n_mid: np.ndarray, grain: np.ndarray
) -> None:
    """Dirt tracks (two wheel ruts when wide); never in the mask."""
    if not lay.tracks:
        return
    e, owner, _ = rasterise_lines(cv, lay.track_segs)
    near = e < _F32(0.5)
    if not near.any():
        return
    ee = e[near]
    hw = np.array([t.width / 2 for t in lay.tracks], dtype=_F32)[owner[near]]
    dc = ee + hw  # distance from the track's centre
    rgb = np.array([t.rgb for t in lay.tracks], dtype=_F32)[owner[near]]
    rgb = rgb * (_F32(0.9) + _F32(0.2) * grain[near])[:, None]
    a = np.clip(_F32(0.5) - ee, 0, 1) * (_F32(0.45) + _F32(0.55) * n_mid[near])
    # Wide tracks: two wheel ruts with grass between them.
    a = np.where((hw > 1.3) & (dc < _F32(0.55)), a * _F32(0.35), a)[:, None]
    img[near] = img[near] * (1 - a) + rgb * a


def _road_paint(
    cv: Canvas,
    lay: Layout,
    img: np.ndarray,
    n_mid: np.ndarray,
    n_fine: np.ndarray,
    grain: np.ndarray,
) -> np.ndarray:
    """Paint roads; return the road mask (distance to centreline <= half width)."""
    roads = lay.roads
    if not roads:
        return np.zeros((cv.h, cv.w), dtype=bool)
    marks = np.array([r.marks for r in roads], dtype=bool)
    e, owner, arc = rasterise_lines(cv, lay.road_segs, marks)
    mask = e <= 0
    reach = max([2.0] + [r.side + r.side_gap + 1.0 for r in roads])
    near = e < _F32(reach)
    if not near.any():
        return mask
    o = owner[near]
    ee = e[near]
    hw = np.array([r.width / 2 for r in roads], dtype=_F32)[o]
    surface = np.array([r.surface for r in roads], dtype=np.int8)[o]
    verge = np.array([r.verge for r in roads], dtype=bool)[o]
    rgb = np.array([r.rgb for r in roads], dtype=_F32)[o]
    dc = ee + hw
    gravel = surface == GRAVEL
    sides = np.array([r.side for r in roads], dtype=_F32)
    if sides.any():
        _sidewalks(lay, img, near, ee, o, sides, n_fine)
    tex = _F32(1) + _F32(0.1) * (n_mid[near] - _F32(0.5)) + _F32(0.08) * (n_fine[near] - 0.5)
    tex += np.where(gravel, _F32(0.16), _F32(0.05)) * (grain[near] - _F32(0.5))
    # Wheel ruts on gravel, a darker worn lane band on asphalt.
    rut = np.clip(_F32(1) - np.abs(dc - hw * _F32(0.5)) / _F32(1.2), 0, 1)
    tex -= np.where(gravel, _F32(0.1), _F32(0.04)) * rut
    # Slightly lighter edges (dust, kerbs).
    tex += np.where(ee > -1.0, _F32(0.06), _F32(0))
    col = rgb * tex[:, None]
    if arc is not None and marks.any():
        s = arc[near]
        mk = marks[o]
        dash = (s - np.floor(s / _F32(18)) * _F32(18)) < _F32(8)
        centre = mk & dash & (dc < _F32(0.7))
        edge_line = mk & (hw >= 7) & (dc > hw - _F32(2.0)) & (dc < hw - _F32(1.1))
        lanes = np.array([r.lanes for r in roads], dtype=_F32)[o]
        if lanes.any():
            lw = _F32(2) * hw / np.maximum(lanes, _F32(1))
            f = (hw - dc) / lw
            off = np.abs(f - np.round(f)) * lw
            divider = mk & (lanes > 1) & dash & (off < _F32(0.6)) & (f > 0.5) & (f < lanes - 0.5)
            centre = (centre & (lanes == 0)) | divider
        paint = (centre | edge_line)[:, None]
        col = np.where(paint, col * _F32(0.35) + _F32(0.65 * 225), col)
    alpha = np.clip(_F32(0.5) - ee, 0, 1)
    px = img[near]
    # Verges: a pale dry strip just outside the road (not road).
    vmix = np.where(verge & (ee > 0) & (ee < 1.8), _F32(0.4), _F32(0))[:, None]
    px = px * (1 - vmix) + (px * _F32(0.5) + rgb * _F32(0.2) + _F32(50)) * vmix
    a = alpha[:, None]
    img[near] = px * (1 - a) + col * a
    return mask


def _sidewalks(
    lay: Layout,
    img: np.ndarray,
    near: np.ndarray,
    ee: np.ndarray,
    o: np.ndarray,
    sides: np.ndarray,
    n_fine: np.ndarray,
) -> None:
    """Light concrete sidewalks beside roads that have them (never road)."""
    gap = np.array([r.side_gap for r in lay.roads], dtype=_F32)[o]
    sw = sides[o]
    inner = np.minimum(ee - gap, gap + sw - ee)
    a = (np.clip(inner + _F32(0.5), 0, 1) * (sw > 0))[:, None]
    tone = _F32(188) * (_F32(0.93) + _F32(0.1) * n_fine[near])
    col = np.stack([tone, tone * _F32(0.99), tone * _F32(0.95)], axis=-1)
    img[near] = img[near] * (1 - a) + col * a


def _islands(cv: Canvas, lay: Layout, img: np.ndarray, n_fine: np.ndarray) -> None:
    """Grass on roundabout islands."""
    isl = lay.islands
    if not len(isl):
        return
    grass = lay.style.meadow[0] * _F32(1.1)
    for k, rs, cs in cv.clip(isl.box):
        X = cv.xs[cs][None, :] - _F32(isl.data["cx"][k])
        Y = cv.ys[rs][:, None] - _F32(isl.data["cy"][k])
        d = np.sqrt(X * X + Y * Y)
        a = np.clip(_F32(isl.data["r"][k]) + _F32(0.5) - d, 0, 1)[..., None]
        g = grass * (_F32(0.9) + _F32(0.2) * n_fine[rs, cs])[..., None]
        sub = img[rs, cs]
        sub[...] = sub * (1 - a) + g * a


def _objects_paint(cv: Canvas, lay: Layout, img: np.ndarray, n_fine: np.ndarray) -> None:
    """Shadows of buildings and trees, then roofs, then tree crowns."""
    st = lay.style
    sun_x, sun_y = _F32(st.sun[0]), _F32(st.sun[1])
    shade = np.ones((cv.h, cv.w), dtype=bool)
    over = np.zeros((cv.h, cv.w, 3), dtype=_F32)
    over_a = np.zeros((cv.h, cv.w), dtype=_F32)
    b = lay.buildings
    for k, rs, cs in cv.clip(b.box):
        d = b.data
        X = cv.xs[cs][None, :] - _F32(d["cx"][k])
        Y = cv.ys[rs][:, None] - _F32(d["cy"][k])
        ca, sa = _F32(math.cos(d["ang"][k])), _F32(math.sin(d["ang"][k]))
        ha, hb = _F32(d["a"][k]), _F32(d["b"][k])
        u = X * ca + Y * sa
        v = Y * ca - X * sa
        inside = (np.abs(u) <= ha) & (np.abs(v) <= hb)
        # Shadow: the footprint swept along the shadow vector.
        length = d["height"][k] * st.shadow_len
        su = -float(sun_x * ca + sun_y * sa) * length
        sv = -float(sun_y * ca - sun_x * sa) * length
        lo = np.zeros_like(u)
        hi = np.ones_like(u)
        for coord, comp, half in ((u, su, ha), (v, sv, hb)):
            if abs(comp) < 1e-6:
                ok = np.abs(coord) <= half
                hi = np.where(ok, hi, _F32(-1))
            else:
                t1 = (coord - half) / _F32(comp)
                t2 = (coord + half) / _F32(comp)
                lo = np.maximum(lo, np.minimum(t1, t2))
                hi = np.minimum(hi, np.maximum(t1, t2))
        shadow = lo <= hi
        shade[rs, cs] &= ~(shadow & ~inside)
        roof = np.asarray(d["roof"][k], dtype=_F32)
        if d["gable"][k]:
            # Ridge along the long axis: the two slopes catch different light.
            along_u = d["a"][k] >= d["b"][k]
            across = v if along_u else u
            nx_, ny_ = (-sa, ca) if along_u else (ca, sa)
            facing = float(nx_ * sun_x + ny_ * sun_y)
            lit = np.where(across >= 0, _F32(facing), _F32(-facing))
            bright = _F32(0.92) + _F32(0.22) * lit
            ridge = np.abs(across) < _F32(0.6)
            bright = np.where(ridge, _F32(1.08), bright)
        elif d["car"][k]:
            # A darker glass band across the car.
            glass = (u > ha * _F32(0.15)) & (u < ha * _F32(0.55))
            bright = np.where(glass, _F32(0.45), _F32(1.0))
        else:
            rim = (np.abs(u) > ha - 1.2) | (np.abs(v) > hb - 1.2)
            bright = np.where(rim, _F32(0.8), _F32(1.0))
        bright = bright * (_F32(0.95) + _F32(0.1) * n_fine[rs, cs])
        o = over[rs, cs]
        o[inside] = (bright[..., None] * roof)[inside]
        over_a[rs, cs][inside] = 1
    t = lay.trees
    for k, rs, cs in cv.clip(t.box):
        d = t.data
        X = cv.xs[cs][None, :] - _F32(d["cx"][k])
        Y = cv.ys[rs][:, None] - _F32(d["cy"][k])
        r = _F32(d["r"][k])
        rr = r * (_F32(0.8) + _F32(0.4) * n_fine[rs, cs])
        d2 = X * X + Y * Y
        inside = d2 <= rr * rr
        length = d["height"][k] * st.shadow_len
        shx, shy = -float(sun_x) * length, -float(sun_y) * length
        tt = np.clip((X * _F32(shx) + Y * _F32(shy)) / _F32(max(length * length, 1e-6)), 0, 1)
        qx = X - tt * _F32(shx)
        qy = Y - tt * _F32(shy)
        shade[rs, cs] &= ~((qx * qx + qy * qy <= rr * rr) & ~inside)
        lit = (X * sun_x + Y * sun_y) / r
        bright = _F32(0.78) + _F32(0.3) * lit - _F32(0.25) * d2 / (r * r)
        bright = bright * (_F32(0.85) + _F32(0.3) * n_fine[rs, cs]) * _F32(d["tone"][k])
        rgb = st.crown[int(d["shade"][k]) % len(st.crown)]
        o = over[rs, cs]
        o[inside] = (np.maximum(bright, _F32(0.25))[..., None] * rgb)[inside]
        over_a[rs, cs][inside] = 1
    img *= np.where(shade[..., None], _F32(1), np.array(st.shadow_rgb, dtype=_F32))
    a = over_a[..., None]
    img[...] = img * (1 - a) + over * a


def _finish(cv: Canvas, lay: Layout, img: np.ndarray, n_big: np.ndarray) -> np.ndarray:
    """Camera response: illumination, colour balance, haze, blur, sensor noise."""
    st = lay.style
    grey = (img[..., 0] + img[..., 1] + img[..., 2]) * _F32((1 - st.saturation) / 3)
    img *= _F32(st.saturation)
    img += grey[..., None]
    # Illumination, gains, brightness, contrast about 110 and haze as one affine map.
    gain = np.array(st.gains) * st.brightness * st.contrast * (1 - st.haze)
    offset = 110 * (1 - st.contrast) * (1 - st.haze) + np.array(st.haze_rgb) * st.haze
    img *= (_F32(1) + _F32(0.14) * (n_big - _F32(0.5)))[..., None]
    img *= gain.astype(_F32)
    img += offset.astype(_F32)
    # Each output pixel is the same fixed-order sum over its 5 x 5 neighbours in any
    # window; the halo pixels, which see the edge mode, are cut off below.
    k = np.array(st.blur)
    out = correlate1d(correlate1d(img, k, axis=0, mode="nearest"), k, axis=1, mode="nearest")
    out = out[_HALO:-_HALO, _HALO:-_HALO]
    rows = cv.rows[_HALO:-_HALO]
    cols = cv.cols[_HALO:-_HALO]
    # Luminance noise (triangular, from two bytes of one hash) plus weaker
    # independent noise per channel (three bytes of another).
    salt = salt_for(lay.seed, "sensor")
    h1 = hash2(rows[:, None], cols[None, :], salt)
    h2 = hash2(rows[:, None], cols[None, :], salt + 1)
    byte = np.uint32(255)
    lum = ((h1 & byte) + ((h1 >> np.uint32(8)) & byte)).astype(_F32) - _F32(255)
    out += (lum * _F32(st.noise * 1.6 / 255))[..., None]
    for ch in range(3):
        chan = ((h2 >> np.uint32(8 * ch)) & byte).astype(_F32) - _F32(127.5)
        out[..., ch] += chan * _F32(st.noise / 255)
    return np.clip(out + _F32(0.5), 0, 255).astype(np.uint8)


def render(
    lay: Layout, row_off: int, col_off: int, h: int, w: int
) -> tuple[np.ndarray, np.ndarray]:
    """Image and mask of one window (the whole pipeline, on the window plus halo)."""
    cv = Canvas(row_off - _HALO, col_off - _HALO, h + 2 * _HALO, w + 2 * _HALO)
    seed = lay.seed
    n_big = fbm(cv.rows, cv.cols, 320.0, 4, salt_for(seed, "big"))
    n_forest = fbm(cv.rows, cv.cols, 180.0, 5, salt_for(seed, "forest"))
    # Kilometre-scale swings, so that big scenes have wooded and open regions.
    n_region = value_noise(cv.rows, cv.cols, 1600.0, salt_for(seed, "region"))
    n_forest += (n_region - _F32(0.5)) * _F32(0.3)
    n_mid = fbm(cv.rows, cv.cols, 40.0, 3, salt_for(seed, "mid"))
    n_fine = fbm(cv.rows, cv.cols, 3.0, 2, salt_for(seed, "fine"))
    grain = white(cv.rows, cv.cols, salt_for(seed, "grain"))
    img = background(cv, lay, n_mid, n_fine, grain)
    paint_forest(cv, lay, img, n_forest)
    paint_town_ground(cv, lay, img, n_mid, n_fine)
    _water(cv, lay, img, n_mid, n_fine)
    _track_paint(cv, lay, img, n_mid, grain)
    if len(lay.pads):
        paint_pads(cv, lay.pads, img, n_mid, n_fine)
    mask = _road_paint(cv, lay, img, n_mid, n_fine, grain)
    if len(lay.overlays):
        paint_pads(cv, lay.overlays, img, n_mid, n_fine)
    _islands(cv, lay, img, n_fine)
    _objects_paint(cv, lay, img, n_fine)
    image = _finish(cv, lay, img, n_big)
    return image, mask[_HALO:-_HALO, _HALO:-_HALO].astype(np.uint8)
