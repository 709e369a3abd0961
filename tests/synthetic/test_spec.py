"""Tests for roadseg.synthetic's scene specification and size checks."""

from __future__ import annotations

import pytest

from roadseg.synthetic import SceneSpec, generate_scene


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="height"):
        generate_scene(0, 10)
    with pytest.raises(ValueError, match="seed"):
        SceneSpec(seed=-1)
    with pytest.raises(ValueError, match="gsd"):
        SceneSpec(gsd=0.0)
