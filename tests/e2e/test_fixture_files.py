"""The fixtures themselves: valid metadata, and after.py keeps the file format that before.py has."""

from __future__ import annotations

import pytest

from tests.e2e.cases import FixtureError, load_case, load_cases

CASES = load_cases()


def test_fixture_metadata_errors_name_the_file_and_key(tmp_path):
    (tmp_path / "before.py").write_text("import torch\n")
    (tmp_path / "fixture.toml").write_text('description = "x"\nrunable = true\n')
    with pytest.raises(FixtureError, match=r"fixture\.toml: unknown key 'runable'"):
        load_case(tmp_path)
    (tmp_path / "fixture.toml").write_text('description = "x"\nline_endings = "cr"\n')
    with pytest.raises(FixtureError, match=r"line_endings = 'cr'; expected one of \('lf', 'crlf'\)"):
        load_case(tmp_path)
    (tmp_path / "fixture.toml").write_text("runnable = 1\n")
    with pytest.raises(FixtureError, match=r"runnable = 1 should be a bool"):
        load_case(tmp_path)


def test_fixture_before_files_have_the_declared_format():
    for case in CASES:
        _check_format(case, case.before.read_bytes(), final_newline=None)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_after_keeps_the_file_format(case):
    if not case.after.is_file():
        pytest.skip(f"fixtures/{case.name}/after.py does not exist yet")
    before, after = case.before.read_bytes(), case.after.read_bytes()
    if case.unchanged:
        assert after == before, f"fixtures/{case.name}: the converter must leave this file byte-identical"
    _check_format(case, after, final_newline=before.endswith(b"\n"))


def _check_format(case, data, final_newline):
    where = f"fixtures/{case.name}"
    has_bom = data.startswith(b"\xef\xbb\xbf")
    assert has_bom == (case.encoding == "utf-8-sig"), f"{where}: byte-order mark present={has_bom}, declared {case.encoding}"
    data.decode("utf-8-sig")
    lines = data.splitlines(keepends=True)
    ends = {line[len(line.rstrip(b"\r\n")):] for line in lines} - {b""}
    expected = b"\r\n" if case.line_endings == "crlf" else b"\n"
    assert ends <= {expected}, f"{where}: line endings {ends}, declared {case.line_endings}"
    if final_newline is not None:
        ends_with_newline = data.endswith(b"\n")
        assert ends_with_newline == final_newline, f"{where}: final newline {ends_with_newline}, before.py {final_newline}"
