"""The files of a training run's folder: JSON state, checkpoint copies, the
training curves (``curves.png``), the trimmed Keras CSV log and ``skipped.csv``.

Every file that a later step or a resume reads is replaced atomically
(:func:`roadseg.raster_io.atomic_output`).
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from roadseg.data import SkipLog
from roadseg.raster_io import atomic_output


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as indented, key-sorted JSON to ``path``, atomically."""
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def copy_atomic(src: Path, dest: Path) -> None:
    """Copy ``src`` to ``dest``, atomically."""
    with atomic_output(dest) as tmp:
        shutil.copyfile(src, tmp)


def finite(value: Any) -> float | None:
    """``value`` as a float, or None when it is not a finite number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def plot_history(
    history: Mapping[str, Sequence[float | None]], path: str | os.PathLike[str]
) -> Path:
    """Draw training curves as a PNG with Pillow (no plotting library needed).

    Left panel: ``loss`` and ``val_loss`` per epoch; right panel: validation
    F1, IoU, precision and recall at 0.5. The file is replaced atomically.

    Raises:
        OSError: if the file cannot be written.
    """
    from PIL import Image, ImageDraw, ImageFont

    path = Path(path)
    width, height, pad = 960, 420, 52
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    panels = [
        ("loss", [("loss", (31, 119, 180)), ("val_loss", (255, 127, 14))], None),
        (
            "validation at 0.5",
            [
                ("val_f1", (23, 190, 207)),
                ("val_iou", (44, 160, 44)),
                ("val_precision", (148, 103, 189)),
                ("val_recall", (214, 39, 40)),
            ],
            (0.0, 1.0),
        ),
    ]
    n_epochs = max((len(v) for v in history.values()), default=0)
    panel_w = (width - 3 * pad) // 2
    for p, (title, series, fixed) in enumerate(panels):
        x0 = pad + p * (panel_w + pad)
        y0, y1 = pad // 2 + 14, height - pad
        x1 = x0 + panel_w
        values = [
            v
            for key, _ in series
            for v in (finite(x) for x in history.get(key, []))
            if v is not None
        ]
        if fixed is not None:
            lo, hi = fixed
        elif values:
            lo, hi = min(values), max(values)
            if hi - lo < 1e-9:
                lo, hi = lo - 0.5, hi + 0.5
            margin = 0.05 * (hi - lo)
            lo, hi = lo - margin, hi + margin
        else:
            lo, hi = 0.0, 1.0
        draw.rectangle([x0, y0, x1, y1], outline=(120, 120, 120))
        draw.text((x0, y0 - 16), title, fill="black", font=font)
        for k in range(5):
            value = lo + (hi - lo) * k / 4
            y = y1 - (y1 - y0) * k / 4
            draw.line([x0, y, x0 + 4, y], fill=(120, 120, 120))
            draw.text((x0 - pad + 4, y - 6), f"{value:.3g}", fill="black", font=font)
        span = max(1, n_epochs - 1)
        ticks = sorted({1, n_epochs} | set(range(1, n_epochs + 1, max(1, n_epochs // 5))))
        for e in ticks if n_epochs else []:
            x = x0 + (x1 - x0) * (e - 1) / span
            draw.text((x - 4, y1 + 4), str(e), fill="black", font=font)
        draw.text((x0 + panel_w // 2 - 14, y1 + 18), "epoch", fill="black", font=font)
        for i, (key, colour) in enumerate(series):
            draw.text((x0 + 8 + 110 * i, y0 + 4), key, fill=colour, font=font)
            points = [
                (x0 + (x1 - x0) * e / span, y1 - (y1 - y0) * (v - lo) / (hi - lo))
                for e, v in enumerate(finite(x) for x in history.get(key, []))
                if v is not None
            ]
            if len(points) > 1:
                draw.line(points, fill=colour, width=2)
            for x, y in points:
                draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)

    with atomic_output(path) as tmp:
        img.save(tmp, format="PNG")
    return path


def trim_csv_log(path: Path, epochs: int) -> None:
    """Keep the header and the first ``epochs`` rows of a CSV log (a killed run
    may have logged epochs its checkpoint does not have)."""
    if not path.is_file():
        return
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.reader(fh) if r]
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if r[0].isdigit() and int(r[0]) < epochs]
    with atomic_output(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(kept)


def write_skips(run_dir: Path, skips: SkipLog) -> None:
    """Write ``skipped.csv``: the files whose reads failed, how often and why."""
    if not skips.counts:
        return
    with open(run_dir / "skipped.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "failures", "reason"])
        for name, n in skips.counts.most_common():
            writer.writerow([name, n, skips.reasons.get(name, "")])
