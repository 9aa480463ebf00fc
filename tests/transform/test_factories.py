"""AC002 with training objects built by functions of the file and returned to the caller (``model, optimizer =
load_objects()``, ``return DataLoader(...)``): prepared at the call site, or, where the converter cannot follow the
function, left with the AC002 diagnostic."""

from __future__ import annotations

import textwrap

from accel_convert.convert import convert_source

HEAD = '''\
import torch
from torch.utils.data import DataLoader, TensorDataset


'''

TRAIN = '''

def main():
    {call}
    for epoch in range(2):
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()


device = "cuda" if torch.cuda.is_available() else "cpu"
main()
'''

NOT_PREPARED = "the training loop iterates `loader`, which is not prepared"


def not_prepared(reason: str) -> str:
    """The AC002 diagnostic for the training loop over ``loader``, which is not prepared for ``reason``."""
    return (
        f"{NOT_PREPARED} ({reason}), so every process goes through all of it; if it is a DataLoader, pass `loader` "
        "through `accelerator.prepare` as well"
    )


def convert(helpers: str, call: str):
    return convert_source(HEAD + textwrap.dedent(helpers).strip() + "\n" + TRAIN.format(call=call))


def prepare_line(result) -> str:
    return next(line.strip() for line in result.text.splitlines() if "accelerator.prepare(" in line)


def messages(result) -> list[str]:
    return [diagnostic.message for diagnostic in result.diagnostics]


def test_objects_returned_as_a_tuple_are_prepared_after_the_call_and_moves_inside_go():
    result = convert(
        '''
        def load_objects():
            model = torch.nn.Linear(3, 1)
            model.to(device)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            loader = DataLoader(TensorDataset(torch.randn(8, 3), torch.randn(8, 1)), batch_size=4, shuffle=True)
            return model, optimizer, loader
        ''',
        "model, optimizer, loader = load_objects()",
    )
    assert prepare_line(result) == "model, optimizer, loader = accelerator.prepare(model, optimizer, loader)"
    lines = result.text.splitlines()
    call = lines.index("    model, optimizer, loader = load_objects()")
    assert lines[call + 1].strip().startswith("model, optimizer, loader = accelerator.prepare(")
    assert "model.to(device)" not in result.text and "x.to(device)" not in result.text
    assert messages(result) == []


def test_an_optimizer_factory_given_the_model_prepares_the_callers_model():
    result = convert(
        '''
        def make_model():
            return torch.nn.Linear(3, 1).to(device)


        def make_optimizer(net, lr):
            return torch.optim.Adam(net.parameters(), lr=lr)


        def make_loader():
            return DataLoader(TensorDataset(torch.randn(8, 3), torch.randn(8, 1)), batch_size=4, shuffle=True)
        ''',
        "model = make_model()\n    optimizer = make_optimizer(model, 0.1)\n    loader = make_loader()",
    )
    assert prepare_line(result) == "model, optimizer, loader = accelerator.prepare(model, optimizer, loader)"
    assert "    return torch.nn.Linear(3, 1)\n" in result.text
    assert messages(result) == []


def test_a_factory_called_for_two_loaders_prepares_both():
    result = convert(
        '''
        def make_loader(n, shuffle):
            data = TensorDataset(torch.randn(n, 3), torch.randn(n, 1))
            loader = DataLoader(data, batch_size=4, shuffle=shuffle)
            return loader
        ''',
        "loader = make_loader(8, True)\n    val_loader = make_loader(4, False)\n"
        "    model = torch.nn.Linear(3, 1)\n    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)",
    )
    assert prepare_line(result) == (
        "model, optimizer, loader, val_loader = accelerator.prepare(model, optimizer, loader, val_loader)"
    )


def test_loaders_another_factory_returns_are_followed_through_both():
    result = convert(
        '''
        def make_loader(n, shuffle):
            return DataLoader(TensorDataset(torch.randn(n, 3), torch.randn(n, 1)), batch_size=4, shuffle=shuffle)


        def get_data():
            return make_loader(8, True), make_loader(4, False)
        ''',
        "loader, val_loader = get_data()\n"
        "    model = torch.nn.Linear(3, 1)\n    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)",
    )
    assert prepare_line(result) == (
        "model, optimizer, loader, val_loader = accelerator.prepare(model, optimizer, loader, val_loader)"
    )
    assert messages(result) == []


def test_a_distributed_sampler_inside_the_factory_is_replaced_and_its_epochs_go_to_the_loader():
    result = convert(
        '''
        from torch.utils.data.distributed import DistributedSampler


        def make_loader(data):
            return DataLoader(data, batch_size=4, sampler=DistributedSampler(data, shuffle=False))
        ''',
        "data = TensorDataset(torch.randn(8, 3), torch.randn(8, 1))\n    loader = make_loader(data)\n"
        "    loader.sampler.set_epoch(0)\n"
        "    model = torch.nn.Linear(3, 1)\n    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)",
    )
    assert "return DataLoader(data, batch_size=4, shuffle=False)\n" in result.text
    assert "DistributedSampler" not in result.text
    assert "    loader.set_epoch(0)\n" in result.text


def test_a_factory_that_steps_its_optimizer_keeps_prepare_inside():
    result = convert_source(
        HEAD
        + textwrap.dedent(
            '''
            def fit(loader):
                model = torch.nn.Linear(3, 1)
                optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
                for x, y in loader:
                    optimizer.zero_grad()
                    torch.nn.functional.mse_loss(model(x), y).backward()
                    optimizer.step()
                return model, optimizer


            loader = DataLoader(TensorDataset(torch.randn(8, 3), torch.randn(8, 1)), batch_size=4)
            model, optimizer = fit(loader)
            '''
        )
    )
    lines = result.text.splitlines()
    prepared = next(i for i, line in enumerate(lines) if "accelerator.prepare(" in line)
    assert lines[prepared] == "    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)"
    assert lines[prepared - 1] == "    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)"


LOADER_FACTORY_CASES = {
    "returns of different kinds": '''
        def make_loader(data, streaming):
            if streaming:
                return iter(data)
            return DataLoader(data, batch_size=4, shuffle=True)
        ''',
    "a bare return": '''
        def make_loader(data, streaming):
            if streaming:
                return
            return DataLoader(data, batch_size=4, shuffle=True)
        ''',
    "recursion": '''
        def make_loader(data, streaming):
            if streaming:
                return make_loader(data, False)
            return DataLoader(data, batch_size=4, shuffle=True)
        ''',
}


def test_factories_it_cannot_follow_keep_the_diagnostic():
    call = (
        "data = TensorDataset(torch.randn(8, 3), torch.randn(8, 1))\n    loader = make_loader(data, False)\n"
        "    model = torch.nn.Linear(3, 1)\n    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)"
    )
    reason = "it comes from `make_loader(...)`, a function of this file whose returns AC002 does not follow"
    for case, helpers in LOADER_FACTORY_CASES.items():
        result = convert(helpers, call)
        assert prepare_line(result) == "model, optimizer = accelerator.prepare(model, optimizer)", case
        assert messages(result) == [not_prepared(reason)], case


def test_a_factory_called_through_an_attribute_keeps_the_diagnostic():
    result = convert(
        '''
        class Data:
            def make_loader(self):
                return DataLoader(TensorDataset(torch.randn(8, 3), torch.randn(8, 1)), batch_size=4)
        ''',
        "loader = Data().make_loader()\n"
        "    model = torch.nn.Linear(3, 1)\n    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)",
    )
    assert prepare_line(result) == "model, optimizer = accelerator.prepare(model, optimizer)"
    reason = "it comes from `Data().make_loader(...)`, a call through an attribute, which AC002 does not follow"
    assert [message for message in messages(result) if message.startswith(NOT_PREPARED)] == [not_prepared(reason)]


def test_a_loader_from_another_module_names_the_call_in_the_diagnostic():
    source = HEAD.replace("import torch\n", "import torch\nfrom data_utils import get_data\n") + TRAIN.format(
        call="loader, _ = get_data(8)\n"
        "    model = torch.nn.Linear(3, 1)\n    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)"
    )
    reason = "it comes from `get_data(...)`, which is not defined in this file"
    found = [message for message in messages(convert_source(source)) if message.startswith(NOT_PREPARED)]
    assert found == [not_prepared(reason)]


def test_a_factory_that_uses_the_model_in_a_loop_keeps_its_moves():
    result = convert(
        '''
        def make_model():
            model = torch.nn.Linear(3, 1).to(device)
            for _ in range(2):
                model(torch.randn(2, 3).to(device))
            return model
        ''',
        "model = make_model()\n    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "    loader = DataLoader(TensorDataset(torch.randn(8, 3), torch.randn(8, 1)), batch_size=4)",
    )
    assert prepare_line(result) == "model, optimizer, loader = accelerator.prepare(model, optimizer, loader)"
    assert "    model = torch.nn.Linear(3, 1).to(device)\n" in result.text
    assert "        model(torch.randn(2, 3).to(device))\n" in result.text


def test_a_distributed_sampler_goes_even_when_the_factory_reads_its_loader_first():
    result = convert(
        '''
        from torch.utils.data.distributed import DistributedSampler


        def make_loader(data):
            loader = DataLoader(data, batch_size=4, sampler=DistributedSampler(data))
            for batch in loader:
                print(len(batch))
            return loader
        ''',
        "loader = make_loader(TensorDataset(torch.randn(8, 3), torch.randn(8, 1)))\n"
        "    model = torch.nn.Linear(3, 1)\n    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)",
    )
    assert "    loader = DataLoader(data, batch_size=4, shuffle=True)\n" in result.text
    assert "DistributedSampler" not in result.text


LOADER_SUBCLASS = """\
import torch
from torch.utils.data import DataLoader, TensorDataset


class FastLoader(DataLoader):
    def __init__(self, dataset, **kwargs):
        super().__init__(dataset, drop_last=True, **kwargs)


device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
model = torch.nn.Linear(4, 1).to(device)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
loader = FastLoader(TensorDataset(torch.randn(64, 4), torch.randn(64, 1)), batch_size=8)
for x, y in loader:
    x, y = x.to(device), y.to(device)
    optimizer.zero_grad()
    torch.nn.functional.mse_loss(model(x), y).backward()
    optimizer.step()
"""


def test_a_dataloader_subclass_of_the_file_is_a_loader():
    result = convert_source(LOADER_SUBCLASS)
    assert "model, optimizer, loader = accelerator.prepare(model, optimizer, loader)" in result.text
    assert "x.to(device)" not in result.text
    assert result.diagnostics == ()


def test_a_dataloader_subclass_that_iterates_its_own_way_is_not_prepared_and_says_why():
    source = LOADER_SUBCLASS.replace(
        "        super().__init__(dataset, drop_last=True, **kwargs)\n",
        "        super().__init__(dataset, drop_last=True, **kwargs)\n\n    def __iter__(self):\n        yield from super().__iter__()\n",
    )
    result = convert_source(source)
    assert "accelerator.prepare(model, optimizer)" in result.text and "x.to(device)" in result.text
    messages = [d.message for d in result.diagnostics if d.code == "AC002"]
    assert len(messages) == 1 and "a class of this file that changes how it iterates" in messages[0], messages
