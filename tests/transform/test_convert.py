"""The contract of convert_source: pure text in / text out, untouched when there is nothing to do, errors located."""

from __future__ import annotations

import textwrap

import pytest

from accel_convert.analysis.prefilter import may_need_conversion
from accel_convert.convert import convert_source
from accel_convert.model import ConvertError, Options

SCRIPT = textwrap.dedent(
    """\
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    # Größe der Stapel: 学习率 λ
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    loader = DataLoader(TensorDataset(torch.randn(8, 2), torch.randn(8, 1)), batch_size=4)
    model = torch.nn.Linear(2, 1).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        loss = torch.nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    """
)

CONVERTED = textwrap.dedent(
    """\
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    from accel import Accelerator

    # Größe der Stapel: 学习率 λ
    accelerator = Accelerator()
    device = accelerator.device
    loader = DataLoader(TensorDataset(torch.randn(8, 2), torch.randn(8, 1)), batch_size=4)
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    for x, y in loader:
        loss = torch.nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        accelerator.backward(loss)
        optimizer.step()
    """
)


def test_converts_a_flat_script_keeping_comments_and_non_ascii_text():
    result = convert_source(SCRIPT)
    assert result.text == CONVERTED
    assert result.changed
    assert {change.code for change in result.changes} == {"AC001", "AC002", "AC003", "AC004"}
    assert result.diagnostics == ()


def test_changes_carry_input_line_numbers():
    result = convert_source(SCRIPT)
    lines = {(change.code, change.line) for change in result.changes}
    assert ("AC004", 13) in lines  # loss.backward() is on line 13 of the input
    assert ("AC002", 8) in lines  # prepare goes after the optimizer, line 8
    assert ("AC001", 5) in lines  # the device definition


def test_crlf_line_endings_are_kept_for_new_lines_too():
    result = convert_source(SCRIPT.replace("\n", "\r\n"))
    assert result.text == CONVERTED.replace("\n", "\r\n")


def test_byte_order_mark_is_kept():
    result = convert_source("\ufeff" + SCRIPT)
    assert result.text == "\ufeff" + CONVERTED


def test_target_accelerate_imports_hugging_face_accelerate():
    result = convert_source(SCRIPT, Options(target="accelerate"))
    assert result.text == CONVERTED.replace("from accel import", "from accelerate import")


def test_converting_twice_changes_nothing():
    result = convert_source(CONVERTED)
    assert result.text == CONVERTED
    assert result.changes == () and result.diagnostics == ()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "x = 1\n",
        "import torch\nx = torch.ones(3, requires_grad=True)\n(x * 2).sum().backward()\n",  # no optimizer
        # an optimizer, but never stepped in a loop
        "import torch\nm = torch.nn.Linear(2, 1)\nopt = torch.optim.SGD(m.parameters(), lr=1)\nm(torch.ones(2)).sum().backward()\nopt.step()\n",
        "def f(loss):\n    loss.backward()\n",  # no torch import: the prefilter says no
    ],
)
def test_files_without_a_training_loop_come_back_identical(text):
    result = convert_source(text)
    assert result.text == text
    assert result.changes == ()


def test_syntax_error_names_line_and_column():
    with pytest.raises(ConvertError) as raised:
        convert_source("import torch\nloss.backward(\ndef f(:\n")
    error = raised.value
    assert error.message.startswith("syntax error")
    assert error.line == 3
    assert error.col >= 1


def test_prefilter_accepts_training_code_and_rejects_the_rest():
    assert may_need_conversion(SCRIPT)
    assert may_need_conversion("from torch import nn\nloss.backward()\n")
    assert not may_need_conversion("import numpy\nloss.backward()\n")
    assert not may_need_conversion("import torch\nprint(torch.ones(1))\n")
    assert not may_need_conversion("import torchvision\nloss.backward()\n")


def test_prefilter_is_fast_enough_to_skip_thousands_of_files():
    import time

    text = "import numpy as np\n" + "x = np.ones(3)  # some code\n" * 400
    start = time.perf_counter()
    for _ in range(2000):
        may_need_conversion(text)
    assert time.perf_counter() - start < 1.0  # > 2,000 files/s with a wide margin


def test_select_and_ignore():
    only_setup_and_backward = convert_source(SCRIPT, Options(select=frozenset({"AC001", "AC004"})))
    # without AC002 nothing is prepared, so nothing that depends on prepare is converted: accelerator.backward would
    # scale gradients that no prepared optimizer unscales
    assert {change.code for change in only_setup_and_backward.changes} == {"AC001"}
    assert "loss.backward()" in only_setup_and_backward.text
    assert "x.to(device)" in only_setup_and_backward.text  # AC003 not selected: moves stay (and keep working)
    assert "prepare" not in only_setup_and_backward.text
    assert any("AC002 is not selected" in d.message for d in only_setup_and_backward.diagnostics)
    # every other rule names the accelerator that AC001 creates: without it nothing is converted
    assert convert_source(SCRIPT, Options(ignore=frozenset({"AC001"}))).text == SCRIPT


def test_importing_the_converter_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, accel_convert.convert; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_ignoring_prepare_keeps_every_move_and_says_so():
    """The decision stage answers "what is prepared" once: with AC002 ignored it is nothing, so no rule drops a
    device move (the script would train on the CPU) and one diagnostic says why."""
    ignored = convert_source(SCRIPT, Options(ignore=frozenset({"AC002"})))
    full = convert_source(SCRIPT)
    assert ".to(device)" in SCRIPT and ".to(device)" not in full.text
    assert ignored.text.count(".to(device)") == SCRIPT.count(".to(device)")
    assert "prepare" not in ignored.text and "loss.backward()" in ignored.text
    assert not any(change.code == "AC003" for change in ignored.changes)
    [diagnostic] = [d for d in ignored.diagnostics if "AC002 is not selected" in d.message]
    assert diagnostic.code == "AC001" and diagnostic.severity == "work"


def test_a_file_the_parser_would_not_write_back_as_it_is_is_refused_naming_the_line():
    # libcst drops indented comment lines that follow a module's last statement outside any block
    text = (
        "import torch\nmodel = torch.nn.Linear(2, 2)\noptimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for x in torch.randn(4, 3, 2):\n    optimizer.zero_grad()\n    model(x).sum().backward()\n    optimizer.step()\n"
        '"""notes"""\n    # kept by python,\n    # not by the parser\n# end\n'
    )
    with pytest.raises(ConvertError) as raised:
        convert_source(text)
    assert raised.value.line == 9
    assert raised.value.message.startswith("cannot convert without losing text: the parser does not keep line 9 as written")
