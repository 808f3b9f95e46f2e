"""The ``trainlab`` command line. Each subcommand is a module, imported only when used."""
