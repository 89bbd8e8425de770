"""`eie` subcommands implemented in sim (see eie/cli.py)."""
