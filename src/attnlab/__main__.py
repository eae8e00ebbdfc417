"""`python -m attnlab` is the `attnlab` command."""

from attnlab.cli import main

main()
