"""Project mode on the command line: `accel-convert DIR` (or several files) converts an entry script and the modules
holding its loops as one run, writes them all or none, and a file converted alone is told what to add."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from accel_convert.model import Options
from accel_convert.project.conversion import convert_project
from accel_convert.project.groups import find_groups
from tests.transform.cli_helpers import invoke, run, write

PROJECT = Path(__file__).resolve().parents[2] / "fixtures" / "project_engine_module"


@pytest.fixture
def project(tmp_path):
    folder = tmp_path / "project"
    shutil.copytree(PROJECT / "before", folder)
    return folder


def _after(name: str) -> bytes:
    return (PROJECT / "after" / name).read_bytes()


def _before(name: str) -> bytes:
    return (PROJECT / "before" / name).read_bytes()


def test_a_folder_converts_entry_and_engine_together(project):
    result = invoke(project)
    assert result.exit_code == 0, result.output
    for name in ("train.py", "engine.py", "utils.py"):
        assert (project / name).read_bytes() == _after(name), name
    assert "3 files converted, 0 files left unchanged, 1 note" in result.output


def test_the_files_named_together_convert_as_one_run(project, monkeypatch):
    monkeypatch.chdir(project)
    result = invoke("train.py", "engine.py", "utils.py")
    assert result.exit_code == 0, result.output
    for name in ("train.py", "engine.py", "utils.py"):
        assert (project / name).read_bytes() == _after(name), name


def test_a_module_not_named_is_not_converted_with_the_files_named(project, monkeypatch):
    monkeypatch.chdir(project)
    result = invoke("train.py", "engine.py")
    assert result.exit_code == 0, result.output
    assert (project / "utils.py").read_bytes() == _before("utils.py")
    engine = (project / "engine.py").read_text()
    assert "accelerator.backward(loss)" in engine and "utils.reduce_dict({name: value.detach()" in engine
    assert "accelerator=accelerator)" not in engine.split("utils.reduce_dict(", 1)[1].split("\n", 1)[0]


def test_check_and_diff_write_nothing_and_show_every_file(project):
    result = invoke("--diff", project)
    assert result.exit_code == 0, result.output
    shown = str(project).lstrip("/")
    assert f"--- a/{shown}/train.py" in result.output and f"--- a/{shown}/engine.py" in result.output
    assert "+        accelerator.backward(loss)" in result.output
    check = invoke("--check", project)
    assert check.exit_code == 1
    assert all((project / name).read_bytes() == _before(name) for name in ("train.py", "engine.py", "utils.py"))


def test_one_file_alone_is_told_the_command_that_converts_its_run(project, monkeypatch):
    monkeypatch.chdir(project)
    result = invoke("--check", "train.py")
    assert result.exit_code == 1
    assert (
        "train.py:8:1: AC001 `evaluate`, `train_one_epoch`, `utils.collate`, `utils.is_main_process` are defined in "
        "utils.py, engine.py, part of this training run: convert the files together with "
        "`accel-convert train.py utils.py engine.py`"
    ) in result.output
    assert (project / "train.py").read_bytes() == _before("train.py")


def test_a_read_only_module_leaves_every_file_of_the_run_as_it_was(project):
    engine = project / "engine.py"
    engine.chmod(0o444)
    try:
        result = invoke(project)
    finally:
        engine.chmod(0o644)
    assert result.exit_code == 123, result.output
    assert f"{engine}: error: the file is read-only: not replaced" in result.output
    assert f"{project / 'train.py'}: error: not converted: {engine} could not be written" in result.output
    assert (project / "train.py").read_bytes() == _before("train.py")
    assert engine.read_bytes() == _before("engine.py")
    assert not [path for path in os.listdir(project) if path.endswith(".tmp")]


def test_worker_processes_give_the_same_files(project):
    completed = run("-j", "2", "-q", project)
    assert completed.returncode == 0, completed.stderr
    for name in ("train.py", "engine.py", "utils.py"):
        assert (project / name).read_bytes() == _after(name), name


def _engine(loss_line: str = "        loss.backward()\n") -> str:
    return (
        "import torch\n\n\n"
        "def fit(model, loader, optimizer):\n"
        "    for x, y in loader:\n"
        "        optimizer.zero_grad()\n"
        "        loss = torch.nn.functional.mse_loss(model(x), y)\n"
        f"{loss_line}"
        "        optimizer.step()\n"
    )


_ENTRY = (
    "import torch\n"
    "from torch.utils.data import DataLoader, TensorDataset\n"
    "{import_line}\n\n"
    "model = torch.nn.Linear(4, 1)\n"
    "optimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
    "loader = DataLoader(TensorDataset(torch.randn(8, 4), torch.randn(8, 1)), batch_size=4)\n"
    "fit(model, loader, optimizer)\n"
)


def _convert(files: dict[str, str], root: Path):
    for name, text in files.items():
        write(root / name, text)
    texts = {str(root / name): text for name, text in files.items()}
    return {Path(path).relative_to(root).as_posix(): result for path, result in convert_project(texts, str(root)).items()}


def test_a_relative_import_inside_a_package_links_the_engine(tmp_path):
    results = _convert(
        {"pkg/__init__.py": "", "pkg/engine.py": _engine(), "pkg/main.py": _ENTRY.format(import_line="from .engine import fit")},
        tmp_path,
    )
    # the accelerator lives at the entry's module level, which the engine's functions cannot see: it is passed
    assert "def fit(model, loader, optimizer, accelerator):" in results["pkg/engine.py"].text
    assert "accelerator.backward(loss)" in results["pkg/engine.py"].text
    assert "model, optimizer, loader = accelerator.prepare(" in results["pkg/main.py"].text
    assert "fit(model, loader, optimizer, accelerator)" in results["pkg/main.py"].text


def test_a_module_shared_by_two_entries_is_converted_once_for_both(tmp_path):
    files = {"engine.py": _engine(), "a.py": _ENTRY.format(import_line="from engine import fit"),
             "b.py": _ENTRY.format(import_line="from engine import fit")}
    for name, text in files.items():
        write(tmp_path / name, text)
    result = invoke(tmp_path)
    assert result.exit_code == 0, result.output
    assert "3 files converted" in result.output
    assert "def fit(model, loader, optimizer, accelerator):" in (tmp_path / "engine.py").read_text()
    for entry in ("a.py", "b.py"):
        assert "fit(model, loader, optimizer, accelerator)" in (tmp_path / entry).read_text()


def test_a_module_two_entries_need_converted_differently_is_left_with_both(tmp_path):
    engine = _engine().replace("    for x, y in loader:\n", "    for x, y in loader:\n        x, y = x.to(device), y.to(device)\n")
    engine = engine.replace("def fit(model, loader, optimizer):", "def fit(model, loader, optimizer, device):")
    device = "device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')\n"
    prepared = _ENTRY.format(import_line="from engine import fit").replace(
        "fit(model, loader, optimizer)", device + "fit(model, loader, optimizer, device)")
    unprepared = (
        "import torch\nfrom engine import fit\n\n"
        "model = torch.nn.Linear(4, 1)\n"
        "optimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "batches = [(torch.randn(4, 4), torch.randn(4, 1))]\n"
        f"{device}fit(model, batches, optimizer, device)\n"
    )
    # a's loader is prepared, so the engine's moves go; b's batches are a list, so they must stay
    files = {"engine.py": engine, "a.py": prepared, "b.py": unprepared}
    texts = {str(write(tmp_path / name, text)): text for name, text in files.items()}
    results = convert_project(texts, str(tmp_path))
    assert all(results[str(tmp_path / name)].text == text for name, text in files.items())
    for entry in ("a.py", "b.py"):
        messages = [d.message for d in results[str(tmp_path / entry)].diagnostics]
        assert any(m.startswith("nothing converted: engine.py is used by a.py, b.py, and each would need it converted differently")
                   for m in messages), messages


def test_a_shared_module_keeps_the_diagnostics_of_every_entry(tmp_path):
    unprepared = (
        "import torch\nfrom engine import fit\n\n"
        "model = torch.nn.Linear(4, 1)\n"
        "optimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "batches = [(torch.randn(4, 4), torch.randn(4, 1))]\n"
        "fit(model, batches, optimizer)\n"
    )
    files = {"engine.py": _engine(), "a.py": _ENTRY.format(import_line="from engine import fit"), "b.py": unprepared}
    texts = {str(write(tmp_path / name, text)): text for name, text in files.items()}
    engine = convert_project(texts, str(tmp_path))[str(tmp_path / "engine.py")]
    assert "accelerator.backward(loss)" in engine.text
    # from b's run: its batches are not a prepared loader (and, a note, its Accelerator runs on the CPU)
    assert [(d.code, d.line, d.severity) for d in engine.diagnostics] == [("AC002", 5, "work"), ("AC001", 7, "note")]


def test_two_files_defining_one_name_are_not_joined(tmp_path):
    engine = _engine() + "\n\ndef setup():\n    return 1\n"
    entry = _ENTRY.format(import_line="from engine import fit") + "\n\ndef setup():\n    return 2\n"
    result = invoke(*[write(tmp_path / name, text) for name, text in (("train.py", entry), ("engine.py", engine))])
    assert "AC001 not converted together with the modules it imports: train.py and engine.py both define `setup`" in result.output
    assert (tmp_path / "train.py").read_text() == entry


def test_a_name_the_module_only_re_exports_does_not_link_it(tmp_path):
    engine = "from helpers import fit  # re-exported\nimport torch\nloss = None\nloss.backward()\n"
    results = _convert({"engine.py": engine, "train.py": _ENTRY.format(import_line="from engine import fit")}, tmp_path)
    assert not results["train.py"].changed


def test_future_imports_and_main_blocks_of_a_module_come_back_unchanged(tmp_path):
    engine = '"""The loop."""\nfrom __future__ import annotations\n\n' + _engine() + '\n\nif __name__ == "__main__":\n    print("engine")\n'
    results = _convert({"engine.py": engine, "train.py": _ENTRY.format(import_line="from engine import fit")}, tmp_path)
    text = results["engine.py"].text
    assert text.startswith('"""The loop."""\nfrom __future__ import annotations\n')
    assert text.endswith('\n\nif __name__ == "__main__":\n    print("engine")\n')
    assert "accelerator.backward(loss)" in text


def test_crlf_files_keep_their_line_endings(tmp_path):
    files = {"engine.py": _engine().replace("\n", "\r\n"),
             "train.py": _ENTRY.format(import_line="from engine import fit").replace("\n", "\r\n")}
    results = _convert(files, tmp_path)
    for name, result in results.items():
        assert result.changed, name
        assert result.text.count("\n") == result.text.count("\r\n"), name


def test_options_apply_to_every_file_of_the_run(tmp_path):
    files = {"engine.py": _engine(), "train.py": _ENTRY.format(import_line="from engine import fit")}
    for name, text in files.items():
        write(tmp_path / name, text)
    texts = {str(tmp_path / name): text for name, text in files.items()}
    results = convert_project(texts, str(tmp_path), Options(target="accelerate"))
    assert "from accelerate import Accelerator" in results[str(tmp_path / "train.py")].text


def test_names_a_file_reads_without_binding_them_are_counted():
    from accel_convert.project.free_names import unbound_names

    text = "import os\n\ndef f(a, *, b):\n    for i in range(a):\n        print(os, i, b, accelerator, self_made)\n"
    assert unbound_names(text) == {"accelerator", "self_made"}


def test_calls_through_a_module_import_are_converted_with_the_module(tmp_path):
    entry = _ENTRY.format(import_line="import engine").replace("fit(model, loader, optimizer)", "engine.fit(model, loader, optimizer)")
    results = _convert({"engine.py": _engine(), "train.py": entry}, tmp_path)
    assert "engine.fit(model, loader, optimizer, accelerator)" in results["train.py"].text
    assert "\nimport engine\n" in results["train.py"].text
    assert "def fit(model, loader, optimizer, accelerator):" in results["engine.py"].text
    assert "__accel_convert" not in results["train.py"].text + results["engine.py"].text
    messages = [change.message for change in results["engine.py"].changes]
    assert "`fit` takes the accelerator as a parameter" in messages


def test_a_package_module_imported_under_another_name(tmp_path):
    entry = _ENTRY.format(import_line="import util.engine as loops").replace(
        "fit(model, loader, optimizer)", "loops.fit(model, loader, optimizer)\nprint(loops.__name__)")
    results = _convert({"util/__init__.py": "", "util/engine.py": _engine(), "main.py": entry}, tmp_path)
    # the module name is used otherwise too, so its import stays visible to the analysis; the run still converts
    assert "loops.fit(model, loader, optimizer, accelerator)" in results["main.py"].text
    assert "accelerator.backward(loss)" in results["util/engine.py"].text


def test_a_module_whose_function_name_is_also_bound_locally_is_not_joined(tmp_path):
    engine = _engine() + "\n\ndef other(fit):\n    return fit\n"
    entry = _ENTRY.format(import_line="import engine").replace("fit(model, loader, optimizer)", "engine.fit(model, loader, optimizer)")
    results = _convert({"engine.py": engine, "train.py": entry}, tmp_path)
    assert not results["engine.py"].changed and not results["train.py"].changed


def test_one_file_using_a_module_import_is_told_the_command(project, monkeypatch, tmp_path):
    folder = tmp_path / "alias"
    entry = _ENTRY.format(import_line="import engine").replace("fit(model, loader, optimizer)", "engine.fit(model, loader, optimizer)")
    write(folder / "engine.py", _engine())
    write(folder / "train.py", entry)
    monkeypatch.chdir(folder)
    result = invoke("--check", "train.py")
    assert ("AC001 `engine.fit` is defined in engine.py, part of this training run: convert the files together "
            "with `accel-convert train.py engine.py`") in result.output


def test_a_trainer_module_gets_the_runtime_import_it_uses(tmp_path):
    trainer = (
        "import torch\nfrom torch.utils.data import DataLoader\n\n\n"
        "class Trainer:\n"
        "    def __init__(self, model, dataset):\n"
        "        self.model, self.dataset = model, dataset\n"
        "        self.device = 'cuda' if torch.cuda.is_available() else 'cpu'\n\n"
        "    def run(self):\n"
        "        model = self.model\n"
        "        optimizer = torch.optim.AdamW(model.parameters())\n"
        "        for x in DataLoader(self.dataset, batch_size=4):\n"
        "            model(x.to(self.device)).sum().backward()\n"
        "            optimizer.step()\n"
    )
    entry = "import torch\n\nfrom trainer import Trainer\n\nTrainer(torch.nn.Linear(4, 1), torch.randn(8, 4)).run()\n"
    results = _convert({"trainer.py": trainer, "main.py": entry}, tmp_path)
    text = results["trainer.py"].text
    assert text.startswith("import torch\nfrom torch.utils.data import DataLoader\nfrom accel import Accelerator\n")
    assert "        self.accelerator = Accelerator()\n" in text
    assert not results["main.py"].changed  # the entry reads no runtime name: it keeps its imports
    assert "import `Accelerator` (used in this file)" in [change.message for change in results["trainer.py"].changes]


_HELPERS = (
    "import os\n\n"
    "import torch.distributed as dist\n\n\n"
    "def setup():\n"
    "    if \"RANK\" in os.environ:\n"
    "        dist.init_process_group(\"gloo\")\n\n\n"
    "def get_rank():\n"
    "    if not dist.is_initialized():\n"
    "        return 0\n"
    "    return dist.get_rank()\n\n\n"
    "def is_main_process():\n"
    "    return get_rank() == 0\n"
)
_HELPED_ENTRY = (
    "import torch\n"
    "from torch.utils.data import DataLoader, TensorDataset\n"
    "import utils\n\n\n"
    "def main():\n"
    "    utils.setup()\n"
    "    model = torch.nn.Linear(4, 1)\n"
    "    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
    "    loader = DataLoader(TensorDataset(torch.randn(8, 4), torch.randn(8, 1)), batch_size=4)\n"
    "    for x, y in loader:\n"
    "        optimizer.zero_grad()\n"
    "        loss = torch.nn.functional.mse_loss(model(x), y)\n"
    "        loss.backward()\n"
    "        optimizer.step()\n"
    "        if utils.is_main_process():\n"
    "            print(loss.item())\n\n\n"
    "main()\n"
)


def test_helpers_only_the_run_uses_are_handed_the_accelerator(tmp_path):
    results = _convert({"utils.py": _HELPERS, "train.py": _HELPED_ENTRY}, tmp_path)
    assert "def get_rank(accelerator):" in results["utils.py"].text
    assert "utils.is_main_process(accelerator)" in results["train.py"].text


def test_helpers_another_script_calls_keep_their_signatures(tmp_path):
    report = "from utils import is_main_process\n\nif is_main_process():\n    print('report')\n"
    results = _convert({"utils.py": _HELPERS, "train.py": _HELPED_ENTRY, "report.py": report}, tmp_path)
    assert results["train.py"].changed and "accelerator.backward(loss)" in results["train.py"].text
    # report.py (which trains nothing) still calls is_main_process(): neither it nor get_rank gets a parameter
    assert "def get_rank():\n" in results["utils.py"].text and "def is_main_process():\n" in results["utils.py"].text
    assert "init_process_group" not in results["utils.py"].text
    assert results["report.py"].text == report
    assert "utils.is_main_process()" in results["train.py"].text
    assert not any(d.message.startswith("nothing converted") for r in results.values() for d in r.diagnostics)


def test_comments_under_a_modules_main_block_come_back(tmp_path):
    engine = _engine() + '\n\nif __name__ == "__main__":\n    print("engine")\n    # fit(model, loader, optimizer)\n    # print("done")\n'
    results = _convert({"engine.py": engine, "train.py": _ENTRY.format(import_line="from engine import fit")}, tmp_path)
    text = results["engine.py"].text
    assert "accelerator.backward(loss)" in text
    assert text.endswith('\n\nif __name__ == "__main__":\n    print("engine")\n    # fit(model, loader, optimizer)\n    # print("done")\n')


def test_an_entry_that_needs_nothing_converted_is_left_byte_for_byte(tmp_path):
    lib = (
        "import torch\n\n\nclass Thing:\n    pass\n\n\n"
        "def train():\n"
        "    model = torch.nn.Linear(2, 2)\n"
        "    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "    loader = torch.utils.data.DataLoader(torch.randn(8, 2), batch_size=2)\n"
        "    for x in loader:\n"
        "        optimizer.zero_grad()\n"
        "        model(x).sum().backward()\n"
        "        optimizer.step()\n"
    )
    use = "from lib import Thing\n\nprint(Thing())\n"
    results = _convert({"lib.py": lib, "use.py": use}, tmp_path)
    assert results["lib.py"].changed
    # the import the conversion added among use.py's imports went to lib.py, which uses it, and its line with it
    assert results["use.py"].text == use and not results["use.py"].changed


def test_loaders_a_data_module_builds_are_prepared_where_the_run_receives_them(tmp_path):
    data = (
        "import torch\nfrom torch.utils.data import DataLoader, TensorDataset\n\n\n"
        "def get_data(batch_size):\n"
        "    train = TensorDataset(torch.randn(16, 4), torch.randn(16, 1))\n"
        "    valid = TensorDataset(torch.randn(8, 4), torch.randn(8, 1))\n"
        "    return DataLoader(train, batch_size=batch_size, shuffle=True), DataLoader(valid, batch_size=batch_size)\n"
    )
    entry = (
        "import torch\nfrom data import get_data\n\n\n"
        "def main():\n"
        "    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')\n"
        "    train_dl, valid_dl = get_data(4)\n"
        "    model = torch.nn.Linear(4, 1).to(device)\n"
        "    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "    for x, y in train_dl:\n"
        "        x, y = x.to(device), y.to(device)\n"
        "        optimizer.zero_grad()\n"
        "        torch.nn.functional.mse_loss(model(x), y).backward()\n"
        "        optimizer.step()\n\n\n"
        "main()\n"
    )
    results = _convert({"data.py": data, "train.py": entry}, tmp_path)
    text = results["train.py"].text
    assert "model, optimizer, train_dl, valid_dl = accelerator.prepare(model, optimizer, train_dl, valid_dl)" in text, text
    assert "x.to(device)" not in text
    assert results["data.py"].text == data
    assert not [d for d in results["train.py"].diagnostics if d.code == "AC002"]


def test_an_evaluation_module_joins_the_run_and_its_loop_is_gathered(tmp_path):
    evaluate = (
        "import torch\n\n\n"
        "@torch.no_grad()\n"
        "def evaluate(model, loader, device):\n"
        "    correct = 0\n"
        "    for x, y in loader:\n"
        "        x, y = x.to(device), y.to(device)\n"
        "        out = model(x)\n"
        "        correct += (out.argmax(1) == y).sum().item()\n"
        "    return correct\n"
    )
    entry = (
        "import torch\nfrom torch.utils.data import DataLoader, TensorDataset\nfrom evaluate import evaluate\n\n\n"
        "def main():\n"
        "    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')\n"
        "    data = TensorDataset(torch.randn(16, 4), torch.randint(0, 2, (16,)))\n"
        "    train_loader = DataLoader(data, batch_size=4, shuffle=True)\n"
        "    val_loader = DataLoader(data, batch_size=4)\n"
        "    model = torch.nn.Linear(4, 2).to(device)\n"
        "    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "    for x, y in train_loader:\n"
        "        x, y = x.to(device), y.to(device)\n"
        "        optimizer.zero_grad()\n"
        "        torch.nn.functional.cross_entropy(model(x), y).backward()\n"
        "        optimizer.step()\n"
        "    print(evaluate(model, val_loader, device))\n\n\n"
        "main()\n"
    )
    results = _convert({"evaluate.py": evaluate, "train.py": entry}, tmp_path)
    text = results["evaluate.py"].text
    assert "def evaluate(model, loader, device, accelerator):" in text, text
    assert "        out, y = accelerator.gather_for_metrics((out, y))\n" in text
    assert "evaluate(model, val_loader, device, accelerator)" in results["train.py"].text
    # converted alone, the entry names the function it hands the prepared objects to (file-by-file behaviour)
    alone = convert_project({str(tmp_path / "train.py"): entry}, str(tmp_path))[str(tmp_path / "train.py")]
    assert any(d.code == "AC002" and "`evaluate(...)`" in d.message for d in alone.diagnostics), alone.diagnostics


def test_two_spellings_of_one_import_are_not_a_clash(tmp_path):
    engine = "import torch.nn as nn\n" + _engine()
    entry = "from torch import nn\n" + _ENTRY.format(import_line="from engine import fit")
    results = _convert({"engine.py": engine, "train.py": entry}, tmp_path)
    assert "accelerator.backward(loss)" in results["engine.py"].text
    assert not any("both define" in d.message for r in results.values() for d in r.diagnostics)


def test_files_that_only_evaluate_are_not_refused_as_a_run(tmp_path):
    # two model modules binding `nn` differently, imported by a hub file: no training anywhere, so no group and
    # no diagnostic about joining them
    heads = "import torch\nfrom torch import nn\n\n\n@torch.no_grad()\ndef predict(model, x):\n    return model(x)\n"
    other = "import torch\nnn = None\n\n\n@torch.no_grad()\ndef score(model, x):\n    return model(x).sum()\n"
    hub = "from heads import predict\nfrom other import score\n\nprint(predict, score)\n"
    for name, text in (("heads.py", heads), ("other.py", other), ("hub.py", hub)):
        write(tmp_path / name, text)
    result = invoke("--check", tmp_path)
    assert result.exit_code == 0 and "not converted together" not in result.output, result.output
    # and without the clash, no group is formed either: there is nothing to convert together
    texts = {"heads.py": heads, "other.py": other.replace("nn = None\n", ""), "hub.py": hub}
    assert find_groups({str(tmp_path / n): t for n, t in texts.items()}, str(tmp_path)) == ([], [])


def test_a_module_re_exported_by_a_project_module_is_not_a_clash(tmp_path):
    helpers = "import torch\nimport math\n\n\n@torch.no_grad()\ndef lr_at(step):\n    return math.cos(step)\n"
    engine = "import math\n\nfrom helpers import lr_at\n" + _engine()
    entry = "from helpers import math\n" + _ENTRY.format(import_line="from engine import fit")
    results = _convert({"helpers.py": helpers, "engine.py": engine, "train.py": entry}, tmp_path)
    assert "accelerator.backward(loss)" in results["engine.py"].text
    assert not any("both define" in d.message for r in results.values() for d in r.diagnostics)


def test_a_script_that_only_uses_helpers_of_a_training_module_gets_no_refusal(tmp_path):
    # utils.py holds a backward somewhere, but predict.py only takes `pick_device` from it; a clash between the two
    # (both define ROOT) is not worth a diagnostic on a script that trains nothing
    utils = (
        "import torch\n\nROOT = 'utils'\n\n\n"
        "def pick_device():\n    return torch.device('cpu')\n\n\n"
        "def profile(model, x):\n    model(x).sum().backward()\n"
    )
    predict = "from utils import pick_device\n\nROOT = 'predict'\nprint(pick_device(), ROOT)\n"
    write(tmp_path / "utils.py", utils)
    write(tmp_path / "predict.py", predict)
    assert "not converted together" not in invoke("--check", tmp_path).output
    write(tmp_path / "predict.py", predict.replace("import pick_device", "import pick_device, profile"))
    assert "predict.py and utils.py both define `ROOT` at module level" in invoke("--check", tmp_path).output
