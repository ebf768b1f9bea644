"""The ``rfm-stream`` command line: one module per group of subcommands."""
