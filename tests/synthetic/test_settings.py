"""Tests for roadseg.synthetic.settings: the registry of landscape settings."""

from __future__ import annotations

from roadseg.synthetic.settings import DEFAULT_SETTING, SETTINGS


def test_registry_is_keyed_by_name_and_holds_the_default() -> None:
    assert DEFAULT_SETTING in SETTINGS
    for name, setting in SETTINGS.items():
        assert setting.name == name
        assert callable(setting.make_style) and callable(setting.build_network)
        assert callable(setting.place_tracks)
