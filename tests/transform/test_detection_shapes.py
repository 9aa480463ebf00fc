"""Shapes of detection codebases (an entry, an engine module, process helpers of its own) that the December trial
of the real-world list met: each test fails if the conversion goes back to what it did before."""

from __future__ import annotations

from textwrap import dedent

import libcst as cst

from accel_convert.check import check
from accel_convert.convert import convert_source
from accel_convert.edits.plan import AppendArgument

ALIAS_AND_TRAIN_FUNCTION = dedent(
    """\
    import torch
    from models import build_model


    def train_one_epoch(model, loader, optimizer, device):
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = torch.nn.functional.mse_loss(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


    def main(args):
        device = torch.device("cuda")
        model = build_model(args)
        model.to(device)
        model_without_ddp = model
        if args.distributed:
            model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[args.gpu])
            model_without_ddp = model.module
        optimizer = torch.optim.AdamW(model_without_ddp.parameters(), lr=0.1)
        loader = torch.utils.data.DataLoader(torch.randn(8, 2), batch_size=2)
        for epoch in range(3):
            train_one_epoch(model, loader, optimizer, device)
    """
)


def test_the_model_a_training_function_is_given_is_prepared_not_its_bare_alias():
    result = convert_source(ALIAS_AND_TRAIN_FUNCTION)
    assert "model, optimizer, loader = accelerator.prepare(model, optimizer, loader)" in result.text, result.text
    assert "model_without_ddp = accelerator.unwrap_model(model)" in result.text
    assert not [d for d in result.diagnostics if d.code == "AC002"], result.diagnostics


def test_a_model_copied_for_an_ema_keeps_its_move():
    source = ALIAS_AND_TRAIN_FUNCTION.replace(
        "    optimizer = torch.optim.AdamW(model_without_ddp.parameters(), lr=0.1)\n",
        "    optimizer = torch.optim.AdamW(model_without_ddp.parameters(), lr=0.1)\n"
        "    ema = torch.optim.swa_utils.AveragedModel(model_without_ddp)\n",
    )
    text = convert_source(source).text
    # the average is made from the model as it is: on the CPU it would stay there while the batches go to the GPU
    assert "    model.to(device)\n" in text, text
    assert "device = accelerator.device" in text


def test_without_a_copy_the_model_move_goes():
    assert "    model.to(device)\n" not in convert_source(ALIAS_AND_TRAIN_FUNCTION).text


RELAYED = dedent(
    """\
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    from accel import Accelerator


    def log_every(iterable):
        for index, obj in enumerate(iterable):
            yield obj
            if index == len(iterable) - 1:
                print("done")


    accelerator = Accelerator()
    data = TensorDataset(torch.randn(8, 4), torch.randn(8, 1))
    train_loader = DataLoader(data, batch_size=4)
    val_loader = DataLoader(data, batch_size=4)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer, val_loader = accelerator.prepare(model, optimizer, val_loader)
    for x, y in log_every(train_loader):
        x, y = x.to(accelerator.device), y.to(accelerator.device)
        loss = torch.nn.functional.mse_loss(model(x), y)
        accelerator.backward(loss)
    for x, y in log_every(val_loader):
        print(model(x).sum().item())
    """
)


def test_a_generator_relaying_batches_is_not_a_loop_that_feeds_the_model():
    # log_every's loop passes its own iterable to len(); it trains nothing, so its unmoved batches are no violation
    assert [v.invariant for v in check(RELAYED, RELAYED)] == []


def test_a_loop_that_feeds_the_model_unmoved_batches_still_is():
    after = RELAYED.replace("    x, y = x.to(accelerator.device), y.to(accelerator.device)\n", "")
    assert after != RELAYED
    assert [(v.invariant, v.binding) for v in check(after, after)] == [("unprepared-loader", "train_loader")]


SYNCHRONISED_EVALUATION = dedent(
    """\
    import torch
    import torch.distributed as dist
    from torch.utils.data import DataLoader, TensorDataset


    class Meter:
        def __init__(self):
            self.correct = 0.0

        def synchronize_between_processes(self):
            if dist.is_initialized():
                total = torch.tensor([self.correct])
                dist.all_reduce(total)
                self.correct = total.item()


    def main():
        data = TensorDataset(torch.randn(16, 4), torch.randint(0, 2, (16,)))
        loader = DataLoader(data, batch_size=4)
        model = torch.nn.Linear(4, 2)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in loader:
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        meter = Meter()
        with torch.no_grad():
            for x, y in loader:
                meter.correct += (model(x).argmax(1) == y).sum().item()
        meter.synchronize_between_processes()
        print(meter.correct)
    """
)


def test_an_evaluation_the_script_synchronises_itself_is_not_gathered_too():
    result = convert_source(SYNCHRONISED_EVALUATION)
    assert "accelerator.prepare(" in result.text
    assert "gather_for_metrics" not in result.text, result.text  # gathered and all-reduced would count twice


def test_an_evaluation_the_script_does_not_synchronise_is_gathered():
    source = SYNCHRONISED_EVALUATION.replace("    meter.synchronize_between_processes()\n", "")
    assert "gather_for_metrics" in convert_source(source).text


def _appended(source: str, keyword: bool = False) -> str:
    call = cst.parse_expression(source)
    return cst.Module([]).code_for_node(AppendArgument("accelerator", keyword).apply(call))


def test_an_argument_goes_before_the_break_ahead_of_a_closing_parenthesis():
    assert _appended("evaluate(\n    model, loader, device\n)") == "evaluate(\n    model, loader, device, accelerator\n)"


def test_an_argument_after_one_per_line_arguments_gets_its_own_line_and_the_trailing_comma():
    assert _appended("fit(\n    model,\n    loader,\n)", True) == "fit(\n    model,\n    loader,\n    accelerator=accelerator,\n)"


def test_an_argument_after_wrapped_arguments_stays_on_the_last_line():
    assert _appended("fit(a, b, c,\n    d)") == "fit(a, b, c,\n    d, accelerator)"
    assert _appended("fit()") == "fit(accelerator)"


def test_a_withdrawn_loaders_message_cites_the_samplers_line_in_the_original():
    source = dedent(
        """\
        import torch
        from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, RandomSampler, TensorDataset


        def main(distributed):
            device = torch.device("cuda")
            model = torch.nn.Linear(2, 2).to(device)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            data = TensorDataset(torch.randn(8, 2), torch.randn(8, 2))
            if distributed:
                sampler = DistributedSampler(data)
            else:
                sampler = RandomSampler(data)
            loader = DataLoader(data, batch_sampler=BatchSampler(sampler, 2, drop_last=True))
            for x, y in loader:
                x, y = x.to(device), y.to(device)
                optimizer.zero_grad()
                torch.nn.functional.mse_loss(model(x), y).backward()
                optimizer.step()
        """
    )
    messages = [d.message for d in convert_source(source).diagnostics if "DistributedSampler made on line" in d.message]
    assert len(messages) == 1 and "made on line 11:" in messages[0], messages


UNREACHABLE_HELPERS = dedent(
    """\
    import torch
    import torch.distributed as dist


    def is_dist_avail_and_initialized():
        return dist.is_available() and dist.is_initialized()


    def get_rank():
        if not is_dist_avail_and_initialized():
            return 0
        return dist.get_rank()


    def get_world_size():
        return dist.get_world_size()


    def report():
        print(get_rank(), get_world_size())


    def main():
        model = torch.nn.Linear(2, 2)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        loader = torch.utils.data.DataLoader(torch.randn(8, 2), batch_size=2)
        for x in loader:
            optimizer.zero_grad()
            model(x).sum().backward()
            optimizer.step()
    """
)


def test_a_distributed_call_left_in_a_function_that_checks_for_a_process_group_is_only_a_note():
    found = {(d.line, d.severity) for d in convert_source(UNREACHABLE_HELPERS).diagnostics if d.code == "AC016"}
    # get_rank asks is_dist_avail_and_initialized() first: it works on the accelerator's group as it is;
    # get_world_size does not ask, and with one process there is no group: that one is work
    assert found == {(12, "note"), (16, "work")}, found
