"""accel-convert on real files: encodings and line endings kept, permissions kept, folders, excludes, config."""

import os
import stat
import subprocess

import pytest

from accel_convert.shell.files import decode_source
from tests.transform.cli_helpers import PLAIN, TRAIN, converted, invoke, write


def _expected_bytes(data: bytes) -> bytes:
    source = decode_source(data)
    return converted(source.text).encode(source.encoding)


@pytest.mark.parametrize(
    "data",
    [
        b"\xef\xbb\xbf" + TRAIN.encode(),
        TRAIN.replace("\n", "\r\n").encode(),
        b"# -*- coding: latin-1 -*-\n# caf\xe9\n" + TRAIN.encode(),
        b"\xef\xbb\xbf# \xc3\xa9t\xc3\xa9\r\n" + TRAIN.replace("\n", "\r\n").encode(),
    ],
    ids=["bom", "crlf", "latin-1-cookie", "bom-crlf"],
)
def test_encoding_bom_and_line_endings_survive_conversion(tmp_path, monkeypatch, data):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path / "train.py", data)
    assert invoke("train.py").exit_code == 0
    written = path.read_bytes()
    assert written == _expected_bytes(data)
    assert written != data
    assert written.startswith(b"\xef\xbb\xbf") == data.startswith(b"\xef\xbb\xbf")
    if b"\r\n" in data:
        assert written.count(b"\n") == written.count(b"\r\n")
    # the lines the converter did not touch are byte-identical
    assert set(data.splitlines()) - set(written.splitlines()) <= set(TRAIN.encode().splitlines())


@pytest.mark.parametrize(
    "data",
    [
        b"\xef\xbb\xbf" + TRAIN.encode(),
        b"# -*- coding: latin-1 -*-\n# caf\xe9\n" + TRAIN.encode().replace(b"model = ", b"mod\xe8le = 1\nmodel = "),
        TRAIN.replace("\n", "\r\n").encode().rstrip(b"\r\n"),
    ],
    ids=["bom", "latin-1-cookie", "crlf-no-final-newline"],
)
def test_diff_applies_byte_for_byte_whatever_the_encoding(tmp_path, monkeypatch, data):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path / "train.py", data)
    diff = invoke("--diff", "train.py").stdout_bytes
    assert path.read_bytes() == data
    subprocess.run(["git", "init", "-q"], check=True)
    subprocess.run(["git", "apply", "-"], input=diff, check=True)
    assert path.read_bytes() == _expected_bytes(data)


def test_permissions_are_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path / "train.py", TRAIN)
    os.chmod(path, 0o750)
    assert invoke("train.py").exit_code == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o750
    assert path.read_text() == converted(TRAIN)
    assert sorted(os.listdir(tmp_path)) == ["train.py"]


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ["train.py", "pkg/train_b.py", "pkg/legacy/train_c.py", "build/train_d.py", "pkg/helper.py"]:
        write(tmp_path / name, PLAIN if name.endswith("helper.py") else TRAIN)
    return tmp_path


def _converted_files(root):
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*.py") if p.read_text() != TRAIN and p.read_text() != PLAIN
    )


def test_directory_walk_skips_default_and_given_excludes(project):
    result = invoke(".", "--extend-exclude", "legacy/")
    assert result.exit_code == 0
    assert _converted_files(project) == ["pkg/train_b.py", "train.py"]
    assert result.stderr.splitlines()[-1] == "2 files converted, 1 file left unchanged."


def test_exclude_replaces_the_defaults(project):
    assert invoke(".", "--exclude", "pkg/").exit_code == 0
    assert _converted_files(project) == ["build/train_d.py", "train.py"]


def test_gitignore_is_respected_when_walking_a_repository(project):
    subprocess.run(["git", "init", "-q"], check=True)
    (project / ".gitignore").write_text("legacy/\n")
    assert invoke(".").exit_code == 0
    assert _converted_files(project) == ["pkg/train_b.py", "train.py"]


def test_force_exclude_applies_excludes_to_named_files(project):
    named = ["build/train_d.py", "pkg/legacy/train_c.py", "train.py"]
    result = invoke("--check", "--extend-exclude", "legacy", *named)
    assert result.exit_code == 1
    assert result.stderr.count("would convert") == 3
    result = invoke("--check", "--force-exclude", "--extend-exclude", "legacy", *named)
    assert result.exit_code == 1
    would = [line for line in result.stderr.splitlines() if line.startswith("would convert")]
    assert len(would) == 1 and would[0].startswith("would convert train.py: "), would


def test_only_excluded_files_named_is_success(project):
    result = invoke("--check", "--force-exclude", "build/train_d.py")
    assert result.exit_code == 0
    assert (project / "build" / "train_d.py").read_text() == TRAIN


def test_pyproject_settings_apply_and_the_command_line_wins(project, monkeypatch):
    write(
        project / "pyproject.toml",
        '[tool.accel-convert]\ntarget = "accelerate"\nextend-exclude = ["legacy/"]\nforce-exclude = true\n',
    )
    # the nearest pyproject.toml above the paths is found; its patterns are relative to its folder
    monkeypatch.chdir(project / "pkg")
    assert invoke("--check", "legacy/train_c.py").exit_code == 0
    assert invoke("train_b.py").exit_code == 0
    assert (project / "pkg" / "train_b.py").read_text() == converted(TRAIN, target="accelerate")
    assert invoke("--target", "accel", "../train.py").exit_code == 0
    assert (project / "train.py").read_text() == converted(TRAIN)


def test_config_option_reads_another_file(project):
    write(project / "conf" / "accel-convert.toml", 'target = "accelerate"\n')
    assert invoke("--config", "conf/accel-convert.toml", "train.py").exit_code == 0
    assert (project / "train.py").read_text() == converted(TRAIN, target="accelerate")


def test_bad_config_exits_2_naming_file_and_key(project):
    write(project / "pyproject.toml", "[tool.accel-convert]\ntargets = 'accel'\n")
    result = invoke("--check", "train.py")
    assert result.exit_code == 2
    assert (
        f"Error: {project / 'pyproject.toml'}: [tool.accel-convert] unknown key 'targets' (allowed: target,"
        in result.stderr
    )
    write(project / "pyproject.toml", "[tool.accel-convert]\njobs = -1\n")
    result = invoke("--check", "train.py")
    assert result.exit_code == 2
    assert "[tool.accel-convert] jobs: expected a positive integer, got -1" in result.stderr
    assert (project / "train.py").read_text() == TRAIN


def test_verbose_names_the_configuration_used(project):
    write(project / "pyproject.toml", "[tool.accel-convert]\njobs = 1\n")
    result = invoke("--check", "--verbose", "train.py")
    assert f"using configuration from {project / 'pyproject.toml'}" in result.stderr


def test_a_read_only_file_is_not_replaced_exit_123_and_the_others_convert(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    locked = write(tmp_path / "locked.py", TRAIN)
    other = write(tmp_path / "train.py", TRAIN)
    os.chmod(locked, 0o444)
    before = (locked.read_bytes(), locked.stat().st_mtime_ns, locked.stat().st_ino)
    result = invoke("locked.py", "train.py")
    assert result.exit_code == 123
    assert "locked.py: error: the file is read-only: not replaced" in result.stderr.splitlines()[0]
    assert (locked.read_bytes(), locked.stat().st_mtime_ns, locked.stat().st_ino) == before
    assert stat.S_IMODE(locked.stat().st_mode) == 0o444
    assert other.read_text() == converted(TRAIN)
    assert "1 file converted, 0 files left unchanged, 1 file failed to convert." in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["locked.py", "train.py"]


def test_a_read_only_file_may_be_checked_diffed_read_from_stdin_or_left_unchanged(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    locked = write(tmp_path / "locked.py", TRAIN)
    plain = write(tmp_path / "plain.py", PLAIN)
    os.chmod(locked, 0o444)
    os.chmod(plain, 0o444)
    assert invoke("--check", "locked.py").exit_code == 1
    assert invoke("--diff", "locked.py").exit_code == 0
    assert invoke("plain.py").exit_code == 0  # nothing to write
    stdin = invoke("-", input=locked.read_bytes())
    assert stdin.exit_code == 0 and stdin.stdout == converted(TRAIN)
    assert locked.read_text() == TRAIN


SYNTAX_ERROR_AT_30 = "import torch\n" + "x = 1\n" * 28 + "def main(:\n    pass\n\n\nloss.backward()\n"


def test_a_syntax_error_is_reported_where_python_reports_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    broken = write(tmp_path / "broken.py", SYNTAX_ERROR_AT_30)
    try:
        compile(SYNTAX_ERROR_AT_30, "broken.py", "exec")
    except SyntaxError as error:
        python = (error.lineno, error.offset, error.msg)
    assert python[0] == 30
    result = invoke("broken.py")
    assert result.exit_code == 123
    assert result.stderr.splitlines()[0] == f"broken.py:{python[0]}:{python[1]}: syntax error: {python[2]}"
    assert broken.read_text() == SYNTAX_ERROR_AT_30


@pytest.mark.parametrize(
    "text, position",
    [
        ("import torch\nx = (1,\nloss.backward()\n", "2:5: syntax error: '(' was never closed"),
        ("import torch\nif True:\nloss.backward()\n", "3:1: syntax error: expected an indented block"),
    ],
)
def test_syntax_error_positions_and_messages_are_pythons(tmp_path, monkeypatch, text, position):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "broken.py", text)
    result = invoke("--check", "broken.py")
    assert result.exit_code == 123
    assert result.stderr.splitlines()[0].startswith(f"broken.py:{position}")


BROKEN_PLAIN = "import os\n\n\ndef helper(:\n    return os.getcwd()\n"


def test_a_named_file_that_does_not_parse_fails_even_without_training_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "helper.py", BROKEN_PLAIN)
    for mode in ([], ["--check"], ["--diff"]):
        result = invoke(*mode, "helper.py")
        assert result.exit_code == 123, mode
        assert result.stderr.splitlines()[0] == "helper.py:4:12: syntax error: invalid syntax"
    assert (tmp_path / "helper.py").read_text() == BROKEN_PLAIN
    stdin = invoke("--stdin-filename", "helper.py", "-", input=BROKEN_PLAIN.encode())
    assert stdin.exit_code == 123 and stdin.stdout == ""
    assert "helper.py:4:12: syntax error" in stdin.stderr


def test_a_file_without_training_code_found_in_a_directory_is_not_parsed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "pkg" / "helper.py", BROKEN_PLAIN)
    write(tmp_path / "pkg" / "train.py", TRAIN)
    result = invoke("--check", "pkg")
    assert result.exit_code == 1  # train.py would change; helper.py is skipped by the text search
    assert "syntax error" not in result.stderr
