"""The training recipe in Keras terms: dtype policy, learning-rate schedule,
optimizer, loss and metrics, and reading a ResUNet's widths back from a model.
"""

from __future__ import annotations

from typing import Any

from roadseg.train_config import Preset

#: Cosine schedule ends at this fraction of the initial learning rate.
COSINE_ALPHA = 0.02

#: Keras dtype policy for each resolved precision.
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def training_policy(precision: str) -> str:
    """The Keras dtype policy for a ``--precision`` choice.

    ``auto`` follows :func:`roadseg.precision.resolve_precision`: float16 on a
    GPU, bfloat16 on a CPU with AVX-512-BF16 or AMX (about twice float32's
    training speed on this project's CPU, see ``scripts/bench_train.py``),
    float32 otherwise. Mixed policies keep the variables in float32.

    Raises:
        ValueError: for an unknown name.
    """
    from roadseg.precision import resolve_precision

    return POLICIES[resolve_precision(precision)]


def make_schedule(preset: Preset, lr: float, epochs: int, steps_per_epoch: int) -> Any:
    """The learning-rate schedule of ``preset``, driven by the optimizer's step count.

    Cosine: from ``lr`` to ``COSINE_ALPHA * lr`` over all steps. Step: ``lr``
    divided by 10 after every ``preset.step_epochs`` epochs.
    """
    import keras

    if preset.schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            lr, decay_steps=max(1, epochs * steps_per_epoch), alpha=COSINE_ALPHA
        )
    if preset.schedule == "step":
        drops = (epochs - 1) // preset.step_epochs
        if drops < 1:
            return lr
        # Piecewise values apply for step <= boundary; step n is the (n+1)-th update.
        boundaries = [k * preset.step_epochs * steps_per_epoch - 1 for k in range(1, drops + 1)]
        values = [lr * 0.1**k for k in range(drops + 1)]
        return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    raise ValueError(f"unknown schedule {preset.schedule!r}")


def make_optimizer(preset: Preset, schedule: Any, policy: str) -> Any:
    """Adam or plain SGD over ``schedule``; wrapped for loss scaling under float16."""
    import keras

    if preset.optimizer == "adam":
        opt = keras.optimizers.Adam(schedule)
    elif preset.optimizer == "sgd":
        opt = keras.optimizers.SGD(schedule)
    else:
        raise ValueError(f"unknown optimizer {preset.optimizer!r}")
    if policy == "mixed_float16":
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt


def make_loss(preset: Preset) -> Any:
    """The Keras loss of ``preset``: BCE + Dice, or mean squared error."""
    from roadseg.losses import bce_dice_loss

    return bce_dice_loss if preset.loss == "bce_dice" else "mean_squared_error"


def make_metrics() -> list[Any]:
    """The metrics Keras logs every epoch: IoU, precision and recall at 0.5."""
    import keras

    return [
        keras.metrics.BinaryIoU(target_class_ids=[1], threshold=0.5, name="iou"),
        keras.metrics.Precision(name="precision"),
        keras.metrics.Recall(name="recall"),
    ]


def resunet_filters(model: Any) -> tuple[int, ...] | None:
    """The four widths of a roadseg ResUNet, read from its layer names, or None."""
    try:
        return tuple(
            int(model.get_layer(name).filters)
            for name in ("enc1_conv1", "enc2_conv1", "enc3_conv1", "bridge_conv1")
        )
    except (ValueError, AttributeError):
        return None
