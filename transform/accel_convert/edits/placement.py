"""Where a new statement goes among existing ones: the deepest block that holds a set of locations."""

from __future__ import annotations

from accel_convert.analysis.facts import Location
from accel_convert.analysis.imports import dotted_name


def common_level(locations: list[Location]) -> tuple[int, int, list[int]]:
    """The deepest block holding all ``locations``: (depth, block id, index of each location in that block)."""
    depth = 0
    while True:
        blocks = {location[depth][0] for location in locations}
        if len(blocks) != 1:
            depth -= 1
            break
        indices = {location[depth][1] for location in locations}
        if len(indices) != 1 or any(len(location) == depth + 1 for location in locations):
            break
        depth += 1
    return depth, locations[0][depth][0], [location[depth][1] for location in locations]


def defined_after(analysis, home, names: set[str], block_id: int, index: int) -> bool:
    """True when some of ``names`` (names or dotted attributes) is assigned in ``home`` at or after the insertion
    point; ``args.seed = 1`` does not rebind ``args``."""
    for assignment in analysis.facts.assignments:
        if assignment.scope is not home:
            continue
        bound = {dotted_name(target) for target in assignment.targets}
        if not bound & names:
            continue
        for block, position in assignment.location:
            if block == block_id and position >= index:
                return True
    return False
