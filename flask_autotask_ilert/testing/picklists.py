"""Default Autotask picklists, as a fresh tenant shows them.

Kept as code rather than read from the test data so the simulator works from an
installed package. Tenants rename labels and add values, so the simulator copies
these into its state where tests can change them; the bridge must look values up
by label at run time and never rely on the numbers here.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any, TypedDict


class PicklistValue(TypedDict):
    """One entry of ``picklistValues`` in an ``entityInformation/fields`` answer."""

    value: str
    label: str
    isActive: bool
    isSystem: bool
    isDefaultValue: bool
    sortOrder: int


def _entry(
    value: int, label: str, order: int, *, system: bool = True, default: bool = False
) -> PicklistValue:
    return {
        "value": str(value),
        "label": label,
        "isActive": True,
        "isSystem": system,
        "isDefaultValue": default,
        "sortOrder": order,
    }


TICKET_STATUS: tuple[PicklistValue, ...] = (
    _entry(1, "New", 1, default=True),
    _entry(5, "Complete", 2),
    _entry(7, "Waiting Customer", 3),
    _entry(8, "In Progress", 4),
    _entry(9, "Waiting Materials", 5),
    _entry(10, "Scheduled", 6),
    _entry(11, "Escalate", 7),
    _entry(12, "Waiting Vendor", 8),
    _entry(13, "Waiting Approval", 9),
    _entry(15, "Waiting Dispatch", 10, system=False),
    _entry(16, "Approved", 11, system=False),
    _entry(17, "Denied", 12, system=False),
    _entry(19, "Customer Note Added", 13, system=False),
)

# Sort order puts Critical first although its value is the largest: one more reason
# to map priorities by label.
TICKET_PRIORITY: tuple[PicklistValue, ...] = (
    _entry(1, "High", 2),
    _entry(2, "Medium", 3, default=True),
    _entry(3, "Low", 4),
    _entry(4, "Critical", 1),
)

NOTE_TYPE: tuple[PicklistValue, ...] = (
    _entry(1, "General", 1, default=True),
    _entry(2, "Phone Call", 2),
    _entry(3, "Email", 3),
    _entry(13, "Workflow Rule Action", 4),
)

NOTE_PUBLISH: tuple[PicklistValue, ...] = (
    _entry(1, "All Autotask Users", 1, default=True),
    _entry(2, "Internal Only", 2),
)

# The ticket picklists rules route on (queue, classification). Values are a fresh tenant's
# look-alikes; as with the others, the bridge must find them by label.
TICKET_QUEUE: tuple[PicklistValue, ...] = (
    _entry(29683354, "Monitoring Alert", 1, default=True),
    _entry(29683355, "Service Desk", 2, system=False),
    _entry(29683356, "Level II Support", 3, system=False),
)

TICKET_ISSUE_TYPE: tuple[PicklistValue, ...] = (
    _entry(3, "Hardware", 1, system=False),
    _entry(4, "Network", 2, system=False),
    _entry(5, "Software", 3, system=False),
)

# Sub-issue types belong to an issue type in Autotask (a dependent picklist); flat here.
TICKET_SUB_ISSUE_TYPE: tuple[PicklistValue, ...] = (
    _entry(31, "Server Down", 1, system=False),
    _entry(41, "Internet Outage", 2, system=False),
    _entry(51, "Backup Failure", 3, system=False),
)

TICKET_SOURCE: tuple[PicklistValue, ...] = (
    _entry(-1, "Client Portal", 1),
    _entry(2, "Phone", 2),
    _entry(4, "Email", 3),
    _entry(8, "Monitoring Alert", 4),
)

TICKET_TYPE: tuple[PicklistValue, ...] = (
    _entry(1, "Service Request", 1, default=True),
    _entry(2, "Incident", 2),
    _entry(3, "Problem", 3),
    _entry(4, "Change Request", 4),
    _entry(5, "Alert", 5),
)

#: The picklists above by the ticket field that holds them.
ROUTING_PICKLISTS: dict[str, tuple[PicklistValue, ...]] = {
    "queueID": TICKET_QUEUE,
    "issueType": TICKET_ISSUE_TYPE,
    "subIssueType": TICKET_SUB_ISSUE_TYPE,
    "source": TICKET_SOURCE,
    "ticketType": TICKET_TYPE,
}

COMPLETE_STATUS_LABEL = "Complete"


def picklist_field(name: str, values: Iterable[PicklistValue]) -> dict[str, Any]:
    """Shape one picklist the way ``entityInformation/fields`` lists it."""
    return {
        "name": name,
        "dataType": "integer",
        "isPickList": True,
        "picklistValues": [copy.deepcopy(v) for v in values],
    }


def ticket_fields(
    status: Iterable[PicklistValue] = TICKET_STATUS,
    priority: Iterable[PicklistValue] = TICKET_PRIORITY,
) -> dict[str, Any]:
    """The ``Tickets/entityInformation/fields`` answer, reduced to the picklists."""
    return {"fields": [picklist_field("status", status), picklist_field("priority", priority)]}


def note_fields(
    note_type: Iterable[PicklistValue] = NOTE_TYPE,
    publish: Iterable[PicklistValue] = NOTE_PUBLISH,
) -> dict[str, Any]:
    """The ``TicketNotes/entityInformation/fields`` answer, reduced to the picklists."""
    return {"fields": [picklist_field("noteType", note_type), picklist_field("publish", publish)]}


def value_for_label(values: Iterable[PicklistValue], label: str) -> int:
    """Numeric value of ``label``; an exact match wins over a case-insensitive one.

    Raises ``ValueError`` for an unknown label, because a silently wrong status is
    exactly the bug the simulator exists to expose.
    """
    entries = list(values)
    for entry in entries:
        if entry["label"] == label:
            return int(entry["value"])
    folded = label.strip().casefold()
    for entry in entries:
        if entry["label"].casefold() == folded:
            return int(entry["value"])
    raise ValueError(f"unknown picklist label {label!r}")


def label_for_value(values: Iterable[PicklistValue], value: int | str) -> str:
    """Label of a numeric value; ``ValueError`` when the tenant has no such value."""
    wanted = str(value).strip()
    for entry in values:
        if entry["value"] == wanted:
            return entry["label"]
    raise ValueError(f"unknown picklist value {value!r}")


def has_value(values: Iterable[PicklistValue], value: object) -> bool:
    """Whether ``value`` (int or numeric string) is an active entry."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return False
    wanted = str(value).strip()
    return any(entry["value"] == wanted and entry["isActive"] for entry in values)
