"""Every .py file of the installed torch package: no crash, output parses, no training loop -> byte-identical."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from accel_convert.convert import convert_source

pytestmark = pytest.mark.slow


def _torch_files() -> list[Path]:
    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        pytest.skip("torch is not installed")
    return sorted(Path(spec.origin).parent.rglob("*.py"))


@pytest.mark.timeout(900)
def test_converting_the_torch_package():
    counts = {"files": 0, "converted": 0, "unchanged": 0, "diagnostics": 0}
    for path in _torch_files():
        text = path.read_bytes().decode("utf-8")
        counts["files"] += 1
        result = convert_source(text)  # any exception fails the test: torch's own files all parse
        counts["diagnostics"] += len(result.diagnostics)
        if result.text == text:
            assert not result.changes, path
            counts["unchanged"] += 1
            continue
        counts["converted"] += 1
        ast.parse(result.text.lstrip("\ufeff"))
        # only files with an optimizer stepped in a loop are converted
        assert "optim" in text and ".step(" in text and ".backward(" in text, path
        assert convert_source(result.text).text == result.text, f"not idempotent: {path}"
    print(f"\ntorch corpus: {counts}")
    assert counts["files"] > 1000
    assert counts["converted"] <= 0.01 * counts["files"]
