"""Issue 9, shape 8: DataParallel left on the model, batch sizes scaled by the GPU count, hand-made batch sources."""

from __future__ import annotations

import libcst as cst
import pytest

from accel_convert.analysis.batch_sources import hand_made_batches
from accel_convert.analysis.gpu_counts import gpu_scaled_batches
from accel_convert.analysis.pipeline import analyse
from accel_convert.convert import convert_source

IMPORTS = """\
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader
"""

LOOP = """\
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for x, y in loader:
    optimizer.zero_grad()
    F.mse_loss(model(x), y).backward()
    optimizer.step()
"""


def _script(setup: str, loop: str = LOOP) -> str:
    return IMPORTS + "loader = DataLoader(data, batch_size=8)\nmodel = nn.Linear(4, 1)\n" + setup + loop


def _messages(text: str, code: str) -> list[str]:
    return [d.message for d in convert_source(text).diagnostics if d.code == code]


# --- DataParallel under a condition --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "model = nn.DataParallel(model) if torch.cuda.device_count() > 1 else model\n",
        "model = model if torch.cuda.device_count() < 2 else nn.DataParallel(model)\n",
    ],
    ids=["wrapper-first", "wrapper-second"],
)
def test_a_conditional_wrapper_of_the_model_is_removed(line):
    result = convert_source(_script(line))
    assert "DataParallel" not in result.text
    assert _messages(_script(line), "AC017") == []


def test_a_conditional_wrapper_into_another_name_is_handled_like_the_plain_wrapper():
    """``net = DataParallel(model) if c else model`` -> ``net = model``, as ``net = DataParallel(model)`` is; the
    output check then withholds both (``net`` is not what ``prepare`` returns), with the same diagnostic."""
    loop = LOOP.replace("model(x)", "net(x)")
    conditional = convert_source(_script("net = nn.DataParallel(model) if torch.cuda.device_count() > 1 else model\n", loop))
    plain = convert_source(_script("net = nn.DataParallel(model)\n", loop))
    assert [d.message for d in conditional.diagnostics] == [d.message for d in plain.diagnostics]
    assert conditional.diagnostics or "net = model\n" in conditional.text


def test_a_conditional_wrapper_with_another_branch_keeps_a_diagnostic():
    setup = "model = nn.DataParallel(model) if torch.cuda.device_count() > 1 else other\n"
    (message,) = _messages(_script(setup), "AC017")
    assert message.startswith("`DataParallel` wraps the model under a condition whose other branch is not `model`")


# --- the functional form -------------------------------------------------------------------------------------

MODULE = """\
class Net(nn.Module):
    def __init__(self, ngpu):
        super().__init__()
        self.ngpu = ngpu
        self.main = nn.Linear(4, 1)

    def forward(self, x, extra=None):
        if x.is_cuda and self.ngpu > 1:
            return {call}
        return self.main(x)


loader = DataLoader(data, batch_size=8)
model = Net(2)
"""


def _functional(call: str) -> str:
    return IMPORTS + MODULE.format(call=call) + LOOP


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        ("nn.parallel.data_parallel(self.main, x, range(self.ngpu))", "self.main(x)"),
        ("nn.parallel.data_parallel(self.main, (x, extra), device_ids=[0, 1])", "self.main(x, extra)"),
        ("torch.nn.parallel.data_parallel(module=self.main, inputs=x)", "self.main(x)"),
    ],
    ids=["positional", "tuple-inputs", "keywords"],
)
def test_the_functional_data_parallel_calls_the_module(call, expected):
    result = convert_source(_functional(call))
    assert f"            return {expected}\n" in result.text
    assert any(c.code == "AC017" and c.message.startswith("`") and expected in c.message for c in result.changes)


def test_the_functional_data_parallel_with_dim_keeps_a_diagnostic():
    call = "nn.parallel.data_parallel(self.main, x, range(self.ngpu), dim=1)"
    result = convert_source(_functional(call))
    assert call in result.text
    (message,) = _messages(_functional(call), "AC017")
    assert message.startswith("`nn.parallel.data_parallel(...)` splits each batch over the GPUs of this process")


# --- batch sizes scaled by the number of GPUs ----------------------------------------------------------------


def _scaled(source: str) -> list[str]:
    module = cst.parse_module(source)
    analysis = analyse(module)
    return [module.code_for_node(node) for node, _, _ in gpu_scaled_batches(analysis)]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import torch\nn_gpu = torch.cuda.device_count()\nbatch_size = args.batch_size * max(1, n_gpu)\n",
         "args.batch_size * max(1, n_gpu)"),
        ("import torch\nbs = 16 * torch.cuda.device_count()\n", "16 * torch.cuda.device_count()"),
        ("import torch\nloader = DataLoader(ds, batch_size=32 * args.ngpu)\n", "32 * args.ngpu"),
        ("import torch\nargs.n_gpu = torch.cuda.device_count()\nargs.train_batch_size = args.per_gpu_batch * args.n_gpu\n",
         "args.per_gpu_batch * args.n_gpu"),
        ("import torch\ngpus = torch.cuda.device_count()\nbatch_size *= gpus\n", "batch_size *= gpus"),
        ("import torch\ncount = len(args.gpus)\nbatch_size = count * args.batch_size\n", "count * args.batch_size"),
    ],
    ids=["max", "device-count-call", "loader-keyword", "attributes", "augmented", "len-of-ids"],
)
def test_batch_sizes_scaled_by_the_gpu_count_are_found(source, expected):
    assert _scaled(source) == [expected]


@pytest.mark.parametrize(
    "source",
    [
        "import torch\nn_gpu = torch.cuda.device_count()\nlr = args.lr * n_gpu\n",
        "import torch\nbatch_size = args.batch_size * 2\n",
        "import torch\nsteps = len(loader) * epochs\n",
    ],
    ids=["learning-rate", "constant-factor", "unrelated"],
)
def test_other_products_are_not_batch_sizes_scaled_by_gpus(source):
    assert _scaled(source) == []


def test_the_scaled_batch_size_gets_an_ac017_diagnostic():
    text = IMPORTS + "n_gpu = torch.cuda.device_count()\n" + _script("").split(IMPORTS, 1)[1].replace(
        "batch_size=8", "batch_size=8 * max(1, n_gpu)"
    )
    (message,) = _messages(text, "AC017")
    assert message.startswith("`8 * max(1, n_gpu)` scales the batch size by the number of GPUs (`max(1, n_gpu)`)")
    assert message.endswith("use the per-process batch size (`8`)")


# --- hand-made batch sources ---------------------------------------------------------------------------------

HAND_MADE = IMPORTS + """\
model = nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
"""


def _sources(body: str) -> list[tuple[str, str]]:
    module = cst.parse_module(HAND_MADE + body)
    analysis = analyse(module)
    found = []
    for site in analysis.facts.calls:
        func = site.node.func
        if isinstance(func, cst.Attribute) and func.attr.value == "step":
            made = hand_made_batches(analysis, site)
            if made is not None:
                found.append((made.kind, module.code_for_node(made.node)))
    return found


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "for epoch in range(3):\n"
            "    for i in range(0, len(X), 16):\n"
            "        xb, yb = X[i:i + 16], Y[i:i + 16]\n"
            "        F.mse_loss(model(xb), yb).backward()\n"
            "        optimizer.step()\n",
            [("slice", "X[i:i + 16]")],
        ),
        (
            "for i in range(0, ids.size(1) - n, n):\n"
            "    inputs = ids[:, i:i + n]\n"
            "    model(inputs).sum().backward()\n"
            "    optimizer.step()\n",
            [("slice", "ids[:, i:i + n]")],
        ),
        (
            "def get_batch(split):\n"
            "    return X[:8], Y[:8]\n"
            "for step in range(100):\n"
            "    xb, yb = get_batch('train')\n"
            "    F.mse_loss(model(xb), yb).backward()\n"
            "    optimizer.step()\n",
            [("call", "get_batch('train')")],
        ),
        (
            "for step in range(100):\n"
            "    F.mse_loss(*model(*data.next_batch())).backward()\n"
            "    optimizer.step()\n",
            [("call", "data.next_batch()")],
        ),
    ],
    ids=["slices", "column-slices", "get-batch", "method"],
)
def test_hand_made_batches_are_found(body, expected):
    assert _sources(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        "loader = DataLoader(data, batch_size=8)\n"
        "for x, y in loader:\n"
        "    for i in range(0, len(x), 4):\n"
        "        F.mse_loss(model(x[i:i + 4]), y[i:i + 4]).backward()\n"
        "        optimizer.step()\n",
        "def train_chunks(x, y):\n"
        "    for i in range(0, len(x), 4):\n"
        "        F.mse_loss(model(x[i:i + 4]), y[i:i + 4]).backward()\n"
        "        optimizer.step()\n"
        "loader = DataLoader(data, batch_size=8)\n"
        "for x, y in loader:\n"
        "    train_chunks(x, y)\n",
        "for step in range(100):\n"
        "    noise = torch.randn(8, 4)\n"
        "    model(noise).sum().backward()\n"
        "    optimizer.step()\n",
    ],
    ids=["inside-a-loader-loop", "helper-given-batches", "no-batch-source"],
)
def test_batches_from_a_loader_or_no_recognisable_source_are_not_hand_made(body):
    assert _sources(body) == []


def test_a_hand_made_source_gets_an_ac002_diagnostic():
    body = (
        "for i in range(0, len(X), 16):\n"
        "    F.mse_loss(model(X[i:i + 16]), Y[i:i + 16]).backward()\n"
        "    optimizer.step()\n"
    )
    (message,) = _messages(HAND_MADE + body, "AC002")
    assert message.startswith("the training loop makes its batches by hand (it slices `X[i:i + 16]` by the loop's index)")
    assert "every process trains on all the data" in message


# --- model.module of a removed wrapper -----------------------------------------------------------------------


def test_an_optimizer_over_the_wrapped_module_is_the_whole_model():
    setup = "model = nn.DataParallel(model)\n"
    text = _script(setup, LOOP.replace("model.parameters()", "model.module.parameters()"))
    assert _messages(text, "AC002") == []
