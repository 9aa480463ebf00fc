"""Evaluation metrics do not depend on the number of processes.

For every runnable fixture that declares ``untrained_args`` (arguments under which it trains nothing, e.g.
``--epochs 0``, and evaluates its freshly initialised model, so every process holds the same weights), the converted
after.py prints exactly the same metric lines under ``accel launch --num-processes 2 --cpu`` as with one process:
the evaluation gathers the model's outputs and the targets (AC010) and prints once (AC011). That the one-process
after.py prints what before.py prints is test_fixtures_run's job (with the normal ``args``, whose runs evaluate the
same code), so before.py is not run again here.

Which fixtures must declare ``untrained_args`` is read from their code, not from fixture.toml: a runnable fixture
evaluates when after.py calls ``gather_for_metrics`` (the converter found an evaluation) or when before.py has an
evaluation loop of its own, found with ``ast`` independently of the converter. An evaluation loop is a ``for`` loop or
a comprehension that runs with gradients off or the model in eval mode:

- inside ``with ...no_grad():`` or ``with ...inference_mode():``,
- in a function decorated with ``@...no_grad()`` or ``@...inference_mode()``,
- or after an ``x.eval()`` statement in the same block, before any ``x.train()`` statement there.

Loops over a module's own tensors (``.parameters()``, ``.buffers()`` and their ``named_`` forms, as in weight
updates under ``no_grad``) are not evaluations. Matching the last name of the call (``torch.no_grad``, ``T.no_grad``,
``no_grad``) keeps import aliases working without resolving imports.

The one excuse for an evaluating fixture without ``untrained_args`` is the converter's own word: a diagnostics.txt
line in which AC010 says it left an evaluation loop not gathered (its metrics then cover one process's batches,
by design, and the user is told so), or that a metric it gathered still changes with the number of processes (a
mean of per-batch mean losses: the user is told to weight the batches), or in which AC002 says a loader keeps its
own DistributedSampler, so that sums and counts over it cover this process's share.
"""

from __future__ import annotations

import ast

import pytest

from tests.e2e.cases import load_cases
from tests.e2e.runs import Run, failure_report, metric_lines

GRADIENT_OFF = {"no_grad", "inference_mode"}
MODULE_TENSORS = {"parameters", "named_parameters", "buffers", "named_buffers"}
LOOPS = (ast.For, ast.AsyncFor, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)

RUNNABLE = [case for case in load_cases() if case.runnable]
CASES = [case for case in RUNNABLE if case.untrained_args]


def _last_name(node: ast.expr) -> str | None:
    """``torch.no_grad()`` -> "no_grad", ``no_grad`` -> "no_grad", ``model.eval()`` -> "eval"."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


def _iterates_module_tensors(loop: ast.AST) -> bool:
    """A loop over ``x.parameters()`` and the like: a weight update, not an evaluation."""
    sources = [loop.iter] if isinstance(loop, (ast.For, ast.AsyncFor)) else [g.iter for g in loop.generators]
    return all(isinstance(s, ast.Call) and _last_name(s) in MODULE_TENSORS for s in sources)


def _has_loop(nodes: list[ast.AST]) -> bool:
    return any(
        isinstance(node, LOOPS) and not _iterates_module_tensors(node)
        for tree in nodes
        for node in ast.walk(tree)
    )


def _mode_call(statement: ast.stmt) -> str | None:
    """"eval" or "train" for a statement ``x.eval()`` / ``x.train()``."""
    if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
        name = _last_name(statement.value)
        if name in ("eval", "train") and isinstance(statement.value.func, ast.Attribute):
            return name
    return None


def _block_evaluates(statements: list[ast.stmt]) -> bool:
    """A block holds a loop after ``x.eval()`` (and before ``x.train()``)."""
    evaluating = False
    for statement in statements:
        mode = _mode_call(statement)
        if mode is not None:
            evaluating = mode == "eval"
        elif evaluating and _has_loop([statement]):
            return True
    return False


def has_evaluation_loop(source: str) -> bool:
    """Whether a script has an evaluation loop (see the module docstring)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.With, ast.AsyncWith)):
            if any(_last_name(item.context_expr) in GRADIENT_OFF for item in node.items) and _has_loop(node.body):
                return True
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if any(_last_name(d) in GRADIENT_OFF for d in node.decorator_list) and _has_loop(node.body):
                return True
        for field in ("body", "orelse", "finalbody"):
            block = getattr(node, field, None)
            if isinstance(block, list) and block and isinstance(block[0], ast.stmt) and _block_evaluates(block):
                return True
    return False


def evaluates(case) -> bool:
    gathers = case.after.is_file() and "gather_for_metrics(" in case.after.read_text(encoding="utf-8-sig")
    return gathers or has_evaluation_loop(case.before.read_text(encoding="utf-8-sig"))


def left_ungathered(case) -> bool:
    """The converter reported an evaluation it could not make independent of the number of processes (AC010), or a
    loader left with its own DistributedSampler whose sums and counts cover one process's share (AC002)."""
    diagnostics = case.folder / "diagnostics.txt"
    return diagnostics.is_file() and any(
        (" AC010 " in line and ("evaluation loop not gathered" in line or "changes with the number of processes" in line))
        or (" AC002 " in line and "cover this process's share" in line)
        for line in diagnostics.read_text().splitlines()
    )


def needed_runs(test_name, params):
    """The subprocess runs this test asks for, so the session pool can start them early."""
    case = params.get("case")
    if test_name != "test_untrained_evaluation_is_the_same_with_two_processes" or not case.after.is_file():
        return []
    return [Run(case.after, case.untrained_args), Run(case.after, case.untrained_args, processes=2)]


def _lines(pool, run):
    completed = pool.result(run)
    assert completed.returncode == 0, failure_report(run, completed)
    return metric_lines(completed.stdout)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("with torch.no_grad():\n    acc = sum(m(x).sum() for x, y in loader)\n", True),
        ("with T.inference_mode(), open(p) as f:\n    for b in loader:\n        print(b)\n", True),
        ("@torch.no_grad()\ndef estimate(m):\n    for k in range(5):\n        m(k)\n", True),
        ("def test(m, loader):\n    m.eval()\n    for x, y in loader:\n        m(x)\n", True),
        ("m.eval()\nm.train()\nfor x, y in loader:\n    m(x).backward()\n", False),
        ("for x, y in loader:\n    m(x).backward()\nwith torch.no_grad():\n    print(m(probe).mean())\n", False),
        ("with torch.no_grad():\n    for p in model.parameters():\n        p.clamp_(-1, 1)\n", False),
    ],
    ids=["no_grad-genexp", "inference_mode", "decorator", "after-eval", "eval-then-train", "no-loop", "parameters"],
)
def test_evaluation_loops_are_found_in_code(source, expected):
    assert has_evaluation_loop(source) is expected


def test_every_evaluating_fixture_evaluates_untrained():
    missing = [
        case.name for case in RUNNABLE if evaluates(case) and not case.untrained_args and not left_ungathered(case)
    ]
    assert not missing, (
        "these runnable fixtures evaluate (after.py gathers for metrics or before.py has an evaluation loop) but "
        "their fixture.toml declares no untrained_args, arguments under which the script trains nothing and "
        f"evaluates its initial model (nor does AC010 report an evaluation loop it left ungathered): {missing}"
    )


@pytest.mark.parametrize("case", CASES, ids=str)
def test_untrained_evaluation_is_the_same_with_two_processes(case, run_pool):
    if not case.after.is_file():
        pytest.skip(f"fixtures/{case.name}/after.py does not exist yet")
    one, two = needed_runs("test_untrained_evaluation_is_the_same_with_two_processes", {"case": case})
    expected = _lines(run_pool, one)
    assert expected, f"fixtures/{case.name}/after.py {' '.join(case.untrained_args)} printed no metrics"
    assert _lines(run_pool, two) == expected, "two processes: every line once, with the one-process values"
