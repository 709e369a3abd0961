"""An inference copy of a ResUNet with the batch norms that follow a
convolution folded into its weights.

In inference a batch norm is a per-channel affine map, ``s * (y - mean) + beta``
with ``s = gamma / sqrt(var + eps)``. When ``y`` is a convolution's output used
by nothing else, the map can live in the convolution: ``W' = W * s`` (per output
channel) and ``b' = (b - mean) * s + beta``. That removes one pass over memory
(and, under a mixed policy, two casts) per folded layer. The ResUNet's other
batch norms (``pre1`` of each block) act on a sum or a concatenation that also
feeds a shortcut, so they stay.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from roadseg.model import build_resunet


def folded_pairs(model: Any) -> list[tuple[str, str]]:
    """(convolution, batch norm) layer names that :func:`fold_batch_norms` folds."""
    names = {layer.name for layer in model.layers}
    pairs = [("enc1_conv1", "enc1_mid_bn")]
    pairs += [
        (f"{prefix}_conv1", f"{prefix}_pre2_bn")
        for prefix in ("enc2", "enc3", "bridge", "dec1", "dec2", "dec3")
    ]
    return [(c, b) for c, b in pairs if c in names and b in names]


def fold_batch_norms(model: Any, filters: tuple[int, ...], bands: int) -> Any:
    """A float32 copy of the ResUNet ``model`` (built by
    :func:`roadseg.model.build_resunet` with ``filters``) whose convolutions
    carry the batch norms that follow them.

    Raises:
        ValueError: ``model`` is not such a ResUNet (a layer is missing or has
            another shape).
    """
    pairs = folded_pairs(model)
    if len(pairs) != 7:
        raise ValueError("not a roadseg ResUNet: its conv + batch norm pairs are missing")
    folded = build_resunet((None, None, bands), filters, name=model.name, folded=True)
    by_name = {layer.name: layer for layer in model.layers}
    into = dict(pairs)
    for layer in folded.layers:
        weights = by_name[layer.name].get_weights()
        if layer.name in into:
            kernel, bias = (np.asarray(w, dtype=np.float64) for w in weights)
            bn = by_name[into[layer.name]]
            gamma, beta, mean, var = (np.asarray(w, dtype=np.float64) for w in bn.get_weights())
            scale = gamma / np.sqrt(var + bn.epsilon)
            weights = [
                (kernel * scale).astype(np.float32),
                ((bias - mean) * scale + beta).astype(np.float32),
            ]
        layer.set_weights(weights)
    return folded


def inference_network(model: Any, filters: tuple[int, ...], bands: int, precision: str) -> Any:
    """The network ``roadseg predict`` runs: ``model`` with its batch norms
    folded (when it is a roadseg ResUNet of known ``filters``) in ``precision``
    (a mixed policy; see :func:`roadseg.precision.with_precision`).

    Measured on the bundled model (AMD EPYC, AVX-512-BF16, 2 cores, batch 8 of
    224 px, ``scripts/bench_cpu_limit.py``): folding is worth 1.12x in bfloat16
    and 1.09x in float32, and changes float32 probabilities by at most about
    1e-6. Weights stored in bfloat16 instead of cast by the mixed policy gained
    nothing, and XLA (``jit_compile``) was 2.5x slower on this CPU, so neither
    is used.
    """
    from roadseg.precision import with_precision

    if filters and len(folded_pairs(model)) == 7:
        model = fold_batch_norms(model, filters, bands)
    return with_precision(model, precision)
