"""``python -m accel_convert``: the same as the ``accel-convert`` command."""

from accel_convert.shell.cli import main

if __name__ == "__main__":
    main(prog_name="accel-convert")
