"""Scene settings: the kinds of landscape the generator makes, in one registry.

A setting decides how a scene looks (its :class:`~roadseg.synthetic.palettes.Style`)
and which stages build its road network and dirt tracks, in which order. Every stage
draws from the scene's one random generator, so the stages of a setting and their
order are part of every scene it makes: a new kind of landscape (suburbs, a dense
city, highways, ...) is a new entry in :data:`SETTINGS`, not a change to the stages
of an existing one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from roadseg.synthetic.elements import Line
from roadseg.synthetic.network import NetworkBuilder, place_tracks
from roadseg.synthetic.palettes import Style, make_style


@dataclass(frozen=True)
class Setting:
    """One kind of landscape.

    Attributes:
        name: its key in :data:`SETTINGS`.
        make_style: draws the scene-wide look (the first draws of the generator).
        build_network: runs the network stages on a fresh builder and returns the
            roundabout islands (x, y, radius).
        place_tracks: draws the dirt tracks (never roads) once the network is built.
    """

    name: str
    make_style: Callable[[np.random.Generator], Style]
    build_network: Callable[[NetworkBuilder], list[tuple[float, float, float]]]
    place_tracks: Callable[[np.random.Generator, NetworkBuilder, Style], list[Line]]


def countryside_network(net: NetworkBuilder) -> list[tuple[float, float, float]]:
    """Rivers, towns, main roads through them, street grids in the towns, secondary
    and minor roads branching off until the style's road share, then roundabouts."""
    net.rivers_stage()
    net.towns_stage()
    net.main_stage()
    net.grid_stage()
    net.branch_stage()
    return net.roundabout_stage()


#: Fields, meadows and forests with rivers, small towns and their street grids.
COUNTRYSIDE = Setting("countryside", make_style, countryside_network, place_tracks)

#: Every setting by name.
SETTINGS: dict[str, Setting] = {s.name: s for s in (COUNTRYSIDE,)}

#: The setting of every scene until a SceneSpec chooses one.
DEFAULT_SETTING = COUNTRYSIDE.name
