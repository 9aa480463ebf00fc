"""Every fixture's before.py through the command line: the --diff applies with `git apply` to give exactly what the
converter's API gives (bytes, encoding and line endings included), and --check then finds nothing left to do. The
exit status is 1 while a file would change or a diagnostic leaves work (a declined file stays at 1 until silenced)."""

import shutil
import subprocess
from pathlib import Path

import pytest

from accel_convert.shell.files import decode_source
from tests.transform.cli_helpers import converted, diagnostics, invoke

FIXTURES = sorted(Path(__file__).resolve().parents[2].joinpath("fixtures").glob("*/before.py"))


@pytest.mark.parametrize("before", FIXTURES, ids=[p.parent.name for p in FIXTURES])
def test_fixture_diff_applies_and_the_result_is_stable(before, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    script = Path(shutil.copy(before, tmp_path / "train.py"))
    data = script.read_bytes()
    source = decode_source(data)
    expected = converted(source.text).encode(source.encoding)
    work = any(not d.is_note for d in diagnostics(source.text))

    result = invoke("--check", "--diff", "train.py")
    assert result.exit_code == (1 if expected != data or work else 0), result.stderr
    assert script.read_bytes() == data
    assert (result.stdout_bytes == b"") == (expected == data)
    if result.stdout_bytes:
        subprocess.run(["git", "init", "-q"], check=True)
        subprocess.run(["git", "apply", "-"], input=result.stdout_bytes, check=True)
    assert script.read_bytes() == expected

    again = invoke("--check", "train.py")
    left = any(not d.is_note for d in diagnostics(expected.decode(source.encoding)))
    assert again.exit_code == (1 if left else 0), again.stderr
    assert "would convert" not in again.stderr
