"""Autotask PSA -> ilert alerting bridge for Flask applications."""

__version__ = "0.1.0"
