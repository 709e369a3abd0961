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
        """``(threshold, f1, precision, recall)`` at the threshold with the best F1.

        Thresholds are kept 5 bins away from 0 and 1. When several tie for the
        best F1 (a well-separated validation set), the middle of the longest run
        of tied bins is taken, not its lowest end, so the stored threshold is not
        needlessly near 0.
        """
        thresholds, precision, recall, f1 = self.curve()
        lo, hi = 5, self.BINS - 5
        best = float(np.max(f1[lo:hi]))
        tied = lo + np.flatnonzero(f1[lo:hi] >= best - 1e-9)
        runs = np.split(tied, np.flatnonzero(np.diff(tied) > 1) + 1)
        run = max(runs, key=len)
        i = int(run[len(run) // 2])
        return float(thresholds[i]), float(f1[i]), float(precision[i]), float(recall[i])
