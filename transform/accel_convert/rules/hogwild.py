"""AC019 hogwild."""

from __future__ import annotations

from accel_convert.edits.plan import Pending
from accel_convert.model import Diagnostic
from accel_convert.rules.base import Rule


class Hogwild(Rule):
    """Leave Hogwild training (processes updating one model in shared memory) unchanged, with a diagnostic.

    ## Why
    A Hogwild script (`model.share_memory()`, then `torch.multiprocessing` processes that each run their own
    optimizer on the shared weights) trains without any gradient synchronisation: every process writes the
    shared parameters whenever it steps. Data-parallel training with `accelerator.prepare` is a different
    algorithm (one synchronised step per batch of every process); rewriting half of such a script would change
    what it computes without making it data-parallel.

    ## What it does
    When the file calls `.share_memory()` and uses `torch.multiprocessing` (`mp.Process`, `mp.spawn`,
    `mp.Pool`), no rule rewrites anything: the file is left byte for byte as it is, and a diagnostic at the
    `share_memory()` call says why. Convert such a script by hand if data-parallel training is what you want.

    ## Example
    ```python
    model.share_memory()
    workers = [mp.Process(target=train, args=(rank, model)) for rank in range(4)]
    ```
    becomes the same code, unchanged, and the converter reports
    ```text
    train.py:31:5: AC019 Hogwild training (...) is not data-parallel training: file left unchanged
    ```
    """

    code = "AC019"
    name = "hogwild"
    summary = "Leave Hogwild training (processes updating one model in shared memory) unchanged, with a diagnostic."

    def declines(self, analysis):
        shared = analysis.facts.method_calls("share_memory")
        processes = any((analysis.qualify(site.node.func) or "").startswith("torch.multiprocessing.") for site in analysis.facts.calls)
        if not shared or not processes:
            return []
        message = (
            "Hogwild training (a model in shared memory updated by torch.multiprocessing workers without gradient "
            "synchronisation) is not data-parallel training: file left unchanged"
        )
        return [Pending(Diagnostic, self.code, shared[0].node, message, None)]
