"""`eie` subcommands implemented in hw (see eie/cli.py)."""
