"""``roadseg evaluate --model --data``: a model scored on a whole dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from roadseg.cli import cli
from roadseg.data import LabelRule
from roadseg.errors import DatasetError
from roadseg.evaluate_dataset import evaluate_dataset
from roadseg.model import ModelInfo, build_resunet, load_model, save_model

DUBAI_ROAD = (110, 193, 228)


def _mask(seed: int, size: int = 48) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = np.zeros((size, size), np.uint8)
    r, c = (int(v) for v in rng.integers(4, size - 10, 2))
    m[r : r + 5] = 1
    m[:, c : c + 5] = 1
    return m


def _plain(root: Path, n: int = 4, *, colour: bool = False) -> Path:
    """images/ + masks/ where each image IS its mask (white roads on black)."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        m = _mask(i)
        Image.fromarray(np.repeat(m[..., None] * 255, 3, axis=-1)).save(
            root / "images" / f"p{i}.png"
        )
        if colour:  # a multi-class colour mask: road plus another class
            rgb = np.zeros((*m.shape, 3), np.uint8)
            rgb[:] = (60, 16, 152)
            rgb[m > 0] = DUBAI_ROAD
            Image.fromarray(rgb).save(root / "masks" / f"p{i}.png")
        else:
            Image.fromarray(m * 255).save(root / "masks" / f"p{i}.png")
    return root


def _red_is_road(batch: np.ndarray) -> np.ndarray:
    """A perfect 'model' for these datasets: the normalised red band."""
    return batch[..., 0]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "tiny.keras"
    filters = (4, 8, 8, 16)
    save_model(
        build_resunet((None, None, 3), filters=filters),
        path,
        ModelInfo(filters=filters, tile_size=64, threshold=0.5),
    )
    return load_model(path)


def test_a_perfect_prediction_scores_one_per_image_and_overall(model, tmp_path) -> None:
    data = _plain(tmp_path / "d")
    result = evaluate_dataset(model, data, infer_fn=_red_is_road)
    assert result.split == "all" and len(result.images) == 4
    for score in (result.overall, *(s.result for s in result.images)):
        assert score.iou == pytest.approx(1.0)
        assert score.relaxed_precision == pytest.approx(1.0)
        assert score.relaxed_recall == pytest.approx(1.0)
    truth_pixels = sum(int(_mask(i).sum()) for i in range(4))
    assert result.overall.counts.tp == truth_pixels  # pooled over every pixel


def test_scores_are_pooled_not_averaged(model, tmp_path) -> None:
    data = _plain(tmp_path / "d")

    def miss_the_first(batch: np.ndarray) -> np.ndarray:
        return batch[..., 0]

    # Blank out one image: the truth keeps its roads, the prediction has none.
    first = data / "images" / "p0.png"
    Image.fromarray(np.zeros((48, 48, 3), np.uint8)).save(first)
    result = evaluate_dataset(model, data, infer_fn=miss_the_first)
    by_name = {s.image.name: s.result for s in result.images}
    assert by_name["p0.png"].recall == 0.0 and by_name["p1.png"].recall == pytest.approx(1.0)
    missed = int(_mask(0).sum())
    total = sum(int(_mask(i).sum()) for i in range(4))
    assert result.overall.recall == pytest.approx((total - missed) / total)


def test_colour_masks_and_the_layouts_own_split(model, tmp_path) -> None:
    root = tmp_path / "d"
    _plain(root / "train", 2, colour=True)
    _plain(root / "val", 3, colour=True)
    result = evaluate_dataset(
        model, root, rule=LabelRule(road_color=DUBAI_ROAD), infer_fn=_red_is_road
    )
    assert result.split == "val" and len(result.images) == 3
    assert result.overall.f1 == pytest.approx(1.0)
    with pytest.raises(DatasetError, match="no test pairs"):
        evaluate_dataset(model, root, split="test", rule=LabelRule(road_color=DUBAI_ROAD))


def test_a_mask_of_another_size_is_named(model, tmp_path) -> None:
    data = _plain(tmp_path / "d", 2)
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(data / "masks" / "p1.png")
    with pytest.raises(DatasetError, match="p1"):
        evaluate_dataset(model, data, infer_fn=_red_is_road)


def test_cli_reports_json_and_one_line_errors(model, tmp_path) -> None:
    data = _plain(tmp_path / "d", 2)
    run = CliRunner().invoke
    result = run(cli, ["evaluate", "--data", str(data), "--model", str(model.path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {"iou", "f1", "relaxed_precision", "breakeven"} <= set(report["overall"])
    assert [Path(i["image"]).name for i in report["images"]] == ["p0.png", "p1.png"]
    table = run(cli, ["evaluate", "--data", str(data), "--model", str(model.path)])
    assert table.exit_code == 0 and "p1.png" in table.output and "relaxed R" in table.output

    for args in (["evaluate"], ["evaluate", "--data", str(data), "a.tif", "b.tif"]):
        bad = run(cli, args)
        assert bad.exit_code == 2 and "Traceback" not in bad.output
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = run(cli, ["evaluate", "--data", str(empty), "--model", str(model.path)])
    assert bad.exit_code == 1 and "Traceback" not in bad.output
    assert len([line for line in bad.output.splitlines() if line.strip()]) == 1


def test_engine_runs_the_model_and_agrees_with_tensorflow(model, tmp_path) -> None:
    from roadseg.engines import available_engines

    if "onnxruntime" not in available_engines():
        pytest.skip("onnxruntime is not installed")
    data = _plain(tmp_path / "d", 2)
    args = ["evaluate", "--data", str(data), "--model", str(model.path), "--json"]
    run = CliRunner().invoke
    tf = run(cli, args)
    ort = run(cli, [*args, "--engine", "onnxruntime"])
    assert tf.exit_code == 0 and ort.exit_code == 0, ort.output
    a, b = json.loads(tf.stdout)["overall"], json.loads(ort.stdout)["overall"]
    assert abs(a["f1"] - b["f1"]) < 0.02 and abs(a["iou"] - b["iou"]) < 0.02
    pred = tmp_path / "d" / "p0.png"
    bad = run(cli, ["evaluate", str(pred), str(pred), "--engine", "onnxruntime"])
    assert bad.exit_code == 2 and "--engine goes with --data" in bad.output


def test_engine_names_match_the_library() -> None:
    from roadseg.cli.options import ENGINE_NAMES
    from roadseg.engines import PREDICT_ENGINES

    assert ENGINE_NAMES == PREDICT_ENGINES


def _write_mask(path: Path, mask: np.ndarray) -> None:
    Image.fromarray(mask.astype(np.uint8) * 255).save(path)


def test_two_folders_are_matched_by_name_and_pooled(tmp_path) -> None:
    from roadseg.evaluate_dataset import evaluate_folders

    preds, truths = tmp_path / "pred", tmp_path / "truth"
    preds.mkdir()
    truths.mkdir()
    for i in range(3):
        _write_mask(truths / f"t{i}_mask.png", _mask(i))
        guess = _mask(i) if i < 2 else np.zeros((48, 48), np.uint8)  # t2: nothing found
        _write_mask(preds / f"t{i}_roads.png", guess)
    _write_mask(preds / "stray.png", _mask(7))  # no truth: ignored
    result = evaluate_folders(preds, truths)
    assert [p.name for p, _, _ in result.pairs] == ["t0_roads.png", "t1_roads.png", "t2_roads.png"]
    total = sum(int(_mask(i).sum()) for i in range(3))
    found = total - int(_mask(2).sum())
    assert result.pooled.recall == pytest.approx(found / total)
    assert result.pooled.precision == pytest.approx(1.0)

    out = CliRunner().invoke(cli, ["evaluate", str(preds), str(truths), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["overall"]["recall"] == pytest.approx(found / total)


def test_folders_with_nothing_in_common_fail_in_one_line(tmp_path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    _write_mask(a / "x.png", _mask(0))
    _write_mask(b / "y.png", _mask(0))
    out = CliRunner().invoke(cli, ["evaluate", str(a), str(b)])
    assert out.exit_code == 1 and "Traceback" not in out.output
    assert "matches" in out.output and len(out.output.strip().splitlines()) == 1
