"""Lockstep's Python workbench client: submit federated analyses and packets of jobs to a
Lockstep scheduler, follow them to their end, and download what they made.

>>> from lockstep import Lockstep
>>> ls = Lockstep()  # LOCKSTEP_URL and LOCKSTEP_TOKEN
>>> order = ls.submit("examples/federated-mean.yaml")
>>> ls.wait(order).state
'succeeded'
>>> ls.result(order)["mean"]
26.14
"""

from .archive import DEFAULT_MAX_BYTES, UnsafeArchive
from .client import JobRef, Lockstep, OrderRef
from .errors import (
    Conflict,
    Forbidden,
    InternalError,
    Issue,
    LockstepError,
    NotFound,
    QuotaExceeded,
    SitesOffline,
    Unauthorized,
    Unavailable,
    Unreachable,
    ValidationError,
)
from .events import Event
from .models import FINAL_STATES, Download, Job, JobLogs, Order, StoredPacket

__version__ = "0.1.0"

__all__ = [
    "Lockstep",
    "Order",
    "Job",
    "JobLogs",
    "Download",
    "StoredPacket",
    "Event",
    "OrderRef",
    "JobRef",
    "FINAL_STATES",
    "DEFAULT_MAX_BYTES",
    "UnsafeArchive",
    "LockstepError",
    "ValidationError",
    "Unauthorized",
    "Forbidden",
    "NotFound",
    "Conflict",
    "SitesOffline",
    "QuotaExceeded",
    "Unavailable",
    "Unreachable",
    "InternalError",
    "Issue",
]
