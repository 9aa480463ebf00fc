"""`accel-convert --explain CODE` prints the rule's page (the same text as docs/reference/rules/<CODE>-<name>.md)."""

from __future__ import annotations

from accel_convert.rules import RULES
from tests.transform.cli_helpers import invoke


def test_explain_prints_the_rules_page_and_converts_nothing(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("import torch\n")
    result = invoke("--explain", "ac010", str(script))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# AC010 gather-for-metrics\n")
    assert "accelerator.gather_for_metrics((out, y))" in result.stdout and "## Fix safety" in result.stdout
    assert "<!--" not in result.stdout
    assert script.read_text() == "import torch\n"


def test_every_rule_can_be_explained():
    for rule in RULES:
        result = invoke("--explain", rule.code)
        assert result.exit_code == 0 and result.stdout.startswith(f"# {rule.code} {rule.name}\n"), rule.code


def test_unknown_code_is_a_usage_error_naming_it():
    result = invoke("--explain", "AC999")
    assert result.exit_code == 2
    assert "no rule 'AC999'" in result.output and "AC010" in result.output
