"""The decision stage: computed once, read by every rule; rules independent of each other and of their order."""

from __future__ import annotations

import ast
import random
from pathlib import Path

import pytest

import accel_convert.convert as convert_module
from accel_convert.convert import convert_source
from accel_convert.rules import RULES

PACKAGE = Path(convert_module.__file__).parent
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
# modules of rules/ that are not rules: what every rule may import
_SHARED = {"accel_convert.rules.base", "accel_convert.rules.context"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def _rule_module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    return name


def test_no_rule_imports_another_rule():
    rule_modules = {type(rule).__module__ for rule in RULES}
    for path in (PACKAGE / "rules").rglob("*.py"):
        if path.name in ("pages.py",) or path.parent.name == "rules" and path.name == "__init__.py":
            continue  # the registry and the page generator list the rules
        own = _rule_module(path)
        owner = next((module for module in rule_modules if own == module or own.startswith(module + ".")), None)
        for imported in _imports(path):
            target = next((module for module in rule_modules if imported == module or imported.startswith(module + ".")), None)
            if target is not None and target != owner:
                pytest.fail(f"{path.relative_to(PACKAGE)} imports {imported}: rules read the decisions, never each other")


def test_convert_imports_no_rule_module():
    rule_modules = {type(rule).__module__ for rule in RULES}
    imported = _imports(PACKAGE / "convert.py")
    assert not {name for name in imported if any(name.startswith(module) for module in rule_modules)}
    assert not [name for name in imported if "._" in name], "no private imports across modules"


def test_no_private_names_imported_across_modules():
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("accel_convert"):
                private = [alias.name for alias in node.names if alias.name.startswith("_")]
                assert not private, f"{path.relative_to(PACKAGE)} imports private {private} from {node.module}"


def _cases() -> list[str]:
    return sorted(p.name for p in FIXTURES.iterdir() if (p / "before.py").is_file() and (p / "after.py").is_file())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_output_does_not_depend_on_the_order_rules_plan_in(monkeypatch, seed):
    """Every fixture converts to the same text and the same diagnostics whatever order the rules plan in."""
    expected = {}
    for case in _cases():
        text = (FIXTURES / case / "before.py").read_text(encoding="utf-8")
        expected[case] = convert_source(text)
    shuffled = list(RULES)
    random.Random(seed).shuffle(shuffled) if seed else shuffled.reverse()
    monkeypatch.setattr(convert_module, "RULES", tuple(shuffled))
    for case, result in expected.items():
        again = convert_source((FIXTURES / case / "before.py").read_text(encoding="utf-8"))
        assert again.text == result.text, case
        assert again.diagnostics == result.diagnostics, case
        assert sorted(again.changes, key=repr) == sorted(result.changes, key=repr), case
