"""Training: presets, schedules, precision, checkpoints, resume, the model file (roadseg.train).

The runs use a tiny network (filters 16,16,16,16) on 32 px crops of a tiny
synthetic dataset, so each takes a few seconds on a CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from roadseg import precision as precision_module
from roadseg.errors import ModelError, OutputError, RoadsegError
from roadseg.model import ModelInfo, build_resunet, load_model, read_model_info, save_model
from roadseg.thresholds import F1Sweep
from roadseg.train import (
    PRESETS,
    EpochReport,
    TrainConfig,
    make_schedule,
    plot_history,
    train,
    training_policy,
)

#: Narrower widths crash TensorFlow 2.21's oneDNN float32 conv backprop at 64 px on this CPU.
TINY = (16, 16, 16, 16)


def scene(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A dark noisy image with bright straight roads, and its 0/1 mask."""
    rng = np.random.default_rng(seed)
    image = rng.normal(60, 12, (size, size, 3)).clip(0, 255)
    mask = np.zeros((size, size), np.uint8)
    for _ in range(2):
        r, c = (int(v) for v in rng.integers(4, size - 10, 2))
        mask[r : r + 6] = 1
        mask[:, c : c + 6] = 1
    image[mask > 0] = (215, 210, 200)
    return image.astype(np.uint8), mask


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(6):
        image, mask = scene(64, i)
        Image.fromarray(image).save(root / "images" / f"t{i}.png")
        Image.fromarray(mask * 255).save(root / "masks" / f"t{i}.png")
    return root


def tiny_config(dataset: Path, tmp_path: Path, **kw: object) -> TrainConfig:
    options: dict[str, object] = {
        "data": dataset,
        "output": tmp_path / "model.keras",
        "epochs": 1,
        "batch_size": 4,
        "steps_per_epoch": 12,
        "val_steps": 2,
        "lr": 5e-3,
        "filters": TINY,
        "tile_size": 32,
        "precision": "float32",
        "gsd": 0.5,
    }
    options.update(kw)
    return TrainConfig(**options)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Pure pieces
# ---------------------------------------------------------------------------------------------


def test_paper_preset_is_the_papers_setup() -> None:
    paper = PRESETS["paper"]
    assert (paper.loss, paper.optimizer, paper.lr, paper.epochs, paper.batch_size) == (
        "mse",
        "sgd",
        1e-3,
        50,
        8,
    )
    assert paper.augment is False and paper.patience == 0 and paper.step_epochs == 20
    default = PRESETS["default"]
    assert (default.loss, default.optimizer, default.schedule) == ("bce_dice", "adam", "cosine")


def test_step_schedule_divides_by_ten_every_20_epochs() -> None:
    schedule = make_schedule(PRESETS["paper"], 1e-3, epochs=50, steps_per_epoch=10)
    lr = {step: float(schedule(step)) for step in (0, 199, 200, 399, 400, 499)}
    assert lr[0] == pytest.approx(1e-3) and lr[199] == pytest.approx(1e-3)
    assert lr[200] == pytest.approx(1e-4) and lr[399] == pytest.approx(1e-4)
    assert lr[400] == pytest.approx(1e-5) and lr[499] == pytest.approx(1e-5)


def test_cosine_schedule_decays_to_a_floor() -> None:
    schedule = make_schedule(PRESETS["default"], 1e-3, epochs=4, steps_per_epoch=5)
    assert float(schedule(0)) == pytest.approx(1e-3)
    assert float(schedule(10)) == pytest.approx(0.51e-3, rel=1e-3)
    assert float(schedule(20)) == pytest.approx(0.02e-3, rel=1e-3)


@pytest.mark.parametrize(
    ("gpu", "bf16", "expected"),
    [(True, True, "mixed_float16"), (False, True, "mixed_bfloat16"), (False, False, "float32")],
)
def test_auto_precision(
    monkeypatch: pytest.MonkeyPatch, gpu: bool, bf16: bool, expected: str
) -> None:
    monkeypatch.setattr(precision_module, "gpu_available", lambda: gpu)
    monkeypatch.setattr(precision_module, "cpu_has_bf16", lambda: bf16)
    assert training_policy("auto") == expected
    assert training_policy("float32") == "float32"
    assert training_policy("bfloat16") == "mixed_bfloat16"
    with pytest.raises(ValueError, match="precision"):
        training_policy("int8")


def test_config_round_trips_and_validates(tmp_path: Path) -> None:
    config = TrainConfig(data=tmp_path, filters=TINY, road_color=(1, 2, 3), bands=(1, 1, 1))
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config.run_folder == Path("roadseg_model_run")
    with pytest.raises(ValueError, match="multiple of 8"):
        TrainConfig(data=tmp_path, tile_size=30)
    with pytest.raises(ValueError, match="not both"):
        TrainConfig(data=tmp_path, road_color=(1, 2, 3), road_value=2)
    with pytest.raises(ValueError, match="preset"):
        TrainConfig(data=tmp_path, preset="fast")


def test_the_best_threshold_is_the_middle_of_a_tie() -> None:
    separated = F1Sweep()
    truth = np.array([1, 1, 0, 0, 0], bool)
    separated.update(np.array([0.9, 0.95, 0.1, 0.05, 0.12]), truth)
    threshold, f1, precision, recall = separated.best()
    assert f1 == precision == recall == 1.0
    assert 0.45 < threshold < 0.55  # the lowest end of the tie would be 0.0195

    rng = np.random.default_rng(0)
    noisy = F1Sweep()
    truth = rng.random(5000) < 0.2
    noisy.update(np.clip(truth * 0.3 + rng.random(5000) * 0.7, 0, 1), truth)
    thresholds, precision, recall, f1 = noisy.curve()
    i = 5 + int(np.argmax(f1[5:-5]))  # no tie: the best bin itself
    assert noisy.best() == pytest.approx((thresholds[i], f1[i], precision[i], recall[i]))


def test_plot_history_draws_a_png(tmp_path: Path) -> None:
    history = {
        "loss": [1.0, 0.7, 0.5],
        "val_loss": [1.1, 0.8, None],
        "val_iou": [0.1, 0.3, 0.4],
        "val_precision": [0.2, 0.4, 0.5],
        "val_recall": [0.5, 0.6, 0.7],
    }
    path = plot_history(history, tmp_path / "curves.png")
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size == (960, 420)
        assert len(img.getcolors(1 << 16) or []) > 3  # more than a blank canvas


# ---------------------------------------------------------------------------------------------
# Training runs
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_one_epoch_lowers_the_loss_and_writes_a_loadable_model(
    dataset: Path, tmp_path: Path
) -> None:
    import keras

    from roadseg.losses import bce_dice_loss

    epochs: list[EpochReport] = []
    result = train(tiny_config(dataset, tmp_path, steps_per_epoch=30), on_epoch=epochs.append)

    # The loss on the validation crops, before (same seed -> same initial weights) and after.
    keras.utils.set_random_seed(0)
    untrained = build_resunet((32, 32, 3), TINY)
    trained = load_model(result.model_path)
    from roadseg.data import CropReader, CropSpec, crop_stream

    reader = CropReader(CropSpec(tile_size=32, decoder=result.report.decoder))
    crops = list(crop_stream(result.report.val, reader, seed=9, train=False, count=16))
    x = np.stack([c[0] for c in crops])
    y = np.stack([c[1] for c in crops])
    before = float(np.mean(bce_dice_loss(y, untrained(x, training=False))))
    after = float(np.mean(bce_dice_loss(y, trained.model(x, training=False))))
    assert after < 0.85 * before

    info = trained.info
    assert info.filters == TINY and info.tile_size == 32 and info.bands == 3
    assert info.normalization == "auto" and info.gsd == 0.5
    assert 0.0 < info.threshold < 1.0
    assert info.threshold == result.metrics["threshold"]
    prov = info.provenance
    assert prov["preset"] == "default" and prov["loss"] == "bce+dice"
    assert "image/mask folders layout" in prov["data"]
    assert set(prov["validation"]) >= {"f1", "iou", "precision", "recall", "relaxed_precision"}
    assert trained.model.input_shape == (None, None, None, 3)  # any tile size

    run = result.run_dir
    assert (run / "checkpoints" / "last.keras").is_file()
    assert (run / "checkpoints" / "best.keras").is_file()
    assert (run / "log.csv").read_text().startswith("epoch,")
    assert (run / "curves.png").is_file()
    state = json.loads((run / "state.json").read_text())
    assert state["epoch"] == 1 and state["finished"] is True
    assert len(epochs) == 1 and epochs[0].best and "val_loss" in epochs[0].logs
    assert not list(tmp_path.glob(".model*"))  # no temporary files left

    with pytest.raises(OutputError, match="holds a finished run"):
        train(tiny_config(dataset, tmp_path))
    with pytest.raises(OutputError, match="already exists"):
        train(tiny_config(dataset, tmp_path, run_dir=tmp_path / "other_run"))


class _Interrupt(Exception):
    pass


@pytest.mark.slow
def test_resume_continues_epoch_optimizer_and_schedule(dataset: Path, tmp_path: Path) -> None:
    import keras

    config = tiny_config(dataset, tmp_path, epochs=2, steps_per_epoch=3, precision="bfloat16")

    def stop_after_first(epoch: EpochReport) -> None:
        if epoch.epoch == 1:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train(config, on_epoch=stop_after_first)
    last = config.run_folder / "checkpoints" / "last.keras"
    first = keras.saving.load_model(last, compile=True)
    assert int(first.optimizer.iterations) == 3
    assert not config.output.exists()

    with pytest.raises(OutputError, match="--resume"):
        train(config)

    seen: list[int] = []
    result = train(config, resume=True, on_epoch=lambda e: seen.append(e.epoch))
    assert seen == [2]
    assert result.epochs_done == 2 and result.history["epoch"] == [1, 2]
    log_rows = (config.run_folder / "log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in log_rows] == ["epoch", "0", "1"]
    resumed = keras.saving.load_model(last, compile=True)
    assert int(resumed.optimizer.iterations) == 6  # the schedule continued, not restarted
    assert resumed.get_layer("enc1_conv1").dtype_policy.name == "mixed_bfloat16"
    assert read_model_info(result.model_path) is not None
    assert result.precision == "mixed_bfloat16"

    with pytest.raises(ModelError, match="already finished"):
        train(config, resume=True)


def test_resume_without_a_run_says_so(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="nothing to resume"):
        train(tiny_config(dataset, tmp_path), resume=True)


@pytest.mark.slow
def test_fine_tuning_from_a_model_file(dataset: Path, tmp_path: Path) -> None:
    start = build_resunet((None, None, 3), TINY)
    init_path = save_model(
        start, tmp_path / "start.keras", ModelInfo(tile_size=32, filters=TINY, threshold=0.4)
    )
    with pytest.raises(ModelError, match="leave --filters out"):
        train(tiny_config(dataset, tmp_path, init=str(init_path), filters=(8, 8, 8, 8)))
    result = train(
        tiny_config(
            dataset,
            tmp_path,
            init=str(init_path),
            filters=None,
            tile_size=None,
            lr=None,
            steps_per_epoch=2,
        )
    )
    assert result.info.filters == TINY and result.info.tile_size == 32
    assert result.info.provenance["init"]["path"] == str(init_path)
    assert "lr 0.0003" in result.info.provenance["optimizer"]


def test_validation_metrics_with_a_threshold_on_the_level_grid() -> None:
    """A validation set the model separates perfectly puts the F1-best threshold at
    exactly 0.5, which lies on the k/254 level grid (127/254): the final scoring
    once failed there with "values must have 256 entries, got shape (255,)"."""
    from roadseg.train import validation_metrics

    rng = np.random.default_rng(0)
    crops = []
    for _ in range(3):
        mask = (rng.random((16, 16, 1)) > 0.7).astype(np.float32)
        crops.append((mask.repeat(3, axis=-1), mask))

    def infer(x: np.ndarray) -> np.ndarray:
        return np.where(x[..., 0] > 0.5, 0.99, 0.01).astype(np.float32)

    metrics = validation_metrics(infer, iter(crops), batch_size=2)
    assert metrics["threshold"] == 0.5
    assert metrics["f1"] == 1.0 and metrics["crops"] == 3


def test_a_failing_final_validation_still_saves_the_best_checkpoint(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import roadseg.train as train_module

    def broken(*args: object, **kwargs: object) -> dict[str, object]:
        raise ValueError("scoring exploded")

    monkeypatch.setattr(train_module, "validation_metrics", broken)
    with caplog.at_level("WARNING", logger="roadseg"):
        result = train(tiny_config(dataset, tmp_path))
    assert result.model_path.is_file()
    info = read_model_info(result.model_path)
    assert info.threshold == 0.5
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("final validation failed" in w and "scoring exploded" in w for w in warnings)
    assert all("\n" not in w for w in warnings)


def test_gsd_range_and_normalization_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="gsd_range"):
        TrainConfig(data=tmp_path, gsd_range=(1.2, 0.3))
    with pytest.raises(ValueError, match="normalization must be one of auto, percentile"):
        TrainConfig(data=tmp_path, normalization="zscore")
    config = TrainConfig(data=tmp_path, gsd_range=(0.3, 1.2), normalization="percentile")
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_training_over_a_gsd_range_records_its_gsd_and_normalization(
    dataset: Path, tmp_path: Path
) -> None:
    result = train(tiny_config(dataset, tmp_path, gsd_range=(0.3, 1.2), normalization="percentile"))
    info = read_model_info(result.model_path)
    assert info is not None
    assert info.gsd == 0.6 and info.normalization == "percentile"
    assert info.provenance["gsd_range"] == [0.3, 1.2]
    # A fine-tune must see inputs as its init model learned them.
    with pytest.raises(RoadsegError, match="normalization auto differs"):
        train(
            tiny_config(
                dataset,
                tmp_path,
                init=str(result.model_path),
                normalization="auto",
                output=tmp_path / "ft.keras",
            )
        )
