#!/usr/bin/env python
"""Train the model that ships inside roadseg, reproducibly, through ``roadseg.train``.

Training data (both licensed for a shipped model):

- procedural scenes from ``roadseg.synthetic``, every setting of its registry
  (``roadseg.synthetic.SETTINGS``), 1024 px at 0.5 m, written as georeferenced
  GeoTIFFs (the GSD is exact);
- the CC0 Dubai "Semantic segmentation of aerial imagery" set (Humans in the
  Loop / MBRSC) in ../shared/data/dubai, road class RGB (110, 193, 228).
  Tiles 1-7 train, Tile 8 validates; Tile 7 part 008 is dropped (its mask is
  all "land" although it shows a road). The images are not georeferenced: they
  are written as GeoTIFFs on a UTM 40N grid at ``DUBAI_GSD`` (an estimate, see
  the README's model card for how it was measured).

Nothing else from ../shared/data may train the shipped model. The prepared data
goes to ``--work`` (default ``runs/default_model``, ignored by git), never into
the repository.

The recipe (all through :class:`roadseg.train.TrainConfig`): crops drawn at a
GSD log-uniform in 0.3-1.2 m (so the model records 0.6 m and ``roadseg predict``
reads inputs at 0.6 m), a 2-98 percentile stretch per band for every dtype
(``normalization="percentile"``), the library's photometric augmentation, a
fixed seed. Three stages, each a ``roadseg.train`` run with a cosine schedule:
stage 1 trains from scratch (``--epochs``, peak learning rate ``--lr``) and
writes ``stage1.keras`` in ``--work``; stage 2 starts from it
(``--stage2-epochs``, half the peak learning rate) and writes ``stage2.keras``;
stage 3 starts from that (``--stage3-epochs``, a quarter of the peak), with the
scenes of the hard-negative settings (``winter``, ``terraces``) added to the data
in ``data_stage3`` (hard links to the files of stages 1-2 plus the new scenes),
and writes ``--out``. A finished stage whose model file is there is skipped. Each
stage's run folder keeps checkpoints: ``--resume`` continues an interrupted one.

Usage:
    python scripts/train_default_model.py [--epochs 18] [--stage2-epochs 14] [--stage3-epochs 12]
    python scripts/train_default_model.py --resume
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DUBAI = ROOT.parent / "shared" / "data" / "dubai" / "Semantic segmentation dataset"
DUBAI_ROAD = (110, 193, 228)
DUBAI_VAL_TILES = {"Tile 8"}
DUBAI_DROP = {("Tile 7", "image_part_008")}
#: Metres per pixel of the Dubai images: an estimate from cars (about 4.5 m long:
#: 5 px in Tile 8, 2-3 px in Tile 2) and road widths; the Tiles differ, from about
#: 0.9 to 1.8 m. One value for all: the GSD range of training covers the error.
DUBAI_GSD = 1.2
#: Synthetic training scenes per setting, and validation scenes per setting.
SYNTHETIC_TRAIN = 8
SYNTHETIC_VAL = 1
SCENE_SIZE = 1024
#: The second stage's peak learning rate, as a fraction of the first's.
STAGE2_LR_FACTOR = 0.5
#: The third stage's: a quarter of the first's.
STAGE3_LR_FACTOR = 0.25
#: The settings of stages 1 and 2 (the registry then); stage 3 adds the rest, the
#: hard negatives of ``roadseg.synthetic.lookalikes`` (snowy forest, row houses).
FIRST_SETTINGS = ("city", "countryside", "desert", "forest", "highway", "rural", "suburbs")


def write_georeferenced(
    path: Path, array: np.ndarray, gsd: float, origin: tuple[float, float]
) -> None:
    """An (h, w[, bands]) uint8 array as a GeoTIFF on a UTM 40N grid at ``gsd``."""
    import rasterio
    from affine import Affine

    arr = array if array.ndim == 3 else array[..., None]
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=arr.shape[1],
        height=arr.shape[0],
        count=arr.shape[2],
        dtype="uint8",
        crs="EPSG:32640",
        transform=Affine(gsd, 0, origin[0], 0, -gsd, origin[1]),
        tiled=True,
        compress="deflate",
    ) as dst:
        dst.write(np.moveaxis(arr, -1, 0))


def prepare_dubai(data: Path, dubai: Path = DUBAI) -> int:
    """Tiles 1-7 into ``data/train``, Tile 8 into ``data/val``; returns the count."""
    count = 0
    for tile in sorted(p for p in dubai.iterdir() if p.is_dir()):
        split = "val" if tile.name in DUBAI_VAL_TILES else "train"
        for k, img_path in enumerate(sorted((tile / "images").glob("*.jpg"))):
            if (tile.name, img_path.stem) in DUBAI_DROP:
                continue
            name = f"dubai_{tile.name.replace(' ', '').lower()}_{img_path.stem}"
            out = data / split / f"{name}.tif"
            if out.is_file() and out.with_name(f"{name}_mask.tif").is_file():
                count += 1
                continue
            image = np.asarray(Image.open(img_path).convert("RGB"))
            colours = np.asarray(Image.open(tile / "masks" / f"{img_path.stem}.png").convert("RGB"))
            mask = np.all(colours == np.array(DUBAI_ROAD, dtype=np.uint8), axis=-1)
            origin = (300000.0 + 5000.0 * k, 2800000.0 - 5000.0 * int(tile.name.split()[-1]))
            write_georeferenced(
                out.with_name(f"{name}_mask.tif"), mask.astype(np.uint8) * 255, DUBAI_GSD, origin
            )
            write_georeferenced(out, image, DUBAI_GSD, origin)
            count += 1
    return count


def prepare_synthetic(data: Path, settings: tuple[str, ...] | None = None) -> int:
    """Scenes of ``settings`` (default: every setting): seeds 1000+ train, 5000+
    validate, 100 apart per setting in the registry's sorted order."""
    from roadseg.synthetic import SETTINGS, SceneSpec, write_scene

    count = 0
    for s, setting in enumerate(sorted(SETTINGS)):
        if settings is not None and setting not in settings:
            continue
        for split, first, n in (("train", 1000, SYNTHETIC_TRAIN), ("val", 5000, SYNTHETIC_VAL)):
            for i in range(n):
                seed = first + 100 * s + i
                name = f"synth_{setting}_{seed}"
                if not (data / split / f"{name}_mask.tif").is_file():
                    spec = SceneSpec(seed=seed, setting=setting)
                    write_scene(data / split, SCENE_SIZE, SCENE_SIZE, spec, name=name)
                count += 1
    return count


def prepare_stage3(data: Path, data3: Path) -> int:
    """Stage 3's data: stage 1-2's files (hard links, no copies) and the scenes of
    the settings added since (seeded as :func:`prepare_synthetic` seeds them)."""
    from roadseg.synthetic import SETTINGS

    for split in ("train", "val"):
        (data3 / split).mkdir(parents=True, exist_ok=True)
        for f in sorted((data / split).iterdir()):
            if not (data3 / split / f.name).exists():
                os.link(f, data3 / split / f.name)
    return prepare_synthetic(data3, tuple(sorted(set(SETTINGS) - set(FIRST_SETTINGS))))


def relative(path: Path) -> Path:
    """A path as model files record it (data, init): relative to the repository when
    inside it, so a shipped file names no folder of the machine that trained it."""
    return path.resolve().relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else path


def _finished(state: Path) -> bool:
    """Whether the run folder's state says its training finished."""
    return state.is_file() and bool(json.loads(state.read_text()).get("finished"))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "roadseg" / "models" / "roadseg_default.keras"
    )
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "default_model")
    parser.add_argument("--filters", default="16,32,64,128")
    parser.add_argument("--epochs", type=int, default=18, help="epochs of the first stage")
    parser.add_argument("--steps", type=int, default=150, help="batches per epoch")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--gsd-range", default="0.3,1.2")
    parser.add_argument("--normalization", default="percentile")
    parser.add_argument("--dubai", type=Path, default=DUBAI, help="the Dubai set's folder")
    parser.add_argument("--no-dubai", action="store_true", help="synthetic scenes only")
    parser.add_argument("--no-augment", action="store_true", help="ablation: no augmentation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument(
        "--stage2-epochs",
        type=int,
        default=14,
        help="epochs of the second stage, from the first stage's model (0: one stage)",
    )
    parser.add_argument(
        "--stage3-epochs",
        type=int,
        default=12,
        help="epochs of the third stage (hard-negative settings added), from stage 2's model;"
        " 0: two stages",
    )
    parser.add_argument(
        "--prepare-only", action="store_true", help="write the training data to --work and stop"
    )
    args = parser.parse_args()

    from roadseg.train import TrainConfig, train

    data = args.work / "data"
    for split in ("train", "val"):
        (data / split).mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    n_synth = prepare_synthetic(data, FIRST_SETTINGS)
    n_dubai = prepare_dubai(data, args.dubai) if args.dubai.is_dir() and not args.no_dubai else 0
    print(
        f"data: {n_synth} synthetic scenes + {n_dubai} Dubai images ({time.time() - t0:.0f} s)",
        flush=True,
    )
    data3 = args.work / "data_stage3"
    if args.stage2_epochs and args.stage3_epochs:
        n3 = prepare_stage3(data, data3)
        print(f"stage 3 data: + {n3} scenes of the added settings", flush=True)
    if args.prepare_only:
        return 0
    lo, hi = (float(v) for v in args.gsd_range.split(","))
    # The model file records where its data was: relative to the repository,
    # so the shipped file names no folder of the machine that trained it.
    os.chdir(ROOT)
    data = relative(data)
    base = TrainConfig(
        data=data,
        output=args.out,
        run_dir=args.work / "run",
        epochs=args.epochs,
        steps_per_epoch=args.steps,
        batch_size=args.batch,
        lr=args.lr,
        filters=tuple(int(f) for f in args.filters.split(",")),
        tile_size=224,
        seed=args.seed,
        gsd_range=(lo, hi),
        normalization=args.normalization,
        augment=False if args.no_augment else None,
        patience=0,
        overwrite=True,
    )

    def report(epoch: object) -> None:
        logs = getattr(epoch, "logs", {})
        print(
            f"epoch {getattr(epoch, 'epoch', '?')}: "
            + " ".join(f"{k} {v:.4f}" for k, v in logs.items() if isinstance(v, float)),
            flush=True,
        )

    stages = [base]
    if args.stage2_epochs:
        # Warm restarts: the same recipe from the previous stage's model, with a new
        # cosine schedule at a lower peak (the previous one had decayed to its floor).
        stage1 = relative(args.work / "stage1.keras")
        stage2 = relative(args.work / "stage2.keras")
        stages = [
            dataclasses.replace(base, output=stage1, run_dir=args.work / "run_stage1"),
            dataclasses.replace(
                base,
                output=stage2 if args.stage3_epochs else args.out,
                init=str(stage1),
                epochs=args.stage2_epochs,
                lr=args.lr * STAGE2_LR_FACTOR,
                run_dir=args.work / "run_stage2",
            ),
        ]
        if args.stage3_epochs:
            # Stage 3 adds the hard-negative settings to the data.
            stages.append(
                dataclasses.replace(
                    base,
                    data=relative(data3),
                    init=str(stage2),
                    epochs=args.stage3_epochs,
                    lr=args.lr * STAGE3_LR_FACTOR,
                    run_dir=args.work / "run_stage3",
                )
            )
    for k, config in enumerate(stages, 1):
        state = Path(config.run_folder) / "state.json"
        if len(stages) > 1 and Path(config.output).is_file() and _finished(state):
            print(f"stage {k}: {config.output} is there (its run finished); skipped", flush=True)
            continue
        print(f"stage {k}: {config.epochs} epochs x {config.steps_per_epoch} steps", flush=True)
        resume = args.resume and state.is_file()
        result = train(config, resume=resume, on_epoch=report)
        print(f"wrote {result.model_path}; validation {result.metrics}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
