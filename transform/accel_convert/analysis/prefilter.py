"""Cheap text checks that decide, without parsing, that a file has no training code to convert.

Kept free of libcst so that a walk over thousands of files can skip most of them at string-search speed.
"""

from __future__ import annotations

import re

_TORCH_IMPORT = re.compile(r"^[ \t]*(?:import[ \t]+torch\b|from[ \t]+torch[\s.])", re.MULTILINE)
_TRAINING = re.compile(r"\.backward\(|init_process_group\(|DistributedDataParallel\(|optim\.[A-Z]\w*\(")


def may_need_conversion(text: str) -> bool:
    """True when ``text`` might hold PyTorch training code and imports torch: it calls ``.backward(``, sets up
    distributed training, or creates a ``torch.optim`` optimizer (an entry script whose loop lives in another module
    is told so)."""
    return _TRAINING.search(text) is not None and _TORCH_IMPORT.search(text) is not None
