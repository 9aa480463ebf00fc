"""A script that never names a device runs on the CPU; converted, it keeps doing so where the model is fed tensors
the script makes itself (they would stay on the CPU while the prepared model goes to a GPU): Accelerator(cpu=True),
with a note (decisions/cpu_only.py)."""

from __future__ import annotations

from accel_convert import convert_source

TENSORS = """\
import torch

x = torch.randn(64, 10)
y = torch.randn(64, 1)
model = torch.nn.Sequential(torch.nn.Linear(10, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
for t in range(50):
    loss = torch.nn.functional.mse_loss(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
"""


def test_a_device_free_script_fed_its_own_tensors_stays_on_the_cpu():
    result = convert_source(TENSORS)
    assert "accelerator = Accelerator(cpu=True)\n" in result.text
    assert "model, optimizer = accelerator.prepare(model, optimizer)\n" in result.text
    [note] = result.diagnostics
    assert (note.code, note.line, note.severity) == ("AC001", 8, "note")
    assert note.message.startswith("`Accelerator(cpu=True)`: the script places nothing on a device")
    assert "`model(x)` feeds the model tensors it makes itself" in note.message


def test_batches_of_a_prepared_loader_go_to_the_device():
    source = TENSORS.replace("for t in range(50):\n", "loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)\nfor xb, yb in loader:\n").replace("model(x), y)", "model(xb), yb)")
    result = convert_source(source)
    assert "accelerator = Accelerator()\n" in result.text
    assert result.diagnostics == ()


def test_a_script_that_names_a_device_keeps_its_own_placement():
    for named in ('x = x.to("cuda")\n', "torch.cuda.manual_seed(0)\n", 'device = torch.device("cuda")\n'):
        source = TENSORS.replace("model = torch.nn.Sequential", named + "model = torch.nn.Sequential")
        result = convert_source(source)
        assert "cpu=True" not in result.text, named
        assert not any(d.message.startswith("`Accelerator(cpu=True)`") for d in result.diagnostics), named
