"""What the API answers, as typed objects. Each keeps the whole JSON it was made from in
``raw``, so a field a newer server adds is there before this client names it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

__all__ = ["Order", "Job", "JobLogs", "Download", "StoredPacket", "FINAL_STATES"]

#: The states an order or a job ends in; ``running`` (and a job's waiting states) are not.
FINAL_STATES = frozenset({"succeeded", "failed", "cancelled", "skipped"})


@dataclass(frozen=True)
class Order:
    """An order and its progress (the API's ``OrderFulfilment``).

    ``state`` is ``running``, ``succeeded``, ``failed`` or ``cancelled``; ``counts`` holds how
    many jobs are in each state; ``progress`` runs from 0 to 1; ``reason`` says why it failed or
    was cancelled. Times are milliseconds since the epoch.
    """

    id: str
    state: str
    priority: int
    owner: str
    total: int
    counts: dict[str, int]
    progress: float
    source: dict[str, Any]
    created_at: int | None = None
    started_at: int | None = None
    ended_at: int | None = None
    reason: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def done(self) -> bool:
        """Whether the order has ended, in any way."""
        return self.state != "running"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Order:
        return cls(
            id=str(data["orderId"]),
            state=str(data["state"]),
            priority=int(data.get("priority", 50)),
            owner=str(data.get("owner", "")),
            total=int(data.get("total", 0)),
            counts=dict(data.get("counts") or {}),
            progress=float(data.get("progress", 0)),
            source=dict(data.get("source") or {}),
            created_at=data.get("createdAt"),
            started_at=data.get("startedAt"),
            ended_at=data.get("endedAt"),
            reason=data.get("reason"),
            raw=dict(data),
        )


@dataclass(frozen=True)
class Job:
    """One job of an order: its ``state`` (``waiting``, ``ready``, ``running``, ``succeeded``,
    ``failed``, ``skipped``, ``cancelled``), its current ``attempt`` (0 for one served from a
    cache), ``reason`` when it failed, ``wait`` (in words) when it waits, and the ``artefacts``
    (URLs) its latest attempt reported."""

    id: str
    order_id: str
    index: int
    name: str
    state: str
    attempt: int
    op: dict[str, Any]
    reason: str | None = None
    wait: str | None = None
    artefacts: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Job:
        wait = data.get("wait")
        return cls(
            id=str(data["id"]),
            order_id=str(data["orderId"]),
            index=int(data.get("index", 0)),
            name=str(data.get("name", "")),
            state=str(data["state"]),
            attempt=int(data.get("attempt", 0)),
            op=dict(data.get("op") or {}),
            reason=data.get("reason"),
            wait=wait.get("text") if isinstance(wait, dict) else None,
            artefacts=tuple(data.get("artefacts") or ()),
            raw=dict(data),
        )


@dataclass(frozen=True)
class JobLogs:
    """What ``lockstep logs`` shows: the job, its attempts (each with its target, state,
    reason, exit code and message) and, once it has succeeded, its standard output and error."""

    job: Job
    attempts: list[dict[str, Any]]
    stdout: str | None = None
    stderr: str | None = None


@dataclass(frozen=True)
class Download:
    """Where :meth:`~lockstep.Lockstep.download` put an order's products: one directory per job
    under ``dir``, named after the job (``jobs``), and the jobs whose product no live target
    holds any more (``missing``)."""

    dir: Path
    jobs: list[str]
    missing: list[str]


@dataclass(frozen=True)
class StoredPacket:
    """A packet stored with :meth:`~lockstep.Lockstep.store_packet`, to order by id or name."""

    id: str
    name: str
    created_at: int | None = None
