"""`python -m accel ...` runs the `accel` command line."""

from accel.cli import main

main(prog_name="accel")
