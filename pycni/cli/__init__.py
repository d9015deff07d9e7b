"""The ``pycni`` command. Subcommands import what they need when they run."""
