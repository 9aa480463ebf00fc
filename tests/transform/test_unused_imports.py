"""Imports that only the converted-away code read are dropped; every other import stays exactly as written."""

import textwrap

from accel_convert.convert import convert_source

TRAINING = """
def main():
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    model = nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for x in [torch.randn(3, 2)]:
        loss = model(x).sum()
        loss.backward()
        clamp(model.parameters(), 1.0)
        optimizer.step()
    if rank == 0:
        print(loss.item())
    dist.destroy_process_group()


main()
"""


def _convert(header: str) -> str:
    return convert_source(textwrap.dedent(header) + TRAINING).text


def test_names_only_the_converted_calls_read_are_dropped_with_their_comment_kept():
    text = _convert(
        """
        import json
        import torch
        # the process group
        import torch.distributed as dist
        import torch.nn as nn
        from torch.nn.utils import clip_grad_norm_ as clamp, clip_grad_value_
        """
    )
    head = text.split("\ndef main")[0].rstrip("\n")
    assert head == textwrap.dedent(
        """
        import json
        import torch
        # the process group
        import torch.nn as nn
        from torch.nn.utils import clip_grad_value_
        from accel import Accelerator"""
    )


def test_guarded_imports_and_lone_statements_of_a_block_stay():
    text = _convert(
        """
        import torch
        import torch.nn as nn
        try:
            import torch.distributed as dist
        except ImportError:
            dist = None
        if True:
            from torch.nn.utils import clip_grad_norm_ as clamp
        """
    )
    assert "    import torch.distributed as dist\n" in text
    assert "    from torch.nn.utils import clip_grad_norm_ as clamp\n" in text


def test_a_module_listing_its_exports_keeps_every_import():
    text = _convert(
        """
        import torch
        import torch.distributed as dist
        import torch.nn as nn
        from torch.nn.utils import clip_grad_norm_ as clamp
        __all__ = ["main"]
        """
    )
    assert "import torch.distributed as dist\n" in text
    assert "from torch.nn.utils import clip_grad_norm_ as clamp\n" in text


def test_converting_again_changes_nothing():
    header = """
        import torch
        import torch.distributed as dist
        import torch.nn as nn
        from torch.nn.utils import clip_grad_norm_ as clamp
        """
    once = _convert(header)
    assert "import torch.distributed" not in once and "clip_grad_norm_ as clamp" not in once
    assert convert_source(once).text == once
