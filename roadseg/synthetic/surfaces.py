"""Pads: flat rotated rectangles (or ellipses) painted on the ground or over the roads,
never changing the road mask: driveways, swimming pools, car parks, plazas, yards and
compound walls under the roads; crosswalks and sand drifts over them.

A pad is one row of a dict of arrays: ``cx``, ``cy`` (centre), ``ang`` (direction of
its u axis), ``a``, ``b`` (half sides along u and v), ``rgb`` (n, 3) and ``pattern``
(one of the constants below).
"""

from __future__ import annotations

import math

import numpy as np

from roadseg.synthetic.canvas import Canvas
from roadseg.synthetic.elements import Objects, make_objects, no_objects

_F32 = np.float32

#: Pad patterns.
FLAT, ZEBRA, POOL, PARKING, SOFT, WALL, TILES = range(7)

_KEYS = ("cx", "cy", "ang", "a", "b", "rgb", "pattern")


def pad_lists() -> dict[str, list]:
    """Empty per-key lists to collect pads in."""
    return {k: [] for k in _KEYS}


def add_pad(
    pads: dict[str, list],
    c: np.ndarray,
    ang: float,
    a: float,
    b: float,
    rgb: np.ndarray | tuple[float, float, float],
    pattern: int,
) -> None:
    """Append one pad to lists made by :func:`pad_lists`."""
    pads["cx"].append(float(c[0]))
    pads["cy"].append(float(c[1]))
    pads["ang"].append(float(ang))
    pads["a"].append(float(a))
    pads["b"].append(float(b))
    pads["rgb"].append(np.asarray(rgb, dtype=np.float64).reshape(3))
    pads["pattern"].append(int(pattern))


def pad_objects(pads: dict[str, list]) -> Objects:
    """The collected pads as :class:`Objects` with pixel boxes."""
    if not pads["cx"]:
        return no_objects()
    data = {k: np.asarray(v) for k, v in pads.items()}
    data["rgb"] = data["rgb"].reshape(-1, 3)
    return make_objects(data, np.hypot(data["a"], data["b"]) + 2)


def paint_pads(
    cv: Canvas, pads: Objects, img: np.ndarray, n_mid: np.ndarray, n_fine: np.ndarray
) -> None:
    """Paint pads in order (later pads over earlier ones)."""
    d = pads.data
    for k, rs, cs in cv.clip(pads.box):
        X = cv.xs[cs][None, :] - _F32(d["cx"][k])
        Y = cv.ys[rs][:, None] - _F32(d["cy"][k])
        ca, sa = _F32(math.cos(d["ang"][k])), _F32(math.sin(d["ang"][k]))
        u = X * ca + Y * sa
        v = Y * ca - X * sa
        ha, hb = _F32(d["a"][k]), _F32(d["b"][k])
        pat = int(d["pattern"][k])
        rgb = np.asarray(d["rgb"][k], dtype=_F32)
        fine = n_fine[rs, cs]
        if pat == SOFT:
            q = (u / ha) ** 2 + (v / hb) ** 2
            edge = _F32(1) - q + _F32(0.6) * (n_mid[rs, cs] - _F32(0.5))
            alpha = np.clip(edge * _F32(2.5), 0, 1) * _F32(0.85)
            col = np.broadcast_to(rgb, (*u.shape, 3)) * (_F32(0.94) + _F32(0.12) * fine)[..., None]
        else:
            # Distance inside the rectangle's edge (> 0 inside), antialiased.
            inner = np.minimum(ha - np.abs(u), hb - np.abs(v))
            alpha = np.clip(inner + _F32(0.5), 0, 1)
            bright = _F32(0.95) + _F32(0.1) * fine
            if pat == ZEBRA:
                stripe = (u + ha) - np.floor((u + ha) / _F32(4)) * _F32(4)
                alpha = alpha * np.where(stripe < _F32(2), _F32(0.85), _F32(0))
            elif pat == POOL:
                deck = inner < _F32(1.6)
                bright = np.where(deck, _F32(1), bright + _F32(0.12) * (v / hb))
                rgb_deck = np.array([205, 202, 192], dtype=_F32)
                col = np.where(deck[..., None], rgb_deck, rgb * bright[..., None])
            elif pat == PARKING:
                fv = (v + hb) - np.floor((v + hb) / _F32(34)) * _F32(34)
                stall = (fv < _F32(10)) | ((fv > _F32(24)) & (fv < _F32(34)))
                fu = (u + ha) - np.floor((u + ha) / _F32(5)) * _F32(5)
                line = stall & (fu < _F32(0.7)) & (inner > _F32(1))
                bright = np.where(line, _F32(1.9), bright)
            elif pat == WALL:
                alpha = alpha * np.clip(_F32(1.8) - inner, 0, 1)
                bright = bright * _F32(1.08)
            elif pat == TILES:
                fu = u - np.floor(u / _F32(7)) * _F32(7)
                fv = v - np.floor(v / _F32(7)) * _F32(7)
                bright = np.where((fu < _F32(0.6)) | (fv < _F32(0.6)), bright * _F32(0.9), bright)
            else:
                bright = np.where(inner < _F32(1), bright * _F32(0.9), bright)
            if pat != POOL:
                col = rgb * bright[..., None]
        a = alpha[..., None]
        sub = img[rs, cs]
        sub[...] = sub * (1 - a) + col * a
