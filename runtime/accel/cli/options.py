"""Click options generated from the settings table, shared by `accel launch` and `accel config`."""

from __future__ import annotations

import click

from . import values as v
from .settings import SETTINGS, Setting


class SettingType(click.ParamType):
    """Parses a flag's value with the same parser the config file uses."""

    def __init__(self, setting: Setting):
        self.setting = setting
        self.name = setting.name

    def convert(self, value, param, ctx):
        try:
            return self.setting.parse(value)
        except v.InvalidValue as error:
            self.fail(f"{value!r} is not allowed; expected {error}", param, ctx)


def setting_options(command):
    """Add one option per setting; an option the user did not give is None (so the config file can fill it)."""
    for setting in reversed(SETTINGS):
        if setting.switch:
            decl = f"{setting.flag}/--no-{setting.flag[2:]}"
            command = click.option(decl, setting.name, default=None, help=setting.help)(command)
        else:
            command = click.option(setting.flag, setting.name, type=SettingType(setting), default=None,
                                   metavar=setting.metavar, help=setting.help)(command)
    return command


def given(params: dict) -> dict:
    """The setting values the user gave on the command line."""
    names = {s.name for s in SETTINGS}
    return {name: value for name, value in params.items() if name in names and value is not None}


def underscores_as_dashes(token: str) -> str:
    """Lets `--num_processes` mean `--num-processes` (click applies this to option names only)."""
    return token.replace("_", "-")
