"""``roadseg train --init M --roads L``: the finetune preset's defaults, early stopping on
the spatial validation, and the progress line (validation F1, ETA)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from shapely import box

from roadseg.cli import cli
from roadseg.data.road_data import scan_road_dataset
from roadseg.data.roads import WidthRule
from roadseg.model import ModelInfo, build_resunet, load_model, read_model_info, save_model
from roadseg.synthetic import write_scene
from roadseg.train import FINE_TUNE_LR, PRESETS, f1_from
from roadseg.train_config import preset_for
from roadseg.vector_io import read_lines, reproject_lines, write_lines

#: The init model's widths and tile: tiny, as the other CLI training tests use them.
FILTERS = (4, 8, 8, 16)
TILE = 64
#: Blocks of 128 px (two tiles) on the 0.5 m scene: four of them, one validates.
BLOCKS = ("--val-block-m", "32")
FAST = ("--batch-size", "2", "--val-steps", "1", "--precision", "bfloat16")


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("scene")
    paths = write_scene(out, 256, 256, name="s")
    return paths.image, paths.centerlines


@pytest.fixture(scope="module")
def init(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("init") / "init.keras"
    save_model(
        build_resunet((None, None, 3), FILTERS),
        path,
        ModelInfo(filters=FILTERS, tile_size=TILE, threshold=0.5),
    )
    return path


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["train", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stderr


def state_of(out: Path) -> dict:
    return json.loads((out.parent / f"{out.stem}_run" / "state.json").read_text())


def test_the_preset_follows_init_unless_named() -> None:
    assert preset_for(None, init=True).name == "finetune"
    assert preset_for(None, init=False).name == "default"
    assert preset_for("default", init=True).name == "default"
    finetune = PRESETS["finetune"]
    assert finetune.lr == FINE_TUNE_LR < PRESETS["default"].lr
    assert finetune.epochs * finetune.steps_per_epoch <= 200  # minutes on a CPU, not hours
    assert finetune.monitor == "val_f1" and finetune.patience > 0
    assert f1_from(0.5, 1.0) == pytest.approx(2 / 3) and f1_from(0.0, 0.0) == 0.0


@pytest.mark.slow
def test_init_chooses_the_finetune_defaults(
    scene: tuple[Path, Path], init: Path, tmp_path: Path
) -> None:
    image, lines = scene
    out = tmp_path / "m.keras"
    code, err = run(
        "--data", str(image), "--roads", str(lines), "--width-field", "width_m",
        "--init", str(init), "-o", str(out), *BLOCKS, *FAST,
    )  # fmt: skip
    assert code == 0, err
    state = state_of(out)
    assert state["config"]["preset"] is None  # the user named none
    finetune = PRESETS["finetune"]
    plan = state["plan"]
    assert plan["preset"] == "finetune"
    assert plan["lr"] == FINE_TUNE_LR
    assert plan["epochs"] == finetune.epochs and plan["steps_per_epoch"] == 25
    assert plan["patience"] == finetune.patience and state["monitor"] == "val_f1"
    history = state["history"]["val_f1"]
    assert len(history) == state["epoch"]
    # The progress lines: the --init model's validation F1 first (epoch 0), then
    # validation F1 and the time left, every epoch.
    epochs = [line for line in err.splitlines() if line.startswith("epoch ")]
    assert epochs[0].startswith("epoch 0/") and "the --init model" in epochs[0]
    assert all("val_f1 " in line for line in epochs)
    assert "ETA " in epochs[1] or "early stop" in epochs[1]
    baseline = float(epochs[0].split("val_f1 ")[1].split()[0])
    # The kept epoch is the best one, and it beats the --init model (else that is kept).
    if state["best_epoch"]:
        assert history[state["best_epoch"] - 1] == max(history)
        assert state["best"] > baseline - 5e-4  # the line rounds to 3 decimals
    else:
        assert max(history) <= baseline + 5e-4
    info = read_model_info(out)
    assert info is not None and info.provenance["preset"] == "finetune"
    assert info.provenance["best_epoch"] == state["best_epoch"]
    assert "finetune preset" in err and "without a better val_f1" in err


def roads_outside_validation(image: Path, lines: Path, out: Path) -> Path:
    """The scene's road lines that keep clear of every validation block (so the
    validation crops hold no road and validation F1 stays 0 whatever the model)."""
    import rasterio

    found = scan_road_dataset(image, lines, tile_size=TILE, block_m=32)
    scene = found.scenes[image]
    val = [b.block for b in scene.blocks if b.split == "val"]
    assert val and any(b.split == "train" for b in scene.blocks)
    with rasterio.open(image) as src:
        t, crs = src.transform, src.crs
    blocks = []
    for w in val:
        x0, y0 = t @ (w.col_off, w.row_off)
        x1, y1 = t @ (w.col_off + w.width, w.row_off + w.height)
        # 20 m around the block: clear of the widest road band.
        blocks.append(box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)).buffer(20.0))
    read = read_lines(lines)
    doc = json.loads(lines.read_text())
    kept, widths = [], []
    for line, feature in zip(
        reproject_lines(list(read.lines), read.crs, crs), doc["features"], strict=True
    ):
        if not any(line.intersects(b) for b in blocks):
            kept.append(line)
            widths.append(float(feature["properties"]["width_m"]))
    assert kept
    return write_lines(out, kept, {"width_m": widths}, crs)


@pytest.mark.slow
def test_early_stopping_ends_a_run_whose_validation_does_not_improve(
    scene: tuple[Path, Path], init: Path, tmp_path: Path
) -> None:
    image, lines = scene
    layer = roads_outside_validation(image, lines, tmp_path / "train_only.gpkg")
    out = tmp_path / "m.keras"
    code, err = run(
        "--data", str(image), "--roads", str(layer), "--width-field", "width_m",
        "--init", str(init), "-o", str(out), *BLOCKS, *FAST,
        "--epochs", "5", "--steps-per-epoch", "2", "--patience", "2",
    )  # fmt: skip
    assert code == 0, err
    state = state_of(out)
    # The --init model scores 0 too, and no epoch beats it: two epochs of patience,
    # then the fine-tune gives the --init model back.
    assert state["history"]["val_f1"] == [0.0, 0.0]
    assert state["stopped_early"] and state["epoch"] == 2 and state["best_epoch"] == 0
    assert "Trained 2 epochs (early stop); kept epoch 0 (the --init model" in err
    kept, start = load_model(out).model.get_weights(), load_model(init).model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(kept, start, strict=True))


def test_the_width_rule_of_the_layer_is_the_training_rule(
    scene: tuple[Path, Path], tmp_path: Path
) -> None:
    """The train-only layer keeps the scene's widths (a sanity check of the helper)."""
    image, lines = scene
    layer = roads_outside_validation(image, lines, tmp_path / "t.gpkg")
    found = scan_road_dataset(
        image, layer, tile_size=TILE, block_m=32, rule=WidthRule(field="width_m")
    )
    assert not found.report.errors
    assert found.scenes[image].road_share > 0


@pytest.mark.slow
def test_a_fine_tune_stopped_after_its_baseline_resumes(
    scene: tuple[Path, Path], init: Path, tmp_path: Path
) -> None:
    """Stopped right after epoch 0 (the --init model scored), the run resumes."""
    from roadseg.train import TrainConfig, train

    image, lines = scene
    out = tmp_path / "m.keras"
    config = TrainConfig(
        data=image,
        roads=lines,
        width_field="width_m",
        init=str(init),
        output=out,
        epochs=1,
        steps_per_epoch=2,
        batch_size=2,
        val_steps=1,
        precision="bfloat16",
        val_block_m=32,
    )

    class Stop(Exception):
        pass

    def stop_at_baseline(epoch: object) -> None:
        if getattr(epoch, "epoch", None) == 0:
            raise Stop

    with pytest.raises(Stop):
        train(config, on_epoch=stop_at_baseline)
    assert not out.exists() and state_of(out)["best_epoch"] == 0
    result = train(config, resume=True)
    assert out.is_file() and result.epochs_done == 1
