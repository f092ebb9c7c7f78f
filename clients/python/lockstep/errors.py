"""Errors of the Lockstep API, as exceptions that carry the server's code.

Every error the scheduler returns has the shape ``{"error": {"code", "message", "issues"?}}``
and an HTTP status; the catalogue is ``docs/errors.md``. :func:`error_from` turns one into the
most specific class below, so callers catch what they can act on (``NotFound``,
``ValidationError``, ``Unavailable``) and read ``code`` for the rest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

__all__ = [
    "Issue",
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
    "error_from",
]


@dataclass(frozen=True)
class Issue:
    """One thing wrong with an input: the path of the field (``steps[0].kind``) and why."""

    path: str
    message: str

    def __str__(self) -> str:
        return self.message if self.path == "" else f"{self.path}: {self.message}"


class LockstepError(Exception):
    """An error the scheduler answered (or the client met on the way to it).

    ``code`` is one of the catalogue's (``ORDER_NOT_FOUND``, ``VALIDATION_FAILED``, …);
    ``status`` the HTTP status, or None when no answer came; ``issues`` name the offending
    fields of bad input; ``body`` is the ``error`` object as the server sent it.
    """

    def __init__(
        self,
        code: str,
        message: str,
        status: int | None = None,
        issues: Sequence[Issue] = (),
        body: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.issues: tuple[Issue, ...] = tuple(issues)
        self.body: dict[str, Any] = dict(body or {})

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(code={self.code!r}, message={self.message!r}, status={self.status!r})"


class ValidationError(LockstepError):
    """Bad input (400): ``issues`` name each offending field. Also ``CYCLE_IN_GRAPH`` and
    ``LIMIT_EXCEEDED``, which say what in the document breaks a rule or a limit."""


class Unauthorized(LockstepError):
    """401: no token, or one the server does not know."""


class Forbidden(LockstepError):
    """403: the token's role or owner may not do this (``FORBIDDEN``), or the server does not
    allow downloads (``DOWNLOAD_DISABLED``)."""


class NotFound(LockstepError):
    """404: no such order, job, packet, target or product, or one that is another owner's."""


class Conflict(LockstepError):
    """409: the order or job has already ended (``ALREADY_FINAL``), and the like."""


class SitesOffline(LockstepError):
    """422 ``SITES_OFFLINE``: workers that hold the artifact's data are offline. Submit again
    with ``wait_for_sites_ms`` to wait for them, or ``min_sites`` to run over the live ones."""


class QuotaExceeded(LockstepError):
    """429: the caller holds as many orders in flight, or event streams, as a limit allows."""


class Unavailable(LockstepError):
    """503: the server is starting or stopping (``UNAVAILABLE``), or its database cannot be
    written now (``STORE_UNAVAILABLE``). ``retry_after`` is how many seconds to wait before
    trying again, when the server said."""

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after = retry_after


class Unreachable(Unavailable):
    """The scheduler could not be reached at all (refused, reset, timed out, unknown host):
    code ``UNAVAILABLE`` with no status."""


class InternalError(LockstepError):
    """5xx other than 503: an internal error; the server's log has it under the id in the
    message."""


_BY_CODE: dict[str, type[LockstepError]] = {
    "VALIDATION_FAILED": ValidationError,
    "CYCLE_IN_GRAPH": ValidationError,
    "LIMIT_EXCEEDED": ValidationError,
    "SITES_OFFLINE": SitesOffline,
    "QUOTA_EXCEEDED": QuotaExceeded,
    "UNAVAILABLE": Unavailable,
    "STORE_UNAVAILABLE": Unavailable,
}

_BY_STATUS: dict[int, type[LockstepError]] = {
    400: ValidationError,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    429: QuotaExceeded,
    503: Unavailable,
}


def _retry_after(header: str | None) -> float | None:
    if header is None:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        # An HTTP date is allowed too; Lockstep sends seconds, so a date is read as "soon".
        return 1.0


def _code_of_status(status: int) -> str:
    if status in (502, 503, 504):
        return "UNAVAILABLE"
    if status >= 500:
        return "INTERNAL"
    return {401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND"}.get(status, f"HTTP_{status}")


def error_from(status: int, text: str, retry_after: str | None = None) -> LockstepError:
    """The exception for an error answer: its status, its body and its ``Retry-After``."""
    error: Any = None
    try:
        parsed = json.loads(text)
        if isinstance(parsed, dict):
            error = parsed.get("error")
    except ValueError:
        pass
    if not isinstance(error, dict):
        # Not Lockstep's answer (a proxy's, say): keep the status and the start of the text.
        error = {"code": _code_of_status(status), "message": f"HTTP {status}: {text[:200]}"}
    code = str(error.get("code") or f"HTTP_{status}")
    message = str(error.get("message") or f"HTTP {status}")
    issues = [
        Issue(str(i.get("path", "")), str(i.get("message", "")))
        for i in error.get("issues") or []
        if isinstance(i, dict)
    ]
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status)
    if cls is None:
        cls = InternalError if status >= 500 else LockstepError
    if issubclass(cls, Unavailable):
        return cls(code, message, status, issues, error, retry_after=_retry_after(retry_after))
    return cls(code, message, status, issues, error)
