"""Reliability and security: faults injected into real processes, and the report's figures."""
