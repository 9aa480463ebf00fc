"""The ``accel-convert`` command line: options and configuration in, files converted, a report out.

Exit codes follow black and ruff: 0 done (or nothing to do); 1 something would change (``--check``), or a
diagnostic leaves work for the user (in every mode, unless ``--exit-zero``); 123 a file could not be converted
(the others still are); 2 a usage or configuration error.
"""

from __future__ import annotations

import os
import sys
from typing import NamedTuple

import click

from accel_convert.model import RULE_CODES, SETUP_CODE, TARGETS, Options
from accel_convert.shell.config import (
    Config,
    ConfigError,
    common_base,
    find_config,
    load_config,
    parse_codes,
)
from accel_convert.shell.diffing import colorize
from accel_convert.shell.grouping import group_files, project_root, suggestion
from accel_convert.shell.runner import (
    FileReport,
    available_cores,
    convert_bytes,
    convert_files,
)
from accel_convert.shell.suppress import FileIgnores
from accel_convert.shell.walk import DEFAULT_EXCLUDE, Excluder, collect

EXIT_WOULD_CHANGE = 1
EXIT_USAGE = 2
EXIT_ERROR = 123
PROGRESS_MIN_FILES = 8
FIX_COMMAND_MAX_FILES = 10  # more files than this: the fix command names the paths given instead
NOTEBOOKS_NAMED = 5  # notebooks named in the summary line (-v lists all)


class ConfigurationError(click.ClickException):
    """A bad configuration file or value: reported like a usage error (exit 2)."""

    exit_code = EXIT_USAGE


class Settings(NamedTuple):
    """Everything a run needs, merged from the command line, the configuration file and the defaults."""

    options: Options
    excluder: Excluder
    force_exclude: bool
    jobs: int
    config_path: str | None
    file_ignores: FileIgnores
    conversion_args: tuple[str, ...]  # the command-line options that shape the conversion, for the fix command


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _load_config(config_path: str | None, paths: list[str]) -> Config:
    try:
        if config_path:
            return load_config(config_path)
        found = find_config(common_base(paths))
        return load_config(found) if found else Config(root=os.getcwd())
    except ConfigError as exc:
        raise ConfigurationError(str(exc)) from None


def _settings(
    config_path,
    paths,
    target,
    select,
    ignore,
    exclude,
    extend_exclude,
    force_exclude,
    jobs,
) -> Settings:
    config = _load_config(config_path, paths)
    try:
        select_codes = parse_codes(select, "--select") if select is not None else config.select
        ignore_codes = parse_codes(ignore, "--ignore") if ignore is not None else config.ignore
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    options = Options(
        target=target or config.target or "accel",
        select=select_codes,
        ignore=ignore_codes or frozenset(),
    )
    in_config = (
        f"{config.path}: [tool.accel-convert] "
        if config.path and os.path.basename(config.path) == "pyproject.toml"
        else f"{config.path}: "
    )
    _check_selection(
        options,
        f"--select {select}" if select is not None else f"{in_config}select",
        f"--ignore {ignore}" if ignore is not None else f"{in_config}ignore",
        select is not None,
        ignore is not None,
    )
    patterns = exclude or config.exclude
    patterns = (
        *(DEFAULT_EXCLUDE if patterns is None else patterns),
        *config.extend_exclude,
        *extend_exclude,
    )
    conversion_args = [
        *(["--config", config_path] if config_path else []),
        *(["--target", target] if target else []),
        *(["--select", select] if select is not None else []),
        *(["--ignore", ignore] if ignore is not None else []),
        *(arg for pattern in exclude for arg in ("--exclude", pattern)),
        *(arg for pattern in extend_exclude for arg in ("--extend-exclude", pattern)),
        *({True: ["--force-exclude"], False: ["--no-force-exclude"]}.get(force_exclude, [])),
    ]
    return Settings(
        options=options,
        excluder=Excluder(patterns, config.root),
        force_exclude=force_exclude if force_exclude is not None else bool(config.force_exclude),
        jobs=jobs or config.jobs or available_cores(),
        config_path=config.path,
        file_ignores=FileIgnores(config.per_file_ignores, config.root),
        conversion_args=tuple(conversion_args),
    )


def _check_selection(
    options: Options,
    select_source: str,
    ignore_source: str,
    select_given: bool,
    ignore_given: bool,
):
    """A selection without AC001 converts nothing (every other rule names the accelerator AC001 creates): a usage
    error (exit 2) that says so, rather than a run that silently changes nothing."""
    if options.enabled(SETUP_CODE):
        return
    why = f"{SETUP_CODE} (setup) creates the accelerator that every other rule uses, so nothing would be converted"
    if any(SETUP_CODE.startswith(prefix) for prefix in options.ignore):
        message, given = (
            f"{ignore_source} turns off {SETUP_CODE}: {why}; leave {SETUP_CODE} out of the ignored codes",
            ignore_given,
        )
    else:
        wanted = [SETUP_CODE, *sorted(options.select or ())]
        listed = ", ".join(f'"{code}"' for code in wanted)
        example = f"--select {','.join(wanted)}" if select_given else f"select = [{listed}]"
        message, given = (
            f"{select_source} leaves out {SETUP_CODE}: {why}; select it too ({example})",
            select_given,
        )
    raise click.UsageError(message) if given else ConfigurationError(message)


def _shell_quote(arg: str) -> str:
    """``shlex.quote`` without importing shlex (a failing ``--check`` in a pre-commit hook prints a command)."""
    import re

    if arg and re.fullmatch(r"[\w@%+=:,./-]+", arg, re.ASCII):
        return arg
    return "'" + arg.replace("'", "'\"'\"'") + "'"


class Reporter:
    """Prints what happened to each file and the summary; counts the outcomes."""

    def __init__(self, dry_run: bool, quiet: bool, verbose: bool, color: bool):
        self.dry_run, self.quiet, self.verbose, self.color = (
            dry_run,
            quiet,
            verbose,
            color,
        )
        self.changed = self.unchanged = self.failed = 0
        self.work = self.notes = self.suppressed = 0  # diagnostics: leaving work, notes, silenced
        self.changed_paths: list[str] = []
        self.notebooks: list[str] = []
        self.progress = None

    def _clear_progress(self) -> None:
        if self.progress is not None:
            click.echo("\r\033[K", nl=False, err=True)  # the bar is drawn again on its next update

    def message(self, text: str) -> None:
        self._clear_progress()
        click.echo(text, err=True)

    def file(self, report: FileReport) -> None:
        if report.error:
            self.failed += 1
            self.message(report.error)
            return
        self.suppressed += len(report.suppressed)
        shown = [(diagnostic, None) for diagnostic in report.diagnostics] + list(report.suppressed)
        for diagnostic, why in sorted(shown, key=lambda item: (item[0].line, item[0].col, item[0].code)):
            text = diagnostic.format(report.path)
            if why is not None:
                if self.verbose:
                    self.message(f"{text} (suppressed by {why})")
            elif diagnostic.is_note:
                self.notes += 1
                if self.verbose:
                    self.message(text.replace(f" {diagnostic.code} ", f" {diagnostic.code} (note) ", 1))
            else:
                self.work += 1
                if not self.quiet:
                    self.message(text)
        if report.diff:
            self._clear_progress()
            diff = colorize(report.diff) if self.color else report.diff
            click.echo(diff.encode(report.diff_encoding, errors="replace"), nl=False)
        if not report.changed:
            self.unchanged += 1
            if self.verbose:
                self.message(f"{report.path}: unchanged")
            return
        self.changed += 1
        self.changed_paths.append(report.path)
        if not self.quiet:
            count = _plural(len(report.changes), "change")
            self.message(f"would convert {report.path}: {count}" if self.dry_run else f"{report.path}: {count}")
        if self.verbose:
            for change in report.changes:
                self.message(f"  {report.path}:{change.line}: {change.code} {change.message}")

    def found_notebooks(self, notebooks: list[str]) -> None:
        self.notebooks = list(notebooks)
        if self.verbose:
            for notebook in notebooks:
                self.message(f"{notebook}: skipped: a Jupyter notebook (export it as a script to convert it)")

    def summary(self) -> None:
        if self.quiet:
            return
        if self.dry_run:
            parts = [
                f"{_plural(self.changed, 'file')} would be converted",
                f"{_plural(self.unchanged, 'file')} would be left unchanged",
            ]
        else:
            parts = [
                f"{_plural(self.changed, 'file')} converted",
                f"{_plural(self.unchanged, 'file')} left unchanged",
            ]
        if self.failed:
            parts.append(f"{_plural(self.failed, 'file')} failed to convert")
        if self.work:
            parts.append(f"{_plural(self.work, 'diagnostic')} left to fix")
        if self.suppressed:
            parts.append(f"{_plural(self.suppressed, 'diagnostic')} suppressed")
        if self.notes:
            parts.append(_plural(self.notes, "note") + ("" if self.verbose else " (-v shows them)"))
        if self.notebooks:
            parts.append(f"{_plural(len(self.notebooks), 'notebook')} skipped")
        self.message(", ".join(parts) + ".")

    def notebook_summary(self) -> None:
        """One line naming the notebooks a directory walk skipped (all of them with -v, listed earlier)."""
        if self.quiet or not self.notebooks:
            return
        named = ", ".join(self.notebooks[:NOTEBOOKS_NAMED])
        if len(self.notebooks) > NOTEBOOKS_NAMED:
            named += f" and {len(self.notebooks) - NOTEBOOKS_NAMED} more" + ("" if self.verbose else " (-v lists them)")
        self.message(
            f"Jupyter notebooks are not converted: {named} (export one as a script, "
            "`jupyter nbconvert --to script NOTEBOOK`, and convert the .py file)"
        )

    def advice(self, settings: Settings, paths: list[str], check: bool, exit_zero: bool) -> None:
        """What to run or do to make the failing command pass (for CI and the pre-commit hook)."""
        if self.quiet:
            return
        if check and self.changed_paths:
            named = self.changed_paths if len(self.changed_paths) <= FIX_COMMAND_MAX_FILES else paths
            command = " ".join(_shell_quote(arg) for arg in ["accel-convert", *settings.conversion_args, *named])
            they = "it" if len(self.changed_paths) == 1 else "them"
            self.message(f"To convert {they} (then review and stage the result), run: {command}")
        if self.work and not exit_zero:
            one = self.work == 1
            self.message(
                f"{_plural(self.work, 'diagnostic')} {'leaves' if one else 'leave'} work for you (exit status 1): "
                f"change what {'it names' if one else 'each names'}, or silence {'it' if one else 'one'} with "
                "`# accel-convert: ignore[CODE]` on its line (or per-file-ignores in [tool.accel-convert]); "
                "--exit-zero keeps the exit status 0"
            )


def _convert_stdin(settings: Settings, name: str, check: bool, diff: bool, reporter: Reporter) -> None:
    data = sys.stdin.buffer.read()
    if settings.force_exclude and name != "-" and settings.excluder.excluded(name):
        report = FileReport(name)
    else:
        ignores = settings.file_ignores.for_path(name) if name != "-" else ()
        report = convert_bytes(data, name, settings.options, diff, ignores)
    reporter.file(report)
    if not (check or diff or report.error):
        stdout = sys.stdout.buffer
        stdout.write(report.output if report.changed else data)
        stdout.flush()


def _convert_paths(settings: Settings, paths: list[str], check: bool, diff: bool, reporter: Reporter) -> None:
    collected = collect(paths, settings.excluder, settings.force_exclude)
    files = collected.files
    reporter.found_notebooks(collected.notebooks)
    if not files:
        if not reporter.quiet:
            reporter.message("No Python files to convert.")
        return
    root = project_root(paths)
    groups, refused = group_files(files, root) if len(files) > 1 else ([], {})
    reports = convert_files(
        files,
        settings.options,
        write=not (check or diff),
        diff=diff,
        jobs=settings.jobs,
        explicit=collected.explicit,
        file_ignores=settings.file_ignores.for_path if settings.file_ignores else None,
        groups=groups,
        root=root,
    )
    grouped = {path for group in groups for path in group}
    alone = [path for path in collected.explicit if path not in grouped and path not in refused]
    notes = {**refused, **{path: note for path in alone if (note := suggestion(path)) is not None}}
    if notes:
        reports = (_with_note(report, notes.get(report.path)) for report in reports)
    if len(files) < PROGRESS_MIN_FILES or reporter.quiet or not sys.stderr.isatty():
        for report in reports:
            reporter.file(report)
        return
    with click.progressbar(length=len(files), label="Converting", file=sys.stderr) as bar:
        reporter.progress = bar
        for report in reports:
            reporter.file(report)
            bar.update(1)
    reporter.progress = None


def _with_note(report: FileReport, note) -> FileReport:
    """``report`` with the diagnostic of a project group that could not be formed added, when there is one."""
    if note is None or report.error:
        return report
    return report._replace(diagnostics=(note, *report.diagnostics))


def _explain(ctx: click.Context, param: click.Parameter, code: str | None) -> None:
    """``--explain AC010``: print the rule's documentation page and exit."""
    if code is None or ctx.resilient_parsing:
        return
    from accel_convert.rules import RULES
    from accel_convert.rules.pages import render_page

    rule = next((rule for rule in RULES if rule.code == code.strip().upper()), None)
    if rule is None:
        raise click.BadParameter(
            f"no rule {code!r}; the rules are {', '.join(RULE_CODES)}",
            ctx=ctx,
            param=param,
        )
    page = "".join(line for line in render_page(rule).splitlines(keepends=True) if not line.startswith("<!--"))
    click.echo(page, nl=False)
    ctx.exit(0)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("paths", nargs=-1, type=click.Path(exists=True, allow_dash=True))
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if any file would change.")
@click.option(
    "--exit-zero",
    is_flag=True,
    help="Exit 0 even when diagnostics leave work for you (--check still exits 1 when a file would change).",
)
@click.option(
    "--diff",
    is_flag=True,
    help="Write nothing; print a unified diff of what would change.",
)
@click.option(
    "--target",
    type=click.Choice(TARGETS),
    help="Runtime the converted code imports.  [default: accel]",
)
@click.option(
    "--select",
    metavar="CODES",
    help="Only apply these rules (comma-separated codes or prefixes).",
)
@click.option(
    "--ignore",
    metavar="CODES",
    help="Do not apply these rules (comma-separated codes or prefixes).",
)
@click.option(
    "--exclude",
    multiple=True,
    metavar="PATTERN",
    help="Skip paths matching this .gitignore-style pattern (repeatable; replaces the default list).",
)
@click.option(
    "--extend-exclude",
    multiple=True,
    metavar="PATTERN",
    help="Like --exclude, but add to the default and configured patterns.",
)
@click.option(
    "--force-exclude/--no-force-exclude",
    default=None,
    help="Apply the exclude patterns to files named on the command line too.",
)
@click.option(
    "--stdin-filename",
    metavar="PATH",
    help="With '-': the file's name in messages, diffs and exclude matching.",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    help="Files converted in parallel.  [default: all cores]",
)
@click.option(
    "--color/--no-color",
    default=None,
    help="Colour the diff.  [default: on a terminal, unless NO_COLOR is set]",
)
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="Print only errors (and the diff when asked for).",
)
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Also list every change with its rule code and line, notes, suppressed diagnostics and skipped notebooks.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    help="Read settings from this pyproject.toml or TOML file instead of the nearest pyproject.toml.",
)
@click.option(
    "--explain",
    metavar="CODE",
    callback=_explain,
    expose_value=False,
    is_eager=True,
    help="Print the documentation of rule CODE (e.g. AC010) and exit.",
)
@click.version_option(package_name="accel-convert", prog_name="accel-convert")
def main(
    paths,
    check,
    exit_zero,
    diff,
    target,
    select,
    ignore,
    exclude,
    extend_exclude,
    force_exclude,
    stdin_filename,
    jobs,
    color,
    quiet,
    verbose,
    config_path,
):
    """Convert single-device PyTorch training scripts to run on any device and any number of processes.

    PATH may be files, directories (their *.py files are converted) or '-' for stdin to stdout.
    Files are rewritten in place unless --check or --diff is given.
    """
    if quiet and verbose:
        raise click.UsageError("--quiet and --verbose cannot be used together")
    reading_stdin = "-" in paths
    if reading_stdin and len(paths) > 1:
        raise click.UsageError("'-' (read from stdin) cannot be combined with other paths")
    if stdin_filename and not reading_stdin:
        raise click.UsageError("--stdin-filename only applies when reading from '-'")
    paths = list(paths)
    settings = _settings(
        config_path,
        [stdin_filename] if stdin_filename else [p for p in paths if p != "-"],
        target,
        select,
        ignore,
        exclude,
        extend_exclude,
        force_exclude,
        jobs,
    )
    if color is None:
        color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    reporter = Reporter(dry_run=check or diff, quiet=quiet, verbose=verbose, color=color)
    if verbose and settings.config_path:
        reporter.message(f"using configuration from {settings.config_path}")
    if reading_stdin:
        _convert_stdin(settings, stdin_filename or "-", check, diff, reporter)
    else:
        _convert_paths(settings, paths, check, diff, reporter)
    if reporter.changed + reporter.unchanged + reporter.failed:
        reporter.summary()
    reporter.notebook_summary()
    reporter.advice(settings, paths, check and not reading_stdin, exit_zero)
    if reporter.failed:
        sys.exit(EXIT_ERROR)
    if (check and reporter.changed) or (reporter.work and not exit_zero):
        sys.exit(EXIT_WOULD_CHANGE)
