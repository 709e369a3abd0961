"""Tests for roadseg.optional: optional packages, or how to install them."""

from __future__ import annotations

import sys

import pytest

from roadseg.errors import MissingDependencyError, RoadsegError
from roadseg.optional import install_hint, is_installed, require


def test_require_imports_an_installed_module() -> None:
    assert require("json", "a test").dumps([1]) == "[1]"
    assert is_installed("json")


def test_missing_module_says_what_needs_it_and_how(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert not is_installed("roadseg_no_such_module")
    with pytest.raises(MissingDependencyError) as info:
        require("onnxruntime", "the onnxruntime engine")
    assert str(info.value) == (
        'the onnxruntime engine needs the onnxruntime package: pip install "roadseg[onnx]"'
    )
    assert isinstance(info.value, RoadsegError) and isinstance(info.value, ImportError)


@pytest.mark.parametrize(
    ("module", "extra"), [("onnx", "onnx"), ("onnxruntime", "onnx"), ("openvino", "openvino")]
)
def test_each_module_has_its_extra(module: str, extra: str) -> None:
    assert install_hint(module) == f'pip install "roadseg[{extra}]"'


def test_a_purpose_can_name_its_own_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(
        MissingDependencyError, match=r'onnx package: pip install "roadseg\[openvino\]"'
    ):
        require("onnx", "roadseg export --format openvino", "openvino")
