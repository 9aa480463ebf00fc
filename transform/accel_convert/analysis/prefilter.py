"""Cheap text checks that decide, without parsing, that a file has no training code to convert.

Kept free of libcst so that a walk over thousands of files can skip most of them at string-search speed.
"""

from __future__ import annotations

import re

_TORCH_IMPORT = re.compile(r"^[ \t]*(?:import[ \t]+torch\b|from[ \t]+torch[\s.])", re.MULTILINE)


def may_need_conversion(text: str) -> bool:
    """True when ``text`` might hold a PyTorch training loop: it calls ``.backward(`` and imports torch."""
    return ".backward(" in text and _TORCH_IMPORT.search(text) is not None
