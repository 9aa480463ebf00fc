"""Cheap text checks that decide, without parsing, that a file has no training code to convert.

Kept free of libcst so that a walk over thousands of files can skip most of them at string-search speed.
"""

from __future__ import annotations

import re

_TORCH_IMPORT = re.compile(r"^[ \t]*(?:import[ \t]+torch\b|from[ \t]+torch[\s.])", re.MULTILINE)
_OPTIMIZER = re.compile(r"optim\.[A-Z]\w*\(")
# plain substrings first: ``in`` runs at memory speed, a regular expression with alternatives several times slower
_MARKERS = (".backward(", "init_process_group(", "DistributedDataParallel(")


def may_need_conversion(text: str) -> bool:
    """True when ``text`` might hold PyTorch training code and imports torch: it calls ``.backward(``, sets up
    distributed training, or creates a ``torch.optim`` optimizer (an entry script whose loop lives in another module
    is told so)."""
    training = any(marker in text for marker in _MARKERS) or ("optim." in text and _OPTIMIZER.search(text) is not None)
    return training and _TORCH_IMPORT.search(text) is not None
