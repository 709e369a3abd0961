#!/usr/bin/env python
"""Train the model that ships inside roadseg, reproducibly, on this machine's CPU.

Training data (both licensed for a shipped model):
- procedural synthetic scenes from ``roadseg.synthetic`` (seeds below), and
- the CC0 Dubai "Semantic segmentation of aerial imagery" set (Humans in the
  Loop / MBRSC) in ../shared/data/dubai, road class RGB (110, 193, 228).
  Tiles 1-7 train, Tile 8 is held out; Tile 7 part 008 is dropped (its mask
  is all "land" although it shows a road).

Nothing else from ../shared/data may train the shipped model.

Usage:
    python scripts/train_default_model.py [--steps 2800] [--out MODEL.keras]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DUBAI = ROOT.parent / "shared" / "data" / "dubai" / "Semantic segmentation dataset"
DUBAI_ROAD = (110, 193, 228)
DUBAI_VAL_TILES = {"Tile 8"}
DUBAI_DROP = {("Tile 7", "image_part_008")}


def load_dubai(split: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Image/mask arrays of the Dubai set for ``split`` ("train" or "val")."""
    pairs = []
    for tile in sorted(p for p in DUBAI.iterdir() if p.is_dir()):
        if (tile.name in DUBAI_VAL_TILES) != (split == "val"):
            continue
        for img_path in sorted((tile / "images").glob("*.jpg")):
            if (tile.name, img_path.stem) in DUBAI_DROP:
                continue
            image = np.asarray(Image.open(img_path).convert("RGB"))
            colours = np.asarray(Image.open(tile / "masks" / f"{img_path.stem}.png").convert("RGB"))
            mask = np.all(colours == np.array(DUBAI_ROAD, dtype=np.uint8), axis=-1)
            pairs.append((image, mask.astype(np.uint8)))
    return pairs


def load_synthetic(seeds: range, size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from roadseg.synthetic import SceneSpec, generate_scene

    out = []
    for s in seeds:
        scene = generate_scene(size, size, SceneSpec(seed=s))
        out.append((scene.image, scene.mask))
    return out


class CropSampler:
    """Random crops with D4 augmentation and photometric jitter.

    Half of the crops are centred near a road pixel, so thin roads are seen
    often enough; the other half are uniform (negatives, lookalikes).
    """

    def __init__(self, pairs: list[tuple[np.ndarray, np.ndarray]], tile: int, seed: int) -> None:
        self.pairs = [(i, m) for i, m in pairs if min(m.shape) >= tile]
        self.tile = tile
        self.rng = np.random.default_rng(seed)
        self.road_pixels = [np.argwhere(m > 0) for _, m in self.pairs]

    def crop(self) -> tuple[np.ndarray, np.ndarray]:
        t = self.tile
        k = int(self.rng.integers(len(self.pairs)))
        image, mask = self.pairs[k]
        h, w = mask.shape
        roads = self.road_pixels[k]
        if len(roads) and self.rng.random() < 0.5:
            cy, cx = roads[int(self.rng.integers(len(roads)))]
            y = int(np.clip(cy - t // 2 + self.rng.integers(-t // 4, t // 4 + 1), 0, h - t))
            x = int(np.clip(cx - t // 2 + self.rng.integers(-t // 4, t // 4 + 1), 0, w - t))
        else:
            y, x = int(self.rng.integers(h - t + 1)), int(self.rng.integers(w - t + 1))
        img = image[y : y + t, x : x + t].astype(np.float32) / 255.0
        msk = mask[y : y + t, x : x + t].astype(np.float32)
        rot = int(self.rng.integers(4))
        img, msk = np.rot90(img, rot), np.rot90(msk, rot)
        if self.rng.random() < 0.5:
            img, msk = img[:, ::-1], msk[:, ::-1]
        # brightness, contrast, per-channel gain (a cheap hue/white-balance shift)
        gain = 1.0 + self.rng.normal(0, 0.06, size=3).astype(np.float32)
        contrast = float(self.rng.uniform(0.75, 1.25))
        bright = float(self.rng.normal(0, 0.06))
        mean = img.mean()
        img = np.clip((img - mean) * contrast + mean + bright, 0, 1) * gain
        return np.clip(img, 0, 1), msk[..., None]

    def batch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = zip(*(self.crop() for _ in range(n)), strict=True)
        return np.stack(xs), np.stack(ys)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "roadseg" / "models" / "roadseg_default.keras"
    )
    parser.add_argument("--filters", default="16,32,64,128")
    parser.add_argument("--steps", type=int, default=2800)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--tile", type=int, default=224)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--synthetic", type=int, default=40, help="synthetic training scenes")
    parser.add_argument("--no-dubai", action="store_true", help="train on synthetic scenes only")
    parser.add_argument("--log", type=Path, default=None, help="CSV of the loss per 50 steps")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from roadseg import __version__
    from roadseg.losses import bce_dice_loss
    from roadseg.model import ModelInfo, build_resunet, save_model
    from roadseg.thresholds import F1Sweep

    keras.utils.set_random_seed(args.seed)
    filters = tuple(int(f) for f in args.filters.split(","))
    t0 = time.time()
    synth_train = load_synthetic(range(1000, 1000 + args.synthetic), 1024)
    synth_val = load_synthetic(range(5000, 5004), 1024)
    use_dubai = not args.no_dubai and DUBAI.is_dir()
    dubai_train = load_dubai("train") if use_dubai else []
    dubai_val = load_dubai("val") if use_dubai else []
    print(
        f"data: {len(synth_train)} synthetic + {len(dubai_train)} Dubai training images "
        f"({time.time() - t0:.0f} s)",
        flush=True,
    )

    samplers = [CropSampler(synth_train, args.tile, args.seed)]
    if dubai_train:
        samplers.append(CropSampler(dubai_train, args.tile, args.seed + 1))
    rng = np.random.default_rng(args.seed + 2)

    # bfloat16 mixed precision doubles training speed on this AVX-512-BF16 CPU;
    # the variables stay float32, and the saved model is rebuilt in float32.
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = build_resunet((args.tile, args.tile, 3), filters)
    schedule = keras.optimizers.schedules.CosineDecay(args.lr, decay_steps=args.steps, alpha=0.02)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=bce_dice_loss, jit_compile=False)

    log_rows = []
    losses = []
    t0 = time.time()
    for step in range(1, args.steps + 1):
        sampler = samplers[int(rng.integers(len(samplers)))]
        x, y = sampler.batch(args.batch)
        loss = float(model.train_on_batch(x, y))
        losses.append(loss)
        if step % 50 == 0 or step == args.steps:
            mean = float(np.mean(losses[-50:]))
            rate = step * args.batch / (time.time() - t0)
            log_rows.append({"step": step, "loss": mean, "seconds": round(time.time() - t0, 1)})
            print(f"step {step}/{args.steps} loss {mean:.4f} {rate:.1f} crops/s", flush=True)
    train_seconds = time.time() - t0

    keras.mixed_precision.set_global_policy("float32")
    final = build_resunet((None, None, 3), filters)
    final.set_weights(model.get_weights())
    infer = tf.function(lambda x: final(x, training=False))

    def sweep(pairs: list[tuple[np.ndarray, np.ndarray]]) -> F1Sweep:
        acc = F1Sweep()
        for image, mask in pairs:
            h, w = (s // 8 * 8 for s in mask.shape)
            prob = np.asarray(infer(image[None, :h, :w].astype(np.float32) / 255.0))[0, ..., 0]
            acc.update(prob, mask[:h, :w])
        return acc

    both = F1Sweep()
    metrics = {}
    for name, pairs in (("synthetic", synth_val), ("dubai_tile8", dubai_val)):
        if not pairs:
            continue
        s = sweep(pairs)
        both.road += s.road
        both.other += s.other
        metrics[name] = s
    threshold, f1, precision, recall = both.best()
    report = {}
    for name, s in metrics.items():
        th, p, r, f = s.curve()
        i = int(round(threshold * F1Sweep.BINS))
        report[name] = {
            "f1": round(float(f[i]), 4),
            "precision": round(float(p[i]), 4),
            "recall": round(float(r[i]), 4),
        }
    print(f"validation at threshold {threshold:.3f}: {json.dumps(report)}", flush=True)

    info = ModelInfo(
        bands=3,
        normalization="auto",
        tile_size=args.tile,
        gsd=None,
        threshold=round(threshold, 4),
        filters=filters,
        provenance={
            "trained_by": "scripts/train_default_model.py",
            "roadseg_version": __version__,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            "trained_steps": args.steps,
            "batch_size": args.batch,
            "train_seconds": round(train_seconds),
            "data": (
                f"{len(synth_train)} synthetic 1024x1024 scenes (roadseg.synthetic seeds "
                f"1000-{999 + len(synth_train)}, 0.5 m)"
                + (
                    f" + {len(dubai_train)} Dubai images, Tiles 1-7 (CC0, Humans in the Loop "
                    "/ MBRSC)"
                    if dubai_train
                    else ""
                )
            ),
            "validation": report,
            "loss": "bce+dice",
            "optimizer": f"adam lr {args.lr} cosine",
            "precision": "mixed_bfloat16",
        },
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_model(final, args.out, info)
    if args.log:
        with open(args.log, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["step", "loss", "seconds"])
            writer.writeheader()
            writer.writerows(log_rows)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
