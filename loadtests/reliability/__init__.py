"""Reliability scenarios of the online service and the nearline job (issue 13): fuzzing, faults, overload, soak.

One module per family (fuzz, faults, load, replica); `python -m loadtests.reliability` runs them all and writes
reports/reliability.md/.json; tests/reliability/ runs the same scenario functions, shorter, and asserts verdicts.
"""
