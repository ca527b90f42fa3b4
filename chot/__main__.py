"""`python -m chot` runs the `chot` command (the demo starts its parts this way)."""

from chot.cli import main

main()
