"""Autotask PSA -> ilert alerting bridge for Flask applications.

Start at ``extension.AutotaskIlert``; docs/design.md follows a callout through the modules.
"""

import logging

from .bridge import Bridge, get_bridge
from .errors import AutotaskIlertError, ConfigurationError, InvalidPayload, StoreUnavailable
from .extension import AutotaskIlert
from .version import __version__

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
