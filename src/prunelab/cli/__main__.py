"""`python -m prunelab.cli` runs the command line."""

from prunelab.cli import main

main()
