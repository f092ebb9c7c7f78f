"""The workbench client of the Lockstep API: submit artifacts and packets, follow orders to
their end, read their jobs, cancel them and download their products.

It speaks the scheduler's HTTP API with the standard library alone. Every error the server
answers is raised as a :class:`~lockstep.errors.LockstepError` with the server's code; a
scheduler that cannot be reached is an :class:`~lockstep.errors.Unreachable` that says so.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import stat
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Iterator, Mapping, Union

from .archive import DEFAULT_MAX_BYTES, UnsafeArchive, unpack
from .errors import (
    Issue,
    LockstepError,
    NotFound,
    Unavailable,
    Unreachable,
    ValidationError,
    error_from,
)
from .events import Event, EventParser
from .models import Download, Job, JobLogs, Order, StoredPacket

__all__ = ["Lockstep", "OrderRef", "JobRef"]

#: An order, or its id.
OrderRef = Union[Order, str]
#: A job, or its id.
JobRef = Union[Job, str]

#: Where a reconnection's wait starts, and the most it grows to, in seconds.
_FIRST_RETRY_S = 0.25
_LAST_RETRY_S = 10.0

_BODY = re.compile(r"^body:")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # The token goes to the scheduler's URL and nowhere else: a redirect is an error to read.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _order_id(order: OrderRef) -> str:
    return order.id if isinstance(order, Order) else str(order)


def _job_id(job: JobRef) -> str:
    return job.id if isinstance(job, Job) else str(job)


def _quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _saved_credentials() -> dict[str, Any] | None:
    """What ``lockstep up`` saved in its data directory, read as the CLI reads it: only a file
    this user owns and no one else may write, since it says where the token goes."""
    data_dir = os.environ.get("LOCKSTEP_DATA_DIR") or ".lockstep"
    path = Path(data_dir).resolve() / "cli.json"
    try:
        info = path.stat()
        text = path.read_text("utf-8")
    except OSError:
        return None
    if (hasattr(os, "getuid") and info.st_uid != os.getuid()) or info.st_mode & (
        stat.S_IWGRP | stat.S_IWOTH
    ):
        raise ValueError(
            f"{path} is not safe to use (it must belong to you and be writable by you alone): "
            f"run 'chmod 600 {path}', or remove it and run 'lockstep up' again"
        )
    try:
        saved = json.loads(text)
    except ValueError:
        raise ValueError(f"{path} is not valid JSON: remove it and run 'lockstep up' again")
    return saved if isinstance(saved, dict) else None


class Lockstep:
    """A client of one Lockstep scheduler.

    ``url`` is the scheduler's address (``http://127.0.0.1:7300``) and ``token`` a workbench
    token; either, when not given, comes from ``LOCKSTEP_URL`` and ``LOCKSTEP_TOKEN``, else from
    the credentials ``lockstep up`` saved (``.lockstep/cli.json``, or ``LOCKSTEP_DATA_DIR``), whose
    token goes only to its own URL. ``timeout`` bounds each request, in seconds; an event stream
    waits as long as its order runs.

    >>> ls = Lockstep("http://127.0.0.1:7300", token="...")
    >>> order = ls.submit("examples/federated-mean.yaml")
    >>> ls.wait(order).state
    'succeeded'
    """

    def __init__(
        self, url: str | None = None, token: str | None = None, timeout: float = 30.0
    ) -> None:
        if url is None:
            url = os.environ.get("LOCKSTEP_URL") or None
        if token is None:
            token = os.environ.get("LOCKSTEP_TOKEN") or None
        saved = _saved_credentials() if url is None or token is None else None
        saved_url = saved.get("url") if saved is not None else None
        if url is None:
            if not isinstance(saved_url, str):
                raise ValueError(
                    "no scheduler to talk to: pass Lockstep(url), set LOCKSTEP_URL, "
                    "or run 'lockstep up' first (it saves .lockstep/cli.json)"
                )
            url = saved_url
        # A saved token goes to the saved URL only.
        if token is None and saved is not None and saved_url == url:
            saved_token = saved.get("token")
            token = saved_token if isinstance(saved_token, str) else None
        self.url = str(url).rstrip("/")
        self.token = token or None
        self.timeout = timeout
        self._opener = urllib.request.build_opener(_NoRedirect)

    def __repr__(self) -> str:
        return f"Lockstep({self.url!r})"

    # -- transport -------------------------------------------------------------------------

    def _open(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        content_type: str | None = None,
        query: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = -1.0,
    ) -> http.client.HTTPResponse:
        """Sends a request and returns the answer, unread; raises the server's error, or
        :class:`Unreachable`. ``timeout`` -1 means the client's own; None waits for ever."""
        url = self.url + path
        pairs = {k: v for k, v in (query or {}).items() if v is not None}
        if pairs:
            url += "?" + urllib.parse.urlencode(pairs, doseq=True)
        request = urllib.request.Request(url, data=body, method=method)
        request.add_header("Accept", "application/json")
        if self.token is not None:
            request.add_header("Authorization", f"Bearer {self.token}")
        if content_type is not None:
            request.add_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        wait = self.timeout if timeout == -1.0 else timeout
        try:
            # None waits for ever; urllib takes a missing timeout as the socket default.
            if wait is None:
                response = self._opener.open(request)
            else:
                response = self._opener.open(request, timeout=wait)
        except urllib.error.HTTPError as e:
            with e:
                text = e.read().decode("utf-8", errors="replace")
            raise error_from(e.code, text, e.headers.get("Retry-After")) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            raise self._unreachable(e) from None
        return response  # type: ignore[no-any-return]

    def _unreachable(self, e: BaseException) -> Unreachable:
        reason = getattr(e, "reason", None) or e
        return Unreachable(
            "UNAVAILABLE",
            f"cannot reach the scheduler at {self.url} ({reason}); is it running?",
        )

    def _call(
        self,
        method: str,
        path: str,
        payload: Any = None,
        *,
        text: str | None = None,
        query: Mapping[str, Any] | None = None,
        timeout: float | None = -1.0,
    ) -> Any:
        """Calls the API with a JSON body (or a YAML ``text``) and returns its JSON answer."""
        body: bytes | None = None
        content_type = None
        if text is not None:
            body, content_type = text.encode("utf-8"), "application/yaml"
        elif payload is not None:
            body, content_type = json.dumps(payload).encode("utf-8"), "application/json"
        response = self._open(
            method, path, body=body, content_type=content_type, query=query, timeout=timeout
        )
        try:
            with response:
                data = response.read()
        except (OSError, http.client.HTTPException) as e:
            raise self._unreachable(e) from None
        return json.loads(data) if data else None

    # -- orders ----------------------------------------------------------------------------

    def submit(
        self,
        what: str | os.PathLike[str] | Mapping[str, Any],
        *,
        priority: int | None = None,
        owner: str | None = None,
        min_sites: int | None = None,
        wait_for_sites_ms: int | None = None,
        override: Mapping[str, Any] | None = None,
        failure: Mapping[str, Any] | None = None,
    ) -> Order:
        """Orders an artifact or a packet, and returns the order (its id, state and progress).

        ``what`` is a path to a YAML or JSON file (sent as its text: the server reads it and
        names line and column of a mistake), or a dict: an artifact (``project``, ``steps``), a
        packet (``name``, ``jobs``), or a submission as the API takes it (``artifact``,
        ``packet`` or ``packetRef``, with ``options``). ``priority`` is 1–100, higher first (50
        unless given); ``min_sites`` lets an artifact run over the live sites when some are
        offline, ``wait_for_sites_ms`` waits that long for them; ``owner`` (admins only)
        submits for another owner. ``override`` and ``failure`` (a target policy override and a
        default failure policy) go with a dict or a JSON file only.
        """
        options: dict[str, Any] = {
            "priority": priority,
            "owner": owner,
            "minSites": min_sites,
            "waitForSitesMs": wait_for_sites_ms,
            "override": dict(override) if override is not None else None,
            "failure": dict(failure) if failure is not None else None,
        }
        options = {k: v for k, v in options.items() if v is not None}
        # The server answers once bound, up to the wait for sites: the request waits as long.
        timeout = self.timeout + (wait_for_sites_ms or 0) / 1000
        if isinstance(what, Mapping):
            return Order.from_json(
                self._call("POST", "/v1/orders", self._submission(what, options), timeout=timeout)
            )
        path = Path(what)
        text = path.read_text("utf-8")
        if "override" in options or "failure" in options:
            if path.suffix.lower() != ".json":
                raise TypeError(
                    "override and failure go with a dict or a JSON file; "
                    "a YAML file takes priority, owner, min_sites and wait_for_sites_ms"
                )
            return self.submit(json.loads(text), **self._keywords(options))
        try:
            data = self._call("POST", "/v1/orders", text=text, query=options, timeout=timeout)
        except ValidationError as e:
            # The server names the place in its body (`body:4:1: …`): name the file instead.
            issues = [Issue(i.path, _BODY.sub(f"{path}:", i.message)) for i in e.issues]
            raise ValidationError(
                e.code, "\n".join(str(i) for i in issues), e.status, issues, e.body
            ) from None
        return Order.from_json(data)

    @staticmethod
    def _keywords(options: Mapping[str, Any]) -> dict[str, Any]:
        names = {"minSites": "min_sites", "waitForSitesMs": "wait_for_sites_ms"}
        return {names.get(k, k): v for k, v in options.items()}

    @staticmethod
    def _submission(what: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
        if {"artifact", "packet", "packetRef"} & what.keys():
            return {**what, "options": {**(what.get("options") or {}), **options}}
        # As the server tells a file's kind: an artifact has steps, a packet has jobs. Neither
        # goes as an artifact, and the server names what is missing.
        kind = "packet" if "jobs" in what and "steps" not in what else "artifact"
        return {kind: dict(what), "options": dict(options)}

    def store_packet(self, what: str | os.PathLike[str] | Mapping[str, Any]) -> StoredPacket:
        """Stores a packet (a YAML or JSON file, or a dict) to order later by its id or name
        with :meth:`order_packet`."""
        if isinstance(what, Mapping):
            data = self._call("POST", "/v1/packets", dict(what))
        else:
            data = self._call("POST", "/v1/packets", text=Path(what).read_text("utf-8"))
        return StoredPacket(str(data["id"]), str(data["name"]), data.get("createdAt"))

    def order_packet(
        self, packet: StoredPacket | str, *, priority: int | None = None, **options: Any
    ) -> Order:
        """Orders a stored packet, by id or name (an admin may also give ``owner/name``)."""
        ref = packet.id if isinstance(packet, StoredPacket) else packet
        return self.submit({"packetRef": ref}, priority=priority, **options)

    def status(self, order: OrderRef) -> Order:
        """The order's state and progress now."""
        data = self._call("GET", f"/v1/orders/{_quote(_order_id(order))}")
        return Order.from_json(data["fulfilment"])

    def orders(
        self,
        *,
        state: str | list[str] | None = None,
        q: str | None = None,
        sort: str | None = None,
        limit: int | None = None,
    ) -> list[Order]:
        """The caller's orders, newest first (``sort='priority'``: highest first), at most
        ``limit`` (100 unless given), only those in ``state`` when given."""
        data = self._call(
            "GET", "/v1/orders", query={"state": state, "q": q, "sort": sort, "limit": limit}
        )
        return [Order.from_json(o) for o in data]

    def jobs(self, order: OrderRef) -> list[Job]:
        """The order's jobs, in their order: each one's state and, for one that waits, why."""
        data = self._call("GET", f"/v1/orders/{_quote(_order_id(order))}/jobs")
        return [Job.from_json(j) for j in data]

    def job(self, job: JobRef) -> dict[str, Any]:
        """A job in detail, as the API answers it: ``job``, ``attempts``, ``inputs``, ``wait``."""
        return dict(self._call("GET", f"/v1/jobs/{_quote(_job_id(job))}"))

    def cancel(self, order: OrderRef) -> Order:
        """Cancels the order: its running jobs are stopped, the others will not start.
        Cancelling a cancelled order changes nothing; one that succeeded or failed raises
        :class:`~lockstep.errors.Conflict` (``ALREADY_FINAL``)."""
        return Order.from_json(self._call("POST", f"/v1/orders/{_quote(_order_id(order))}/cancel"))

    def cancel_job(self, job: JobRef) -> Job:
        """Cancels one job; its order's failure policy decides what follows."""
        return Job.from_json(self._call("POST", f"/v1/jobs/{_quote(_job_id(job))}/cancel"))

    # -- events ----------------------------------------------------------------------------

    def follow(
        self,
        order: OrderRef,
        *,
        last_event_id: str | None = None,
        reconnect_tries: int = 30,
        idle_timeout: float | None = None,
    ) -> Iterator[Event]:
        """The order's events as they happen, until it ends: a generator of
        :class:`~lockstep.events.Event`\\ s (stored events such as ``job:succeeded``, and a
        ``fulfilment`` with the order's progress after each change; the last one has its final
        state).

        A stream that breaks while the order runs (a proxy, a restart of the scheduler) is
        opened again with ``Last-Event-ID`` set to the last event id seen: the scheduler sends
        the stored events after it, so none is lost or heard twice. The wait between tries
        starts at the server's ``retry`` and doubles up to 10 s; after ``reconnect_tries`` tries
        in a row that hear nothing the last error is raised. ``last_event_id`` resumes an earlier
        follow (an event's ``id``); ``"0"`` hears the order's stored events from its first.
        ``idle_timeout`` (seconds) reconnects a stream silent that long; none by default, as an
        order may run quiet for hours.
        """
        order_id = _order_id(order)
        last_id = last_event_id
        retry_s = _FIRST_RETRY_S
        tries = 0
        while True:
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
            if last_id:
                headers["Last-Event-ID"] = last_id
            heard = False
            ended = False
            failure: LockstepError | None = None
            try:
                response = self._open(
                    "GET",
                    "/v1/events",
                    query={"order": order_id},
                    headers=headers,
                    timeout=idle_timeout,
                )
            except Unavailable as e:
                failure = e
            else:
                parser = EventParser(last_id)
                with response:
                    try:
                        while True:
                            chunk = response.read1(1 << 16)
                            if not chunk:
                                break
                            for event in parser.feed(chunk):
                                heard = True
                                if _ends_order(event):
                                    ended = True
                                last_id = parser.last_id
                                yield event
                            last_id = parser.last_id
                    except (OSError, http.client.HTTPException) as e:
                        failure = self._unreachable(e)
                if parser.retry_ms is not None:
                    retry_s = max(parser.retry_ms / 1000, 0.0)
            if ended:
                # The server closes an order's stream once it has sent the order's end.
                return
            tries = 0 if heard else tries + 1
            if tries >= reconnect_tries:
                raise failure or Unreachable(
                    "UNAVAILABLE",
                    f"the event stream of order {order_id} ended {tries} times in a row "
                    "before the order did",
                )
            delay = min(max(retry_s, _FIRST_RETRY_S) * 2 ** max(tries - 1, 0), _LAST_RETRY_S)
            if isinstance(failure, Unavailable) and failure.retry_after is not None:
                delay = max(delay, failure.retry_after)
            time.sleep(delay)

    def wait(self, order: OrderRef, *, timeout: float | None = None) -> Order:
        """Follows the order until it ends and returns it in its final state. ``timeout``
        (seconds) raises :class:`TimeoutError` when it runs longer."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last: Order | None = None
        events = self.follow(order, idle_timeout=timeout)
        try:
            for event in events:
                if event.type == "fulfilment" and isinstance(event.data, dict):
                    last = Order.from_json(event.data)
                if deadline is not None and time.monotonic() > deadline:
                    break
        finally:
            events.close()
        if last is not None and last.done:
            return last
        final = self.status(order)
        if not final.done:
            raise TimeoutError(f"order {final.id} still runs after {timeout} s")
        return final

    # -- products --------------------------------------------------------------------------

    def products(self, order: OrderRef) -> list[dict[str, Any]]:
        """The products of the order's succeeded jobs: each one's ``jobId``, ``productId``,
        ``name`` and the ``holders`` that serve it. Needs a server that allows downloads."""
        return list(self._call("GET", f"/v1/orders/{_quote(_order_id(order))}/products"))

    def _content(self, product_id: str) -> http.client.HTTPResponse:
        return self._open(
            "GET",
            f"/v1/products/{_quote(product_id)}/content",
            headers={"Accept": "application/octet-stream"},
        )

    def _unpack(self, product_id: str, target: Path, max_bytes: int, name: str) -> None:
        response = self._content(product_id)
        try:
            with response:
                unpack(response, target, max_bytes)
        except UnsafeArchive as e:
            raise UnsafeArchive(f"product {name} ({product_id}): {e}") from None
        except (http.client.HTTPException, ConnectionError, TimeoutError) as e:
            raise self._unreachable(e) from None

    def download(
        self,
        order: OrderRef,
        dir: str | os.PathLike[str] | None = None,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> Download:
        """Downloads the order's products into ``dir`` (``lockstep-<order id>`` unless given),
        one directory per job named after it, each holding what the job wrote to
        ``$LOCKSTEP_OUT`` under ``out/`` and its ``stdout`` and ``stderr``.

        A product is unpacked safely: one that names a path outside its directory, holds a
        link or a device, or unpacks to more than ``max_bytes`` (10 GiB unless given) raises
        :class:`~lockstep.archive.UnsafeArchive` naming the entry, and leaves no directory for
        it. Products no live target holds any more are listed in ``missing``. The server must
        allow downloads (``lockstep server --allow-download``), else
        :class:`~lockstep.errors.Forbidden` (``DOWNLOAD_DISABLED``).
        """
        order_id = _order_id(order)
        root = Path(dir if dir is not None else f"lockstep-{order_id}").resolve()
        jobs: list[str] = []
        missing: list[str] = []
        for product in self.products(order_id):
            name = str(product["name"])
            if not product.get("holders"):
                missing.append(name)
                continue
            try:
                self._unpack(str(product["productId"]), root / name, max_bytes, name)
            except NotFound as e:
                if e.code != "PRODUCT_NOT_FOUND":
                    raise
                missing.append(name)
                continue
            jobs.append(name)
        return Download(root, jobs, missing)

    def result(self, order: OrderRef) -> Any:
        """What the order's last job produced: its ``out/result.json`` parsed (the result of a
        federated analysis), else its standard output as text."""
        order_id = _order_id(order)
        last = max(self.jobs(order_id), key=lambda j: j.index)
        product = next((p for p in self.products(order_id) if p["jobId"] == last.id), None)
        if product is None:
            raise LockstepError(
                "PRODUCT_NOT_FOUND",
                f"job {last.name} of order {order_id} has no product (it is {last.state})",
            )
        with tempfile.TemporaryDirectory(prefix="lockstep-result-") as scratch:
            where = Path(scratch) / "product"
            self._unpack(str(product["productId"]), where, DEFAULT_MAX_BYTES, last.name)
            result = where / "out" / "result.json"
            if result.is_file():
                return json.loads(result.read_text("utf-8"))
            return (where / "stdout").read_text("utf-8", errors="replace")

    def logs(self, job: JobRef) -> JobLogs:
        """A job's attempts (why each failed) and, once it has succeeded, its standard output
        and error, read from its product."""
        detail = self.job(job)
        found = Job.from_json(detail["job"])
        stdout = stderr = None
        if found.state == "succeeded" and "image" not in found.op:
            # An image job's output is in its Pod's logs; every other job keeps it as a product.
            key = detail["job"].get("cacheKey")
            product_id = found.id if key is None else f"cache:{key}"
            with tempfile.TemporaryDirectory(prefix="lockstep-logs-") as scratch:
                where = Path(scratch) / "product"
                self._unpack(product_id, where, DEFAULT_MAX_BYTES, found.name)
                stdout = _read_text(where / "stdout")
                stderr = _read_text(where / "stderr")
        return JobLogs(found, list(detail.get("attempts") or []), stdout, stderr)


def _ends_order(event: Event) -> bool:
    """Whether the event says the order has ended: a fulfilment in a final state."""
    if event.type != "fulfilment" or not isinstance(event.data, dict):
        return False
    return event.data.get("state") not in (None, "running")


def _read_text(path: Path) -> str:
    try:
        return path.read_text("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
