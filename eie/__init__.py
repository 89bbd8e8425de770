"""The `eie` command line: thin dispatch to the sw / hw / sim packages."""
