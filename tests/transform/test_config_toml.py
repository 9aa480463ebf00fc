"""[tool.accel-convert] settings: discovery, values, and errors that name the file, key and what is allowed."""

import os

import pytest

from accel_convert.shell.config import Config, ConfigError, common_base, find_config, load_config, parse_codes


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_all_keys_are_read(tmp_path):
    path = _write(
        tmp_path / "pyproject.toml",
        """
[project]
name = "x"

[tool.accel-convert]
target = "accelerate"
select = ["AC0", "AC01"]
ignore = ["AC002"]
exclude = ["legacy/"]
extend-exclude = ["*_old.py"]
force-exclude = true
jobs = 3
""",
    )
    assert load_config(str(path)) == Config(
        path=str(path),
        root=str(tmp_path),
        target="accelerate",
        select=frozenset({"AC0", "AC01"}),
        ignore=frozenset({"AC002"}),
        exclude=("legacy/",),
        extend_exclude=("*_old.py",),
        force_exclude=True,
        jobs=3,
    )


def test_nearest_pyproject_with_the_table_is_found_searching_upward(tmp_path):
    outer = _write(tmp_path / "pyproject.toml", "[tool.accel-convert]\njobs = 1\n")
    _write(tmp_path / "a" / "pyproject.toml", "[project]\nname = 'no table here'\n")
    (tmp_path / "a" / "b").mkdir()
    assert find_config(str(tmp_path / "a" / "b")) == str(outer)
    inner = _write(tmp_path / "a" / "pyproject.toml", "[tool.accel-convert]\n")
    assert find_config(str(tmp_path / "a" / "b")) == str(inner)


def test_no_config_anywhere(tmp_path):
    _write(tmp_path / "pyproject.toml", "[tool.black]\n")
    assert find_config(str(tmp_path)) is None


def test_common_base_of_files_and_folders(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "c").mkdir()
    files = [str(tmp_path / "a" / "b" / "x.py"), str(tmp_path / "a" / "c")]
    assert common_base(files) == str(tmp_path / "a")
    assert common_base([]) == os.getcwd()


@pytest.mark.parametrize(
    "body, message",
    [
        (
            "colour = true",
            "unknown key 'colour' (allowed: target, select, ignore, exclude, extend-exclude, "
            "force-exclude, jobs, per-file-ignores)",
        ),
        ('target = "jax"', "[tool.accel-convert] target: expected one of accel, accelerate, got 'jax'"),
        ('select = "AC001"', "[tool.accel-convert] select: expected a list of rule codes"),
        ('ignore = ["ac001"]', "[tool.accel-convert] ignore: 'ac001' is not a rule code"),
        ("exclude = 'build'", "[tool.accel-convert] exclude: expected a list of glob patterns"),
        ("extend-exclude = [1]", "[tool.accel-convert] extend-exclude: expected a string, got 1"),
        ('force-exclude = "yes"', "[tool.accel-convert] force-exclude: expected true or false, got 'yes'"),
        ("jobs = 0", "[tool.accel-convert] jobs: expected a positive integer, got 0"),
        ("jobs = true", "[tool.accel-convert] jobs: expected a positive integer, got True"),
    ],
)
def test_bad_values_name_the_file_key_and_what_is_allowed(tmp_path, body, message):
    path = _write(tmp_path / "pyproject.toml", f"[tool.accel-convert]\n{body}\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_invalid_toml_names_the_file_and_line(tmp_path):
    _write(tmp_path / "pyproject.toml", "[tool.accel-convert]\njobs = \n")
    with pytest.raises(ConfigError, match=r"pyproject.toml: invalid TOML: .*line 2"):
        find_config(str(tmp_path))


def test_table_that_is_not_a_table(tmp_path):
    path = _write(tmp_path / "pyproject.toml", '[tool]\naccel-convert = "on"\n')
    with pytest.raises(ConfigError, match="tool.accel-convert must be a table"):
        load_config(str(path))


def test_explicit_pyproject_without_the_table_is_an_error(tmp_path):
    path = _write(tmp_path / "pyproject.toml", "[project]\nname = 'x'\n")
    with pytest.raises(ConfigError, match=r"no \[tool.accel-convert\] table"):
        load_config(str(path))


def test_other_toml_files_hold_the_keys_at_the_top_level(tmp_path):
    path = _write(tmp_path / "conf" / "accel-convert.toml", 'target = "accelerate"\n')
    config = load_config(str(path))
    assert config.target == "accelerate"
    assert config.root == str(tmp_path / "conf")
    bad = _write(tmp_path / "bad.toml", "[tool.accel-convert]\n")
    with pytest.raises(ConfigError, match=r"bad.toml: unknown key 'tool' \(allowed"):
        load_config(str(bad))


def test_parse_codes_splits_commas_and_rejects_non_codes():
    assert parse_codes(" AC001, AC01 ,,", "--select") == frozenset({"AC001", "AC01"})
    with pytest.raises(ConfigError, match=r"--select: 'AC-1' is not a rule code; the rules are AC001, AC002, "):
        parse_codes("AC-1", "--select")


def test_per_file_ignores_are_read_as_patterns_and_codes(tmp_path):
    path = _write(
        tmp_path / "pyproject.toml",
        '[tool.accel-convert]\nper-file-ignores = {"tests/**" = ["AC010", "AC01"], "scratch.py" = []}\n',
    )
    assert load_config(str(path)).per_file_ignores == (
        ("tests/**", frozenset({"AC010", "AC01"})),
        ("scratch.py", frozenset()),
    )


@pytest.mark.parametrize("codes", ['["AC999"]', '["AC0O1"]', '["XY"]'])
def test_unknown_codes_in_the_configuration_are_errors_listing_the_rules(tmp_path, codes):
    path = _write(tmp_path / "pyproject.toml", f"[tool.accel-convert]\nselect = {codes}\n")
    with pytest.raises(ConfigError, match=r"select: '.*' is not a rule code; the rules are AC001, AC002, .*AC021"):
        load_config(str(path))
