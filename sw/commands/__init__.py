"""`eie` subcommands implemented in sw (see eie/cli.py)."""
