"""`python -m csload`: the same as the `csload` command."""

from csload.cli import main

main()
