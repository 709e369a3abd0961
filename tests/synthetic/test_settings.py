"""Tests for roadseg.synthetic.settings: the registry of landscape settings."""

from __future__ import annotations

from roadseg.synthetic.settings import DEFAULT_SETTING, SETTINGS


def test_registry_is_keyed_by_name_and_holds_the_default() -> None:
    assert DEFAULT_SETTING in SETTINGS
    for name, setting in SETTINGS.items():
        assert setting.name == name
        assert callable(setting.make_style) and callable(setting.build_network)
        assert callable(setting.place_tracks)


import numpy as np  # noqa: E402
import pytest  # noqa: E402

from roadseg.synthetic import SceneSpec, generate_scene, render_window  # noqa: E402

NEW_SETTINGS = [n for n in SETTINGS if n != DEFAULT_SETTING]


@pytest.mark.parametrize("name", NEW_SETTINGS)
def test_setting_is_deterministic_and_windows_match(name: str) -> None:
    spec = SceneSpec(seed=3, setting=name)
    a = generate_scene(256, 320, spec)
    b = generate_scene(256, 320, SceneSpec(seed=3, setting=name))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    img, mask = render_window(256, 320, spec, 70, 90, 100, 130)
    assert np.array_equal(img, a.image[70:170, 90:220])
    assert np.array_equal(mask, a.mask[70:170, 90:220])
    other = generate_scene(256, 320, SceneSpec(seed=4, setting=name))
    assert not np.array_equal(a.image, other.image)


@pytest.mark.parametrize("name", NEW_SETTINGS)
def test_setting_road_fraction_is_plausible(name: str) -> None:
    fracs = [generate_scene(512, 512, SceneSpec(seed=s, setting=name)).mask.mean() for s in (0, 1)]
    assert 0.02 <= float(np.mean(fracs)) <= 0.35


def test_unknown_setting_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="suburbs") as err:
        SceneSpec(setting="moon")
    for name in SETTINGS:
        assert name in str(err.value)
