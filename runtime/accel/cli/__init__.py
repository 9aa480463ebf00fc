"""The `accel` command line: `accel launch`, `accel config`, `accel env`."""

import click

from .config_cmd import config
from .env_cmd import env
from .launch import launch


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="accel-convert", prog_name="accel")
def main():
    """Run converted training scripts on any number of processes and machines."""


main.add_command(launch)
main.add_command(config)
main.add_command(env)
