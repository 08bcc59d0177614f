"""`python -m prunelab` runs the command line."""

from prunelab.cli import main

main()
