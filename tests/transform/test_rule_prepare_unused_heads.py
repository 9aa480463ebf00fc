"""AC002 and a model whose outputs are discarded differently at different calls (InfoGAN's discriminator): the
accelerator is created so that DistributedDataParallel accepts parameters a backward does not reach."""

from __future__ import annotations

from accel_convert.convert import convert_source

HEADS = '''\
import torch


class Heads(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(4, 1)
        self.b = torch.nn.Linear(4, 1)

    def forward(self, x):
        return self.a(x), self.b(x)


model = Heads()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
loader = torch.utils.data.DataLoader(torch.randn(8, 4), batch_size=2)
for x in loader:
    optimizer.zero_grad()
    first, _ = model(x)
    first.sum().backward()
    _, second = model(x)
    second.sum().backward()
    optimizer.step()
'''

HANDLER = "accelerator = Accelerator(kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])\n"


def test_outputs_discarded_at_one_call_and_kept_at_another_allow_unused_parameters():
    result = convert_source(HEADS)
    assert HANDLER in result.text
    assert "from accel import Accelerator, DistributedDataParallelKwargs\n" in result.text
    assert any(
        change.message == "`first, _ = model(x)` discards the outputs of `self.b`: that backward reaches no parameter of "
        "theirs, which DistributedDataParallel allows only with "
        "`Accelerator(kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])`"
        for change in result.changes
    )


def test_a_discarded_output_made_by_the_same_submodules_changes_nothing():
    # an LSTM's `output, _ = rnn(x)`, or a length the forward sorts by: no parameter is left out of the backward
    text = HEADS.replace("return self.a(x), self.b(x)", "h = self.b(self.a(x))\n        return h, h.sum()")
    result = convert_source(text)
    assert "accelerator = Accelerator()\n" in result.text
    assert "DistributedDataParallelKwargs" not in result.text


def test_a_script_with_its_own_distributed_data_parallel_keeps_its_options():
    text = HEADS.replace(
        "optimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n",
        "model = torch.nn.parallel.DistributedDataParallel(model)\noptimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n",
    )
    result = convert_source(text)
    assert "find_unused_parameters" not in result.text
