"""`python -m edgeclust` runs the CLI."""

from edgeclust.cli.main import main

main()
