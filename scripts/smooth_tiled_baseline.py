"""A minimal version of the widely used in-memory "smooth tiled predictions" approach.

Written for the side-by-side benchmark only (scripts/bench_predict.py): the
whole image is read into RAM as float32, reflect-padded, every patch of every
D4 variant is cut out and predicted, patches are weighted with a second-order
spline window, summed back, un-transformed and averaged. This is how the
common notebooks do it (window 224, 2 subdivisions = 50 % overlap, 8 variants).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def spline_window(size: int, power: int = 2) -> np.ndarray:
    """The notebooks' squared-spline window (2-D, values in (0, 1])."""
    quarter = size // 4
    x = np.arange(size, dtype=np.float64)
    tri = 1 - np.abs(2 * (x - (size - 1) / 2) / (size - 1))
    outer = (np.abs(2 * tri) ** power) / 2
    inner = 1 - (np.abs(2 * (tri - 1)) ** power) / 2
    w = np.where((x >= quarter) & (x < size - quarter), inner, outer)
    w = np.maximum(w / w.mean(), 1e-3)
    return np.outer(w, w).astype(np.float32)


def _d4(img: np.ndarray, tta: bool) -> list[np.ndarray]:
    if not tta:
        return [img]
    out = []
    for flip in (False, True):
        base = img[:, ::-1] if flip else img
        out += [np.rot90(base, k) for k in range(4)]
    return out


def _undo(pred: np.ndarray, i: int, tta: bool) -> np.ndarray:
    if not tta:
        return pred
    flip, k = divmod(i, 4)
    pred = np.rot90(pred, -k)
    return pred[:, ::-1] if flip else pred


def predict_in_memory(
    image: np.ndarray,
    infer: Callable[[np.ndarray], np.ndarray],
    window: int = 224,
    overlap: int = 112,
    batch: int = 8,
    tta: bool = True,
) -> np.ndarray:
    """Probabilities for ``image`` (H, W, C float32 in [0, 1]), all in memory."""
    h, w, _ = image.shape
    pad = window - (window - overlap)  # the notebooks pad by window * (1 - 1/subdivisions)
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    weights = spline_window(window)
    step = window - overlap
    results = []
    for i, variant in enumerate(_d4(padded, tta)):
        vh, vw, _ = variant.shape
        ys = list(range(0, vh - window + 1, step))
        xs = list(range(0, vw - window + 1, step))
        if ys[-1] != vh - window:
            ys.append(vh - window)
        if xs[-1] != vw - window:
            xs.append(vw - window)
        # Like the notebooks: every patch of the variant is cut out first.
        patches = np.stack(
            [variant[y : y + window, x : x + window] for y in ys for x in xs]
        ).astype(np.float32)
        preds = np.concatenate(
            [
                infer(np.ascontiguousarray(patches[j : j + batch]))
                for j in range(0, len(patches), batch)
            ]
        )
        del patches
        acc = np.zeros((vh, vw), dtype=np.float32)
        norm = np.zeros((vh, vw), dtype=np.float32)
        k = 0
        for y in ys:
            for x in xs:
                acc[y : y + window, x : x + window] += preds[k] * weights
                norm[y : y + window, x : x + window] += weights
                k += 1
        results.append(_undo(acc / norm, i, tta))
    out = np.mean(results, axis=0)
    return out[pad : pad + h, pad : pad + w]
