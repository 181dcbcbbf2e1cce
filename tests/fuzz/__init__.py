"""Fuzz targets (atheris) for every parser of outside input; tests/test_fuzz.py runs each a fixed number
of times. Run one longer by hand: ``python -m tests.fuzz.run NAME -runs=100000``."""
