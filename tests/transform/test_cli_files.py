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
        b"# -*- coding: latin-1 -*-\n# caf\xe9\n" + TRAIN.encode().replace(b"model = ", b"mod\xe8le = model = "),
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
