"""Honest exit codes: diagnostics that leave work exit 1 in every mode (ruff's convention, --exit-zero turns it off),
notes do not; suppression comments and per-file-ignores; the fix command of a failing --check; unknown rule codes
and selections without AC001 are usage errors."""

from pathlib import Path

import pytest

from accel_convert.model import NOTE, Diagnostic, Result
from tests.transform.cli_helpers import PLAIN, TRAIN, UNPREPARED, converted, diagnostics, invoke, write

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _work_line(text):
    """The line of the (first) diagnostic that leaves work, as the API reports it."""
    work = [d for d in diagnostics(text) if not d.is_note]
    assert work, "the input must give a diagnostic that leaves work"
    return work[0]


def _with_comment(text, line, comment):
    lines = text.splitlines(keepends=True)
    lines[line - 1] = lines[line - 1].rstrip("\n") + f"  {comment}\n"
    return "".join(lines)


# --- diagnostics that leave work ------------------------------------------------------------------------------


def test_the_unprepared_script_gives_a_work_diagnostic_through_the_api():
    found = _work_line(UNPREPARED)
    assert found.code == "AC002" and found.severity == "work"


@pytest.mark.parametrize("mode", [[], ["--check"], ["--diff"], ["--check", "--diff"]])
def test_a_work_diagnostic_exits_1_in_every_mode_and_names_file_line_and_code(project, mode):
    script = write(project / "train.py", UNPREPARED)
    found = _work_line(UNPREPARED)
    result = invoke(*mode, "train.py")
    assert result.exit_code == 1, result.stderr
    assert f"train.py:{found.line}:{found.col}: AC002 " in result.stderr
    assert "1 diagnostic left to fix" in result.stderr
    assert "1 diagnostic leaves work for you (exit status 1)" in result.stderr
    assert script.read_text() == (UNPREPARED if mode else converted(UNPREPARED))


def test_a_work_diagnostic_exits_1_from_stdin_and_the_output_is_still_written(project):
    result = invoke("-", input=UNPREPARED.encode())
    assert result.exit_code == 1
    assert result.stdout == converted(UNPREPARED)
    assert "-:" in result.stderr and " AC002 " in result.stderr


@pytest.mark.parametrize("mode", [[], ["--diff"]])
def test_exit_zero_turns_diagnostics_off_for_the_exit_status(project, mode):
    write(project / "train.py", UNPREPARED)
    result = invoke("--exit-zero", *mode, "train.py")
    assert result.exit_code == 0, result.stderr
    assert " AC002 " in result.stderr  # still reported
    assert "leaves work for you" not in result.stderr
    assert invoke("--exit-zero", "-", input=UNPREPARED.encode()).exit_code == 0


def test_exit_zero_keeps_check_failing_when_a_file_would_change(project):
    write(project / "train.py", UNPREPARED)
    assert invoke("--exit-zero", "--check", "train.py").exit_code == 1
    declined = (FIXTURES / "hogwild_shared_memory" / "before.py").read_text()  # nothing changes, a diagnostic stays
    write(project / "hogwild.py", declined)
    assert invoke("--check", "hogwild.py").exit_code == 1
    assert invoke("--exit-zero", "--check", "hogwild.py").exit_code == 0


def test_a_declined_file_fails_check_until_the_diagnostic_is_silenced(project):
    before = (FIXTURES / "hogwild_shared_memory" / "before.py").read_text()
    script = write(project / "train.py", before)
    found = _work_line(before)
    result = invoke("--check", "train.py")
    assert result.exit_code == 1
    assert "would convert" not in result.stderr and f"train.py:{found.line}:{found.col}: {found.code}" in result.stderr
    write(script, _with_comment(before, found.line, f"# accel-convert: ignore[{found.code}]"))
    assert invoke("--check", "train.py").exit_code == 0


def test_errors_win_over_work_diagnostics(project):
    write(project / "train.py", UNPREPARED)
    write(project / "broken.py", "import torch\nloss.backward(\n")
    assert invoke("train.py", "broken.py").exit_code == 123


# --- notes ----------------------------------------------------------------------------------------------------


def test_notes_do_not_change_the_exit_status_and_are_shown_only_with_verbose(project, monkeypatch):
    from accel_convert.shell import runner

    note = Diagnostic("AC004", 3, 5, "kept on purpose", NOTE)
    monkeypatch.setattr(runner, "convert_text", lambda text, *args: Result(text, (), (note,)))
    write(project / "plain.py", PLAIN)
    quiet_about_it = invoke("plain.py")
    assert quiet_about_it.exit_code == 0
    assert "kept on purpose" not in quiet_about_it.stderr
    assert quiet_about_it.stderr.splitlines()[-1] == "0 files converted, 1 file left unchanged, 1 note (-v shows them)."
    verbose = invoke("-v", "--check", "plain.py")
    assert verbose.exit_code == 0
    assert "plain.py:3:5: AC004 (note) kept on purpose" in verbose.stderr.splitlines()


def test_backward_left_because_prepare_was_declined_is_a_note_and_the_decline_is_work(project):
    before = (FIXTURES / "prepare_declined_moves" / "before.py").read_text()
    found = diagnostics(before)
    assert {(d.code, d.severity) for d in found} >= {("AC002", "work"), ("AC004", "note")}
    note = next(d for d in found if d.code == "AC004")
    assert "see AC002" in note.message
    decline = next(d for d in found if d.code == "AC002")
    silenced = _with_comment(before, decline.line, "# accel-convert: ignore[AC002]")
    write(project / "train.py", silenced)
    result = invoke("train.py")
    assert result.exit_code == 0, result.stderr  # the note alone leaves no work
    assert "AC004 (note)" not in result.stderr
    verbose = invoke("-v", "--diff", "-", input=silenced.encode())
    assert verbose.exit_code == 0
    assert f"-:{note.line}:{note.col}: AC004 (note) {note.message}" in verbose.stderr.splitlines()


def test_an_unknown_severity_is_refused():
    with pytest.raises(ValueError, match="unknown severity 'info'"):
        Diagnostic("AC001", 1, 1, "x", "info")


def test_rule_pages_say_which_diagnostics_are_work_and_which_are_notes():
    from accel_convert.rules import RULES
    from accel_convert.rules.pages import render_page

    pages = {rule.code: render_page(rule) for rule in RULES}
    assert "## Severity" in pages["AC002"]
    assert "Every diagnostic of AC002 leaves work for you" in pages["AC002"]
    assert "`# accel-convert: ignore[AC002]`" in pages["AC002"]
    assert "These diagnostics of AC004 are **notes**" in pages["AC004"]
    assert "AC002 did not add `accelerator.prepare`" in pages["AC004"]
    assert "Every other diagnostic of AC004 leaves work for you" in pages["AC004"]


def test_rule_codes_known_to_the_command_line_are_the_rules():
    from accel_convert.model import RULE_CODES
    from accel_convert.rules import RULES

    assert RULE_CODES == tuple(rule.code for rule in RULES)


# --- suppression ----------------------------------------------------------------------------------------------


def test_a_comment_on_the_line_silences_the_diagnostic_and_verbose_reports_it(project):
    found = _work_line(UNPREPARED)
    text = _with_comment(UNPREPARED, found.line, "# accel-convert: ignore[AC002]")
    script = write(project / "train.py", text)
    result = invoke("train.py")
    assert result.exit_code == 0, result.stderr
    assert " AC002 " not in result.stderr
    assert result.stderr.splitlines()[-1] == "1 file converted, 0 files left unchanged, 1 diagnostic suppressed, 1 note (-v shows them)."
    assert script.read_text() == converted(text)  # silencing changes no edit
    write(script, text)
    verbose = invoke("-v", "--check", "train.py")
    assert f"train.py:{found.line}:{found.col}: AC002 {found.message} (suppressed by a" in verbose.stderr


@pytest.mark.parametrize(
    "comment, silenced",
    [
        ("# accel-convert: ignore[AC010,AC002]", True),
        ("# accel-convert: ignore[AC010, AC002]", True),
        ("#accel-convert:ignore[ac002]", True),
        ("# accel-convert: ignore[AC0]", True),  # a prefix
        ("# accel-convert: ignore[AC010]", False),  # another code
        ("# accel-convert: ignore", False),  # no codes: silences nothing
        ("# noqa", False),
    ],
)
def test_suppression_comment_forms(project, comment, silenced):
    found = _work_line(UNPREPARED)
    write(project / "train.py", _with_comment(UNPREPARED, found.line, comment))
    result = invoke("--diff", "train.py")
    assert result.exit_code == (0 if silenced else 1), result.stderr
    assert (" AC002 " in result.stderr) is not silenced


def test_a_comment_on_another_line_does_not_silence(project):
    found = _work_line(UNPREPARED)
    write(project / "train.py", _with_comment(UNPREPARED, found.line + 1, "# accel-convert: ignore[AC002]"))
    assert invoke("--diff", "train.py").exit_code == 1


def test_per_file_ignores_silence_the_codes_in_matching_files(project):
    write(project / "pyproject.toml", '[tool.accel-convert]\nper-file-ignores = {"experiments/*.py" = ["AC002"]}\n')
    write(project / "experiments" / "try.py", UNPREPARED)
    write(project / "train.py", UNPREPARED)
    result = invoke("--check", "experiments/try.py")
    assert result.exit_code == 1  # it would still change
    assert " AC002 " not in result.stderr and "1 diagnostic suppressed" in result.stderr
    assert invoke("--diff", "experiments/try.py").exit_code == 0
    verbose = invoke("-v", "--diff", "experiments/try.py")
    assert "(suppressed by per-file-ignores 'experiments/*.py')" in verbose.stderr
    assert invoke("--diff", "train.py").exit_code == 1  # not matched
    assert invoke("--diff", "--stdin-filename", "experiments/x.py", "-", input=UNPREPARED.encode()).exit_code == 0


def test_per_file_ignores_with_a_bare_name_match_at_any_depth(project):
    write(project / "pyproject.toml", '[tool.accel-convert]\nper-file-ignores = {"scratch.py" = ["AC0"]}\n')
    write(project / "a" / "b" / "scratch.py", UNPREPARED)
    assert invoke("--diff", "a/b/scratch.py").exit_code == 0


@pytest.mark.parametrize(
    "value, message",
    [
        ('per-file-ignores = ["x.py"]', "per-file-ignores: expected a table of patterns and rule codes"),
        ('per-file-ignores = {"x.py" = "AC002"}', "per-file-ignores: 'x.py': expected a list of rule codes"),
        ('per-file-ignores = {"x.py" = ["AC999"]}', "per-file-ignores: 'x.py': 'AC999' is not a rule code"),
    ],
)
def test_bad_per_file_ignores_are_configuration_errors(project, value, message):
    write(project / "pyproject.toml", f"[tool.accel-convert]\n{value}\n")
    script = write(project / "train.py", UNPREPARED)
    result = invoke("train.py")
    assert result.exit_code == 2
    assert message in result.stderr and "pyproject.toml" in result.stderr
    assert script.read_text() == UNPREPARED


# --- the command that fixes a failing --check -----------------------------------------------------------------


def test_a_failing_check_names_the_command_that_converts(project):
    write(project / "train.py", TRAIN)
    write(project / "my script.py", TRAIN)
    write(project / "plain.py", PLAIN)
    result = invoke("--check", "--target", "accelerate", "train.py", "my script.py", "plain.py")
    assert result.exit_code == 1
    command = "accel-convert --target accelerate train.py 'my script.py'"
    assert result.stderr.splitlines()[-1] == f"To convert them (then review and stage the result), run: {command}"
    assert invoke("--target", "accelerate", "train.py", "my script.py").exit_code == 0  # the command works
    assert invoke("--check", "--target", "accelerate", "train.py", "my script.py").exit_code == 0


def test_the_fix_command_of_many_files_names_the_paths_given(project):
    for index in range(12):
        write(project / "src" / f"train_{index}.py", TRAIN)
    result = invoke("--check", "--ignore", "AC011", "src")
    assert result.stderr.splitlines()[-1].endswith("run: accel-convert --ignore AC011 src")


def test_a_passing_check_prints_no_command(project):
    write(project / "plain.py", PLAIN)
    result = invoke("--check", "plain.py")
    assert result.exit_code == 0 and "run:" not in result.stderr


# --- rule codes -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, bad",
    [
        (["--select", "AC001,AC099"], "--select: 'AC099' is not a rule code"),
        (["--ignore", "AC5"], "--ignore: 'AC5' is not a rule code"),
        (["--ignore", "AC003,XY1,AC7"], "--ignore: 'AC7', 'XY1' are not rule codes"),
        (["--explain", "AC999"], "no rule 'AC999'"),
    ],
)
def test_unknown_rule_codes_are_usage_errors_listing_the_valid_codes(project, args, bad):
    script = write(project / "train.py", TRAIN)
    result = invoke(*args, "train.py")
    assert result.exit_code == 2
    text = " ".join(result.stderr.split())
    assert bad in text
    assert "AC001, AC002, AC003, AC004, AC010" in text and "AC021" in text
    assert script.read_text() == TRAIN


def test_unknown_codes_in_the_configuration_name_the_file(project):
    write(project / "pyproject.toml", '[tool.accel-convert]\nignore = ["AC003", "AC300"]\n')
    write(project / "train.py", TRAIN)
    result = invoke("train.py")
    assert result.exit_code == 2
    assert "pyproject.toml: [tool.accel-convert] ignore: 'AC300' is not a rule code; the rules are AC001" in result.stderr


@pytest.mark.parametrize("codes", ["AC0", "AC00", "AC", "AC001,AC01"])
def test_prefixes_that_match_a_code_are_valid(project, codes):
    write(project / "train.py", TRAIN)
    result = invoke("--diff", "--select", codes, "train.py")
    if "AC002".startswith(tuple(codes.split(","))):
        assert result.exit_code == 0, result.stderr
    else:  # accepted, but nothing is prepared: the decision stage keeps what prepare would move, and says so
        assert result.exit_code == 1 and "AC002 is not selected" in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--select", "AC004"], "--select AC004 leaves out AC001: AC001 (setup) creates the accelerator"),
        (["--select", "AC01"], "--select AC01 leaves out AC001"),
        (["--ignore", "AC001"], "--ignore AC001 turns off AC001"),
        (["--ignore", "AC0"], "--ignore AC0 turns off AC001"),
        (["--select", "AC001,AC004", "--ignore", "AC00"], "--ignore AC00 turns off AC001"),
    ],
)
def test_a_selection_without_ac001_is_a_usage_error(project, args, message):
    script = write(project / "train.py", TRAIN)
    result = invoke(*args, "train.py")
    assert result.exit_code == 2
    text = " ".join(result.stderr.split())
    assert message in text and "nothing would be converted" in text
    assert script.read_text() == TRAIN


def test_the_selection_error_says_what_to_select(project):
    write(project / "train.py", TRAIN)
    assert "select it too (--select AC001,AC004)" in " ".join(invoke("--select", "AC004", "train.py").stderr.split())
    accepted = invoke("--select", "AC001,AC004", "train.py")  # a valid selection; without AC002 it leaves work
    assert accepted.exit_code == 1 and "AC002 is not selected" in accepted.stderr


def test_a_configured_selection_without_ac001_names_the_file(project):
    write(project / "pyproject.toml", '[tool.accel-convert]\nselect = ["AC004"]\n')
    write(project / "train.py", TRAIN)
    result = invoke("train.py")
    assert result.exit_code == 2
    assert 'pyproject.toml: [tool.accel-convert] select leaves out AC001' in result.stderr
    assert 'select it too (select = ["AC001", "AC004"])' in result.stderr
    assert invoke("--select", "AC001,AC002,AC004", "train.py").exit_code == 0  # the command line wins


def test_a_suppression_comment_in_a_crlf_file_is_found_on_its_line(project):
    found = _work_line(UNPREPARED)
    text = _with_comment(UNPREPARED, found.line, "# accel-convert: ignore[AC002]").replace("\n", "\r\n")
    write(project / "train.py", text.encode())
    assert invoke("--diff", "train.py").exit_code == 0
