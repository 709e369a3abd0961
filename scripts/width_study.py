#!/usr/bin/env python
"""Which network width learns most in the same wall-clock time on this machine?

Trains the default-model recipe (``scripts/train_default_model.py``: the same
prepared data, GSD range, percentile normalization, augmentation and seed) from
scratch once per width, each for the same training budget in minutes, and
scores each on the proxies of the model card (Dubai Tile 8 and the Las Vegas
chip, never trained on), best pixel F1 over all thresholds.

Equal wall-clock time: each width's training speed (crops/s) is measured first
with ``scripts/bench_train.py``'s timed ``model.fit``; the number of steps is
then what fits the budget, spread over ``--epochs`` epochs so the cosine
schedule runs to its end. The table reports the measured wall time of each
``roadseg.train.train`` call (validation and checkpoints included), so the
budgets can be checked, not assumed.

The data is the default model's (``runs/default_model/data``): run
``scripts/train_default_model.py --prepare-only`` first on a fresh clone.

Usage:
    python scripts/width_study.py [--minutes 10] [--widths 16-128,32-256,64-512]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_train  # noqa: E402
import model_card  # noqa: E402

WIDTHS = {
    "16-128": (16, 32, 64, 128),
    "32-256": (32, 64, 128, 256),
    "64-512": (64, 128, 256, 512),
}
#: Share of the budget left for what is not a training step (startup, tracing,
#: validation each epoch, the final threshold sweep), measured on the first run.
OVERHEAD = 0.15


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget per width")
    parser.add_argument("--widths", default=",".join(WIDTHS))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--work", type=Path, default=HERE.parent / "runs" / "width_study")
    parser.add_argument(
        "--data", type=Path, default=HERE.parent / "runs" / "default_model" / "data"
    )
    args = parser.parse_args()
    if not (args.data / "train").is_dir():
        parser.error(f"{args.data}: run scripts/train_default_model.py --prepare-only first")

    from roadseg.model import load_model
    from roadseg.train import TrainConfig, train

    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        sets = model_card.cases(tmp, 512, range(0), settings=False)
        sets = {k: v for k, v in sets.items() if not k.startswith("synthetic")}
        for name in args.widths.split(","):
            filters = WIDTHS[name]
            speed = bench_train.bench(
                args.data / "train",
                filters,
                "bfloat16",
                crops=48,
                batch=args.batch,
                tile=224,
            )
            steps_total = int(args.minutes * 60 * (1 - OVERHEAD) * speed["crops_s"] / args.batch)
            steps = max(1, steps_total // args.epochs)
            config = TrainConfig(
                data=args.data,
                output=args.work / f"resunet_{name}.keras",
                run_dir=args.work / f"run_{name}",
                epochs=args.epochs,
                steps_per_epoch=steps,
                batch_size=args.batch,
                lr=2e-3,
                filters=filters,
                tile_size=224,
                seed=0,
                gsd_range=(0.3, 1.2),
                normalization="percentile",
                patience=0,
                overwrite=True,
                val_steps=10,
            )
            print(
                f"{name}: {speed['crops_s']:.1f} crops/s -> {args.epochs} x {steps} steps",
                flush=True,
            )
            start = time.perf_counter()
            result = train(config)
            seconds = time.perf_counter() - start
            model = load_model(result.model_path)
            scored = {r[0]: r[4][0] for r in model_card.measure(model, sets, tmp)}
            rows.append((name, speed["crops_s"], args.epochs * steps, seconds, scored))
            print(f"{name}: trained {seconds / 60:.1f} min, best F1 {scored}", flush=True)
    print()
    print(
        f"Width study, {args.minutes:g} min of training each, {platform.processor() or 'cpu'}, "
        f"{os.cpu_count()} cores; best pixel F1 over all thresholds:"
    )
    print()
    names = sorted({k for r in rows for k in r[4]})
    print("| width | train crops/s | steps | wall (min) | " + " | ".join(names) + " |")
    print("|" + " --- |" * (4 + len(names)))
    for name, crops_s, steps_done, seconds, scored in rows:
        cells = " | ".join(f"{scored.get(k, float('nan')):.3f}" for k in names)
        print(f"| {name} | {crops_s:.1f} | {steps_done} | {seconds / 60:.1f} | {cells} |")
    print()
    print(f"command: python scripts/width_study.py {' '.join(sys.argv[1:])}".rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
