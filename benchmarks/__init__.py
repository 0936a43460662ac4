"""Benchmarks: each module runs as a script (``python benchmarks/<name>.py --help``) and imports
the others as ``benchmarks.<name>``."""
