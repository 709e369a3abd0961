"""The values the pixel metrics return: :class:`Counts` at one threshold, a
:class:`ThresholdCurve` over all thresholds and an :class:`EvaluationResult`
with every metric. A ratio whose denominator is zero is 1.0 (see
:mod:`roadseg.metrics`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray


def _ratio(num: Any, den: Any) -> Any:
    """``num / den``, and 1.0 where ``den`` is 0 (vacuous truth). Scalars or arrays."""
    num_a = np.asarray(num, dtype=np.float64)
    den_a = np.asarray(den, dtype=np.float64)
    out = np.divide(num_a, den_a, out=np.ones(np.broadcast(num_a, den_a).shape), where=den_a > 0)
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class Counts:
    """Pixel counts of one comparison at one threshold.

    Attributes:
        tp: predicted road, true road.
        fp: predicted road, true background.
        fn: predicted background, true road.
        tn: predicted background, true background.
        relaxed_tp_pred: predicted road pixels within rho of a true road pixel.
        relaxed_tp_truth: true road pixels within rho of a predicted road pixel.
    """

    tp: int
    fp: int
    fn: int
    tn: int
    relaxed_tp_pred: int
    relaxed_tp_truth: int

    @property
    def total(self) -> int:
        """Number of pixels counted (nodata excluded)."""
        return self.tp + self.fp + self.fn + self.tn

    @property
    def precision(self) -> float:
        """``tp / (tp + fp)``; 1.0 when nothing is predicted."""
        return float(_ratio(self.tp, self.tp + self.fp))

    @property
    def recall(self) -> float:
        """``tp / (tp + fn)``; 1.0 when the truth has no road."""
        return float(_ratio(self.tp, self.tp + self.fn))

    @property
    def iou(self) -> float:
        """Road-class intersection over union; 1.0 when both masks are empty."""
        return float(_ratio(self.tp, self.tp + self.fp + self.fn))

    @property
    def f1(self) -> float:
        """``2 tp / (2 tp + fp + fn)``; 1.0 when both masks are empty."""
        return float(_ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn))

    @property
    def relaxed_precision(self) -> float:
        """Fraction of predicted road pixels within rho of the truth; 1.0 if none."""
        return float(_ratio(self.relaxed_tp_pred, self.tp + self.fp))

    @property
    def relaxed_recall(self) -> float:
        """Fraction of true road pixels within rho of the prediction; 1.0 if none."""
        return float(_ratio(self.relaxed_tp_truth, self.tp + self.fn))

    def to_dict(self) -> dict[str, int]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
            "relaxed_tp_pred": self.relaxed_tp_pred,
            "relaxed_tp_truth": self.relaxed_tp_truth,
        }


@dataclass(frozen=True, eq=False)
class ThresholdCurve:
    """Counts and metrics at every threshold, as parallel 1-D arrays.

    Entry ``i`` describes the prediction ``probability >= thresholds[i]``.
    Thresholds increase; the first is 0 (everything valid is road).
    """

    thresholds: NDArray[np.float64]
    tp: NDArray[np.int64]
    fp: NDArray[np.int64]
    fn: NDArray[np.int64]
    tn: NDArray[np.int64]
    relaxed_tp_pred: NDArray[np.int64]
    relaxed_tp_truth: NDArray[np.int64]

    def __post_init__(self) -> None:
        for name in ("thresholds", "tp", "fp", "fn", "tn", "relaxed_tp_pred", "relaxed_tp_truth"):
            getattr(self, name).flags.writeable = False

    def __len__(self) -> int:
        return len(self.thresholds)

    @property
    def precision(self) -> NDArray[np.float64]:
        return _ratio(self.tp, self.tp + self.fp)  # type: ignore[no-any-return]

    @property
    def recall(self) -> NDArray[np.float64]:
        return _ratio(self.tp, self.tp + self.fn)  # type: ignore[no-any-return]

    @property
    def iou(self) -> NDArray[np.float64]:
        return _ratio(self.tp, self.tp + self.fp + self.fn)  # type: ignore[no-any-return]

    @property
    def f1(self) -> NDArray[np.float64]:
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)  # type: ignore[no-any-return]

    @property
    def relaxed_precision(self) -> NDArray[np.float64]:
        return _ratio(self.relaxed_tp_pred, self.tp + self.fp)  # type: ignore[no-any-return]

    @property
    def relaxed_recall(self) -> NDArray[np.float64]:
        return _ratio(self.relaxed_tp_truth, self.tp + self.fn)  # type: ignore[no-any-return]

    def best_f1(self) -> tuple[float, float]:
        """``(F1, threshold)`` at the threshold with the highest F1 (the lowest such
        threshold on a tie); ``(nan, nan)`` for an empty curve."""
        if not len(self):
            return math.nan, math.nan
        f1 = self.f1
        i = int(np.argmax(f1))
        return float(f1[i]), float(self.thresholds[i])

    def select(self, which: NDArray[Any]) -> ThresholdCurve:
        """The curve at some of its entries (a boolean mask or an index array)."""
        return ThresholdCurve(
            thresholds=self.thresholds[which],
            tp=self.tp[which],
            fp=self.fp[which],
            fn=self.fn[which],
            tn=self.tn[which],
            relaxed_tp_pred=self.relaxed_tp_pred[which],
            relaxed_tp_truth=self.relaxed_tp_truth[which],
        )

    def counts_at(self, index: int) -> Counts:
        """The :class:`Counts` of entry ``index``."""
        return Counts(
            tp=int(self.tp[index]),
            fp=int(self.fp[index]),
            fn=int(self.fn[index]),
            tn=int(self.tn[index]),
            relaxed_tp_pred=int(self.relaxed_tp_pred[index]),
            relaxed_tp_truth=int(self.relaxed_tp_truth[index]),
        )

    #: Column order of :meth:`columns` and of the CSV written by :func:`write_curve_csv`.
    COLUMNS = (
        "threshold",
        "precision",
        "recall",
        "iou",
        "f1",
        "relaxed_precision",
        "relaxed_recall",
        "tp",
        "fp",
        "fn",
        "tn",
        "relaxed_tp_pred",
        "relaxed_tp_truth",
    )

    def columns(self) -> dict[str, list[float] | list[int]]:
        """The curve as plain lists, keyed by :attr:`COLUMNS` (for JSON)."""
        return {
            "threshold": self.thresholds.tolist(),
            "precision": self.precision.tolist(),
            "recall": self.recall.tolist(),
            "iou": self.iou.tolist(),
            "f1": self.f1.tolist(),
            "relaxed_precision": self.relaxed_precision.tolist(),
            "relaxed_recall": self.relaxed_recall.tolist(),
            "tp": self.tp.tolist(),
            "fp": self.fp.tolist(),
            "fn": self.fn.tolist(),
            "tn": self.tn.tolist(),
            "relaxed_tp_pred": self.relaxed_tp_pred.tolist(),
            "relaxed_tp_truth": self.relaxed_tp_truth.tolist(),
        }


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else value


@dataclass(frozen=True, eq=False)
class EvaluationResult:
    """Everything ``roadseg evaluate`` reports.

    Attributes:
        iou: road-class IoU at ``threshold``.
        f1: F1 (Dice) at ``threshold``.
        precision: strict precision at ``threshold``.
        recall: strict recall at ``threshold``.
        relaxed_precision: relaxed precision (tolerance ``rho``) at ``threshold``.
        relaxed_recall: relaxed recall (tolerance ``rho``) at ``threshold``.
        breakeven: the value where relaxed precision equals relaxed recall along
            the threshold curve (linear interpolation between the two nearest
            thresholds); NaN if they never cross (e.g. a binary prediction whose
            relaxed precision stays below its relaxed recall).
        breakeven_threshold: the probability threshold of the breakeven point
            (interpolated likewise); NaN when ``breakeven`` is.
        threshold: the probability threshold of the strict and relaxed metrics
            above (a pixel is road if its probability is ``>= threshold``).
        rho: relaxation tolerance in pixels.
        counts: pixel counts at ``threshold``.
        nodata: pixels excluded because either input is nodata there.
        curve: counts and metrics at every threshold level of the input.
    """

    iou: float
    f1: float
    precision: float
    recall: float
    relaxed_precision: float
    relaxed_recall: float
    breakeven: float
    breakeven_threshold: float
    threshold: float
    rho: float
    counts: Counts
    nodata: int
    curve: ThresholdCurve

    def to_dict(self, *, curve: bool = False) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes None).

        Args:
            curve: also include the threshold curve as lists under ``"curve"``.
        """
        out: dict[str, Any] = {
            "iou": self.iou,
            "f1": self.f1,
            "precision": self.precision,
            "recall": self.recall,
            "relaxed_precision": self.relaxed_precision,
            "relaxed_recall": self.relaxed_recall,
            "breakeven": _json_float(self.breakeven),
            "breakeven_threshold": _json_float(self.breakeven_threshold),
            "threshold": self.threshold,
            "rho": self.rho,
            "valid_pixels": self.counts.total,
            "nodata_pixels": self.nodata,
            "counts": self.counts.to_dict(),
        }
        if curve:
            out["curve"] = self.curve.columns()
        return out
