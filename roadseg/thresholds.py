"""Choosing a model's default threshold from validation predictions."""

from __future__ import annotations

import numpy as np


class F1Sweep:
    """Accumulates histograms of probabilities over road and non-road pixels,
    then gives precision, recall and F1 at every threshold (1/256 steps)."""

    BINS = 256

    def __init__(self) -> None:
        self.road = np.zeros(self.BINS, dtype=np.int64)
        self.other = np.zeros(self.BINS, dtype=np.int64)

    def update(self, prob: np.ndarray, truth: np.ndarray) -> None:
        idx = np.clip((prob * self.BINS).astype(np.int64), 0, self.BINS - 1)
        t = truth.astype(bool)
        self.road += np.bincount(idx[t], minlength=self.BINS)
        self.other += np.bincount(idx[~t], minlength=self.BINS)

    def curve(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(thresholds, precision, recall, f1)``; a pixel is road if prob >= threshold."""
        thresholds = np.arange(self.BINS) / self.BINS
        tp = np.cumsum(self.road[::-1])[::-1].astype(np.float64)
        fp = np.cumsum(self.other[::-1])[::-1].astype(np.float64)
        fn = self.road.sum() - tp
        precision = np.divide(tp, tp + fp, out=np.ones_like(tp), where=(tp + fp) > 0)
        recall = np.divide(tp, tp + fn, out=np.ones_like(tp), where=(tp + fn) > 0)
        denom = precision + recall
        f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
        return thresholds, precision, recall, f1

    def best(self) -> tuple[float, float, float, float]:
        """``(threshold, f1, precision, recall)`` at the threshold with the best F1."""
        thresholds, precision, recall, f1 = self.curve()
        # Keep thresholds away from the extremes a 1/256 grid allows.
        lo, hi = 5, self.BINS - 5
        i = lo + int(np.argmax(f1[lo:hi]))
        return float(thresholds[i]), float(f1[i]), float(precision[i]), float(recall[i])
