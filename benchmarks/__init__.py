"""Benchmarks: each script runs as ``python benchmarks/<name>.py --help`` and imports the
others (and their shared modules, e.g. ``step_setup``) as ``benchmarks.<name>``."""
