"""`python -m firebreak`: the `firebreak` command, for an environment without its entry point on PATH."""

from firebreak.cli import main

main()
