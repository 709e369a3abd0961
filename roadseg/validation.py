"""Scoring a model on validation crops: the best-F1 threshold and the metrics at it."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from roadseg.errors import DatasetError
from roadseg.thresholds import F1Sweep


def validation_metrics(
    infer: Callable[[np.ndarray], np.ndarray],
    crops: Iterator[tuple[np.ndarray, np.ndarray]],
    batch_size: int,
) -> dict[str, Any]:
    """The best-F1 threshold and the metrics at it, over validation crops.

    Probabilities are kept (float16) until the threshold is known, then scored
    with :mod:`roadseg.metrics`, so the metrics at the threshold are exact.

    Args:
        infer: ``(N, H, W, bands)`` float32 -> ``(N, H, W)`` probabilities.
        crops: ``(image, mask (H, W, 1))`` pairs.
        batch_size: crops per model call.

    Returns:
        ``threshold``, ``f1``, ``precision``, ``recall``, ``iou``,
        ``relaxed_precision``, ``relaxed_recall``, ``breakeven``, ``crops``,
        ``road_fraction``.
    """
    from roadseg.metrics import MetricsAccumulator, float_levels, quantize_probabilities

    sweep = F1Sweep()
    probs: list[np.ndarray] = []
    truths: list[np.ndarray] = []
    batch_x: list[np.ndarray] = []
    batch_y: list[np.ndarray] = []

    def flush() -> None:
        if not batch_x:
            return
        prob = infer(np.stack(batch_x))
        for p, t in zip(prob, batch_y, strict=True):
            sweep.update(p, t)
            probs.append(p.astype(np.float16))
            truths.append(t)
        batch_x.clear()
        batch_y.clear()

    for image, mask in crops:
        batch_x.append(image)
        batch_y.append(mask[..., 0] > 0.5)
        if len(batch_x) == batch_size:
            flush()
    flush()
    if not probs:
        raise DatasetError("no validation crop could be read")
    threshold, f1, precision, recall = sweep.best()
    # The threshold is inserted into the k/254 grid unless it already lies on it
    # (0.5 does), so the number of levels depends on it.
    levels = float_levels(threshold)
    acc = MetricsAccumulator(n_levels=len(levels))
    for p, t in zip(probs, truths, strict=True):
        acc.add(quantize_probabilities(p.astype(np.float32), threshold), t)
    result = acc.result(levels, threshold)
    road = float(np.mean([t.mean() for t in truths]))

    def r(x: float) -> float | None:
        return None if not math.isfinite(x) else round(float(x), 4)

    return {
        "threshold": round(threshold, 4),
        "f1": r(result.f1),
        "precision": r(result.precision),
        "recall": r(result.recall),
        "iou": r(result.iou),
        "relaxed_precision": r(result.relaxed_precision),
        "relaxed_recall": r(result.relaxed_recall),
        "rho": result.rho,
        "breakeven": r(result.breakeven),
        "crops": len(probs),
        "road_fraction": round(road, 4),
        "f1_sweep": r(f1),
        "sweep_precision": r(precision),
        "sweep_recall": r(recall),
    }
