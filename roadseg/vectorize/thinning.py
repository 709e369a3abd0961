"""Guo & Hall's (1989) parallel two-subiteration thinning, run sparsely on the
pixels that can change: :func:`thin` (the same result as
:func:`skimage.morphology.thin`) and :func:`thin_framed`, the in-place form that
the halo windows use (it counts the sub-iterations a window needs)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


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


def neighbour_code(img: np.ndarray) -> np.ndarray:
    """For each pixel, bit k set when its neighbour in direction k is set (uint8)."""
    kernel = np.array([[8, 4, 2], [16, 0, 1], [32, 64, 128]], dtype=np.uint8)
    return ndi.correlate(img, kernel, mode="constant")


def thin_framed(img: np.ndarray, code: np.ndarray | None = None) -> int:
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
    code = (neighbour_code(img) if code is None else code).reshape(-1)
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
    thin_framed(img)
    return img[1:-1, 1:-1].astype(bool)
