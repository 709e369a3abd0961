"""Tests for roadseg.engines: choosing an engine, its threads and precision."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from roadseg.engines import (
    ENGINES,
    THREADS_ENV,
    EngineFunction,
    available_engines,
    engine_threads,
    network_fn,
)
from roadseg.errors import EngineError, MissingDependencyError
from roadseg.model import LoadedModel, ModelInfo


@pytest.fixture(scope="module")
def tiny_loaded(tiny_resunet: Any) -> LoadedModel:
    return LoadedModel(model=tiny_resunet, info=ModelInfo(bands=3), path=Path("tiny"), sha256="")


def test_available_engines_are_the_installed_ones() -> None:
    from roadseg.optional import is_installed

    found = available_engines()
    assert set(found) <= set(ENGINES)
    for engine in ENGINES:
        assert (engine in found) == (is_installed("onnx") and is_installed(engine))


def test_available_engines_without_onnx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)
    assert available_engines() == []


def test_threads_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(THREADS_ENV, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert engine_threads() == len(os.sched_getaffinity(0))
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # what a Dask worker is given
    assert engine_threads() == 3
    monkeypatch.setenv(THREADS_ENV, "5")  # roadseg's own setting wins
    assert engine_threads() == 5
    monkeypatch.setenv(THREADS_ENV, "many")
    with pytest.raises(EngineError, match="ROADSEG_ENGINE_THREADS='many'"):
        engine_threads()


@pytest.mark.parametrize(
    ("engine", "precision", "words"),
    [
        ("tensorrt", "auto", "unknown engine 'tensorrt'"),
        ("onnxruntime", "bfloat16", "cannot run precision 'bfloat16'"),
        ("openvino", "float16", "cannot run precision 'float16'"),
    ],
)
def test_unknown_engine_or_precision(tiny_loaded: LoadedModel, engine, precision, words) -> None:
    with pytest.raises(EngineError, match=words):
        network_fn(tiny_loaded, engine, precision)


@pytest.mark.parametrize("engine", ENGINES)
def test_missing_package_says_how_to_install(
    tiny_loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    monkeypatch.setitem(sys.modules, engine, None)
    extra = "onnx" if engine == "onnxruntime" else "openvino"
    with pytest.raises(MissingDependencyError) as info:
        network_fn(tiny_loaded, engine, "auto")
    assert str(info.value) == (
        f'the {engine} engine needs the {engine} package: pip install "roadseg[{extra}]"'
    )


def test_batch_shape_is_checked() -> None:
    fn = EngineFunction("onnxruntime", "float32", 1, 3, "0", lambda x: x[:, :1])
    assert fn(np.zeros((2, 16, 8, 3), np.float32)).shape == (2, 16, 8)
    with pytest.raises(EngineError, match=r"takes \(N, H, W, 3\) batches"):
        fn(np.zeros((2, 16, 16, 4), np.float32))
    with pytest.raises(EngineError, match="multiples of 8"):
        fn(np.zeros((1, 12, 16, 3), np.float32))


def test_bad_thread_count(tiny_loaded: LoadedModel) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    with pytest.raises(EngineError, match="positive"):
        network_fn(tiny_loaded, "onnxruntime", "auto", threads=0)
