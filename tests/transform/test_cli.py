"""accel-convert modes, messages and exit codes (in place, --diff, --check, stdin, options, errors)."""

import subprocess

import pytest

from tests.transform.cli_helpers import PLAIN, SYNTAX_ERROR, TRAIN, changes, converted, invoke, write


@pytest.fixture
def scripts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return write(tmp_path / "train.py", TRAIN), write(tmp_path / "plain.py", PLAIN)


def _plural(n, noun):
    return f"{n} {noun}{'' if n == 1 else 's'}"


def test_in_place_rewrites_and_reports(scripts):
    train, plain = scripts
    result = invoke("train.py", "plain.py")
    assert result.exit_code == 0, result.stderr
    assert train.read_text() == converted(TRAIN)
    assert plain.read_text() == PLAIN
    assert f"train.py: {_plural(len(changes(TRAIN)), 'change')}" in result.stderr.splitlines()
    assert result.stderr.splitlines()[-1] == "1 file converted, 1 file left unchanged."
    assert result.stdout == ""


def test_converting_a_converted_file_changes_nothing(scripts):
    assert invoke("train.py").exit_code == 0
    once = scripts[0].read_bytes()
    result = invoke("--check", "train.py")
    assert result.exit_code == 0
    assert scripts[0].read_bytes() == once


def test_diff_prints_an_applicable_patch_and_writes_nothing(scripts, tmp_path):
    train = scripts[0]
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in scripts}
    result = invoke("--diff", "train.py", "plain.py")
    assert result.exit_code == 0
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in scripts} == before
    assert result.stdout.startswith("--- a/train.py\n+++ b/train.py\n@@ ")
    assert "plain.py" not in result.stdout
    assert f"would convert train.py: {_plural(len(changes(TRAIN)), 'change')}" in result.stderr
    assert result.stderr.splitlines()[-1] == "1 file would be converted, 1 file would be left unchanged."
    subprocess.run(["git", "init", "-q"], check=True)
    subprocess.run(["git", "apply", "-"], input=result.stdout_bytes, check=True)
    assert train.read_text() == converted(TRAIN)


def test_diff_of_a_file_without_final_newline_applies(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = TRAIN.rstrip("\n")
    write(tmp_path / "train.py", source)
    result = invoke("--diff", "train.py")
    subprocess.run(["git", "init", "-q"], check=True)
    subprocess.run(["git", "apply", "-"], input=result.stdout_bytes, check=True)
    assert (tmp_path / "train.py").read_text() == converted(source)


def test_check_exits_1_when_something_would_change_and_0_otherwise(scripts):
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in scripts}
    result = invoke("--check", "train.py", "plain.py")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "would convert train.py" in result.stderr
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in scripts} == before
    assert invoke("--check", "plain.py").exit_code == 0


def test_check_with_diff_shows_the_diff_and_exits_1(scripts):
    result = invoke("--check", "--diff", "train.py")
    assert result.exit_code == 1
    assert result.stdout.startswith("--- a/train.py\n")


def test_diff_alone_exits_0_even_when_something_would_change(scripts):
    assert invoke("--diff", "train.py").exit_code == 0


def test_no_files_is_success(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke()
    assert result.exit_code == 0
    (tmp_path / "empty").mkdir()
    result = invoke("--check", "empty")
    assert result.exit_code == 0
    assert "No Python files to convert." in result.stderr


def test_stdin_to_stdout(tmp_path):
    result = invoke("-", input=TRAIN.encode())
    assert result.exit_code == 0
    assert result.stdout == converted(TRAIN)
    assert "-: " in result.stderr
    unchanged = invoke("-", input=PLAIN.encode())
    assert unchanged.stdout == PLAIN


def test_stdin_filename_names_messages_and_diff(tmp_path):
    result = invoke("--diff", "--stdin-filename", "pkg/train.py", "-", input=TRAIN.encode())
    assert result.stdout.startswith("--- a/pkg/train.py\n+++ b/pkg/train.py\n")
    assert "would convert pkg/train.py" in result.stderr
    check = invoke("--check", "--stdin-filename", "pkg/train.py", "-", input=TRAIN.encode())
    assert check.exit_code == 1
    assert check.stdout == ""


def test_stdin_filename_with_force_exclude_passes_the_input_through(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ("--force-exclude", "--exclude", "legacy/", "--stdin-filename", "legacy/train.py", "-")
    result = invoke(*args, input=TRAIN.encode())
    assert result.exit_code == 0
    assert result.stdout == TRAIN
    assert invoke("--check", *args, input=TRAIN.encode()).exit_code == 0


def test_target_accelerate(scripts):
    result = invoke("--target", "accelerate", "train.py")
    assert result.exit_code == 0
    text = scripts[0].read_text()
    assert text == converted(TRAIN, target="accelerate")
    assert "accelerate" in text and text != converted(TRAIN)


def test_select_and_ignore_pass_rule_codes_to_the_converter(scripts, tmp_path):
    all_codes = sorted({c.code for c in changes(TRAIN)})
    first = all_codes[0]
    result = invoke("--diff", "--select", first, "train.py")
    # AC001 alone prepares nothing: the decision stage keeps everything prepare would move and says so (work: exit 1)
    assert result.exit_code == 1 and "AC002 is not selected" in result.stderr
    expected = converted(TRAIN, select=frozenset({first}))
    assert f"{_plural(len(changes(TRAIN, select=frozenset({first}))), 'change')}" in result.stderr
    invoke("--select", first, "train.py")
    assert scripts[0].read_text() == expected
    write(scripts[0], TRAIN)
    result = invoke("--ignore", "AC004", "train.py")
    assert result.exit_code == 0, result.stderr
    assert scripts[0].read_text() == converted(TRAIN, ignore=frozenset({"AC004"})) != converted(TRAIN)


def test_verbose_lists_each_change_with_code_and_line(scripts):
    result = invoke("--verbose", "--check", "train.py", "plain.py")
    lines = result.stderr.splitlines()
    for change in changes(TRAIN):
        assert f"  train.py:{change.line}: {change.code} {change.message}" in lines
    assert "plain.py: unchanged" in lines


def test_quiet_prints_nothing_but_errors(scripts, tmp_path):
    write(tmp_path / "broken.py", SYNTAX_ERROR)
    result = invoke("--quiet", "train.py", "plain.py", "broken.py")
    assert result.exit_code == 123
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("broken.py:"), lines
    assert scripts[0].read_text() == converted(TRAIN)


def test_syntax_error_exits_123_names_the_position_and_others_still_convert(scripts, tmp_path):
    broken = write(tmp_path / "broken.py", SYNTAX_ERROR)
    result = invoke("broken.py", "train.py")
    assert result.exit_code == 123
    assert broken.read_text() == SYNTAX_ERROR
    assert scripts[0].read_text() == converted(TRAIN)
    error = next(l for l in result.stderr.splitlines() if l.startswith("broken.py:"))
    assert error.split(":")[1].isdigit() and error.split(":")[2].isdigit(), error
    assert error.split(":", 3)[3].startswith(" syntax error"), error
    assert result.stderr.splitlines()[-1] == "1 file converted, 0 files left unchanged, 1 file failed to convert."


def test_undecodable_file_exits_123_and_is_untouched(scripts, tmp_path):
    data = b"import torch\nname = '\xff'\n"
    bad = write(tmp_path / "bad.py", data)
    result = invoke("bad.py", "train.py")
    assert result.exit_code == 123
    assert "bad.py: error: cannot decode line 2 as utf-8" in result.stderr
    assert bad.read_bytes() == data
    assert scripts[0].read_text() == converted(TRAIN)


def test_internal_error_in_one_file_exits_123_and_others_still_convert(scripts, monkeypatch, tmp_path):
    from accel_convert.shell import runner

    real = runner.convert_text
    write(tmp_path / "other.py", TRAIN.replace("lr=0.1", "lr=0.2"))

    def failing(text, options, *args):
        if "lr=0.2" in text:
            raise RuntimeError("rule exploded")
        return real(text, options, *args)

    monkeypatch.setattr(runner, "convert_text", failing)
    result = invoke("other.py", "train.py")
    assert result.exit_code == 123
    assert "other.py: internal error: RuntimeError: rule exploded" in result.stderr
    assert (tmp_path / "other.py").read_text() == TRAIN.replace("lr=0.1", "lr=0.2")
    assert scripts[0].read_text() == converted(TRAIN)


def test_error_wins_over_would_change_in_check_mode(scripts, tmp_path):
    write(tmp_path / "broken.py", SYNTAX_ERROR)
    assert invoke("--check", "train.py", "broken.py").exit_code == 123


def test_diagnostics_are_printed_unless_quiet(scripts, monkeypatch):
    from accel_convert.model import Diagnostic, Result
    from accel_convert.shell import runner

    monkeypatch.setattr(
        runner, "convert_text", lambda text, *args: Result(text, (), (Diagnostic("AC900", 3, 5, "left for you"),))
    )
    result = invoke("plain.py")
    assert "plain.py:3:5: AC900 left for you" in result.stderr.splitlines()
    assert result.exit_code == 1  # it leaves work
    quiet = invoke("--quiet", "plain.py")
    assert quiet.stderr == "" and quiet.exit_code == 1


def test_color_on_and_off(scripts):
    coloured = invoke("--diff", "--color", "train.py").stdout
    assert "\x1b[32m+" in coloured and "\x1b[1m--- a/train.py" in coloured
    plain = invoke("--diff", "--no-color", "train.py").stdout
    assert "\x1b[" not in plain
    assert invoke("--diff", "train.py").stdout == plain  # not a terminal: no colour by default


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.py"], "'missing.py' does not exist"),
        (["--target", "jax", "train.py"], "'jax' is not one of 'accel', 'accelerate'"),
        (["--select", "ac1", "train.py"], "--select: 'ac1' is not a rule code"),
        (["--jobs", "0", "train.py"], "0 is not in the range x>=1"),
        (["-q", "-v", "train.py"], "--quiet and --verbose cannot be used together"),
        (["-", "train.py"], "'-' (read from stdin) cannot be combined with other paths"),
        (["--stdin-filename", "x.py", "train.py"], "--stdin-filename only applies when reading from '-'"),
    ],
)
def test_usage_errors_exit_2_with_a_message(scripts, args, message):
    result = invoke(*args)
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split())
    assert scripts[0].read_text() == TRAIN


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("accel-convert, version ")
