"""AC017 on `mp.spawn(fn, ...)`: the call passes the local rank where `fn` uses its first argument as a GPU index of
this machine, the global rank otherwise, and imports `os` when the module does not."""

from __future__ import annotations

import pytest

from accel_convert.convert import convert_source

TEMPLATE = '''\
import argparse
{os_import}
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel as DDP


def worker(gpu, world_size):
    dist.init_process_group("gloo", rank=gpu, world_size=world_size)
{use}
    model = DDP(torch.nn.Linear(2, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for x in torch.randn(4, 3, 2):
        optimizer.zero_grad()
        model(x).sum().backward()
        optimizer.step()


if __name__ == "__main__":
    mp.spawn(worker, args=(2,), nprocs=2)
'''


@pytest.mark.parametrize(
    "use",
    [
        "    torch.cuda.set_device(gpu)",
        "    device = torch.device(f\"cuda:{gpu}\")",
        "    device = torch.device(\"cuda\", gpu)",
        "    local = gpu\n    probe = torch.zeros(1).cuda(local)",
        "    settings = argparse.Namespace()\n    settings.gpu = gpu\n    probe = torch.zeros(1).to(settings.gpu)",
    ],
    ids=["set_device", "f-string", "device-index", "alias-cuda", "attribute-to"],
)
def test_a_gpu_index_gets_the_local_rank(use):
    text = convert_source(TEMPLATE.format(os_import="import os\n", use=use)).text
    assert 'worker(int(os.environ.get("LOCAL_RANK", 0)), 2)' in text


def test_a_rank_only_gets_the_global_rank():
    text = convert_source(TEMPLATE.format(os_import="import os\n", use="    print(gpu)")).text
    assert 'worker(int(os.environ.get("RANK", 0)), 2)' in text


def test_os_is_imported_in_the_first_group_of_imports():
    result = convert_source(TEMPLATE.format(os_import="", use="    torch.cuda.set_device(gpu)"))
    assert result.text.startswith("import argparse\nimport os\n\nimport torch\n")
    assert convert_source(result.text).text == result.text


def test_os_taken_by_another_name_leaves_spawn_with_a_diagnostic():
    source = TEMPLATE.format(os_import="", use="    torch.cuda.set_device(gpu)").replace(
        "def worker", "os = None\n\n\ndef worker"
    )
    result = convert_source(source)
    assert "mp.spawn(worker" in result.text
    assert any(d.code == "AC017" and "`mp.spawn` left as is" in d.message for d in result.diagnostics)
