"""Autotask PSA -> ilert alerting bridge for Flask applications.

Start at ``extension.AutotaskIlert``; docs/design.md follows a callout through the modules.
"""

__version__ = "0.1.0"

import logging

from .errors import AutotaskIlertError, ConfigurationError, InvalidPayload, StoreUnavailable
from .extension import AutotaskIlert, Bridge, get_bridge

# Where log lines go is the host app's choice: the library only ever adds this.
logging.getLogger(__name__).addHandler(logging.NullHandler())

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
