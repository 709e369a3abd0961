"""Training losses, registered so saved models with them reload."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="roadseg")
def dice_loss(y_true: Any, y_pred: Any, smooth: float = 1.0) -> Any:
    """Soft Dice loss per image, averaged over the batch."""
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    axes = tuple(range(1, len(y_pred.shape)))
    inter = ops.sum(y_true * y_pred, axis=axes)
    total = ops.sum(y_true, axis=axes) + ops.sum(y_pred, axis=axes)
    return 1.0 - (2.0 * inter + smooth) / (total + smooth)


@keras.saving.register_keras_serializable(package="roadseg")
def bce_dice_loss(y_true: Any, y_pred: Any) -> Any:
    """Binary cross-entropy plus Dice: BCE for calibrated probabilities, Dice
    so thin roads (a few % of pixels) are not drowned by the background."""
    y_true = ops.cast(y_true, "float32")
    y_pred = ops.cast(y_pred, "float32")
    bce = ops.mean(keras.losses.binary_crossentropy(y_true, y_pred), axis=(1, 2))
    return bce + dice_loss(y_true, y_pred)
