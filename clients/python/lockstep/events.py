"""Server-sent events, read as the HTML specification's event-stream format says.

A stream is lines (ended by CRLF, LF or CR) of ``field: value``; a blank line dispatches the
event built so far. ``data`` lines are joined with newlines; ``event`` names its type
(``message`` when absent); ``id`` sets the last event id, which a client sends back as
``Last-Event-ID`` when it reconnects so the server resumes after it; ``retry`` sets the
reconnection delay in milliseconds; a line starting with ``:`` is a comment. An event cut off
before its blank line is not dispatched.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

__all__ = ["Event", "EventParser"]

_LINE_END = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True)
class Event:
    """One event of an order's stream.

    ``type`` is the stream's event name: the scheduler's stored events (``order:submitted``,
    ``job:ready``, ``attempt:started``, ``attempt:ended``, ``job:succeeded``,
    ``order:succeeded``, …) and ``fulfilment``, the order's progress after each change.
    ``data`` is the event's JSON, parsed (the text itself if it is not JSON). ``id`` is the
    id the server gave this event, if any: a reconnection resumes after the last one seen.
    """

    type: str
    data: Any
    id: str | None = None
    raw: str = field(default="", repr=False, compare=False)


class EventParser:
    """Turns the bytes of a stream, fed in pieces of any size, into :class:`Event`\\ s.

    ``last_id`` is the last event id the stream set (kept across events, as the spec says) and
    ``retry_ms`` the last reconnection delay it asked for.
    """

    def __init__(self, last_id: str | None = None) -> None:
        self.last_id = last_id
        self.retry_ms: int | None = None
        self._pending = b""
        self._cr = False
        self._data: list[str] = []
        self._type = ""
        self._id_buffer = last_id
        self._block_id: str | None = None

    def feed(self, chunk: bytes) -> list[Event]:
        """The events completed by this chunk."""
        events: list[Event] = []
        buffer = self._pending + chunk
        start = 0
        if self._cr and buffer.startswith(b"\n"):
            # The LF of a CRLF split between two chunks: its CR ended the line already.
            start = 1
        self._cr = False
        for end in _LINE_END.finditer(buffer, start):
            event = self._line(buffer[start : end.start()].decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
            start = end.end()
            self._cr = end.group() == b"\r" and start == len(buffer)
        self._pending = buffer[start:]
        return events

    def _line(self, line: str) -> Event | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._type = value
        elif name == "id":
            if "\0" not in value:
                self._id_buffer = value
                self._block_id = value
        elif name == "retry":
            if value.isdigit() and value.isascii():
                self.retry_ms = int(value)
        return None

    def _dispatch(self) -> Event | None:
        # The id holds from here on, also when this block carried no data.
        self.last_id = self._id_buffer
        data, kind, own_id = self._data, self._type, self._block_id
        self._data, self._type, self._block_id = [], "", None
        if not data:
            return None
        text = "\n".join(data)
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        return Event(kind or "message", value, own_id or None, text)


def parse(chunks: Iterable[bytes]) -> Iterator[Event]:
    """Every complete event in a sequence of chunks (a helper for tests and files)."""
    parser = EventParser()
    for chunk in chunks:
        yield from parser.feed(chunk)
