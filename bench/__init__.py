"""The benchmark of issue 6: the real deployment on loopback, measured side by side.

Run it with ``make bench`` (or ``python -m bench``); ``python -m bench --smoke``
runs every measurement at a tiny scale in a few seconds, which the tests do so
the benchmark cannot rot. docs/performance.md is written from a full run.
"""
