"""Autotask PSA -> ilert alerting bridge for Flask applications.

Start at ``extension.AutotaskIlert``; docs/design.md follows a callout through the modules.
"""

__version__ = "0.1.0"

from .errors import AutotaskIlertError, ConfigurationError, InvalidPayload, StoreUnavailable
from .extension import AutotaskIlert, Bridge, get_bridge

__all__ = [
    "AutotaskIlert",
    "AutotaskIlertError",
    "Bridge",
    "ConfigurationError",
    "InvalidPayload",
    "StoreUnavailable",
    "__version__",
    "get_bridge",
]
