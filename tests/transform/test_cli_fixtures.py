"""Every fixture's before.py through the command line: the --diff applies with `git apply` to give exactly what the
converter's API gives (bytes, encoding and line endings included), and --check then finds nothing left to do."""

import shutil
import subprocess
from pathlib import Path

import pytest

from accel_convert.shell.files import decode_source
from tests.transform.cli_helpers import converted, invoke

FIXTURES = sorted(Path(__file__).resolve().parents[2].joinpath("fixtures").glob("*/before.py"))


@pytest.mark.parametrize("before", FIXTURES, ids=[p.parent.name for p in FIXTURES])
def test_fixture_diff_applies_and_the_result_is_stable(before, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    script = Path(shutil.copy(before, tmp_path / "train.py"))
    data = script.read_bytes()
    source = decode_source(data)
    expected = converted(source.text).encode(source.encoding)

    result = invoke("--check", "--diff", "train.py")
    assert result.exit_code == (1 if expected != data else 0), result.stderr
    assert script.read_bytes() == data
    assert (result.stdout_bytes == b"") == (expected == data)
    if result.stdout_bytes:
        subprocess.run(["git", "init", "-q"], check=True)
        subprocess.run(["git", "apply", "-"], input=result.stdout_bytes, check=True)
    assert script.read_bytes() == expected

    again = invoke("--check", "train.py")
    assert again.exit_code == 0, again.stderr
