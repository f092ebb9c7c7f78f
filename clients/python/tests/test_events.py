"""The event-stream parser against the rules of the server-sent events format."""

from __future__ import annotations

import unittest

import support  # noqa: F401  (puts the client on the path)
from lockstep.events import Event, EventParser


def feed_all(text: bytes, piece: int | None = None) -> tuple[list[Event], EventParser]:
    parser = EventParser()
    events: list[Event] = []
    step = piece or len(text) or 1
    for i in range(0, len(text), step):
        events += parser.feed(text[i : i + step])
    return events, parser


STREAM = (
    b"retry: 1500\n\n"
    b": a comment\n"
    b"event: job:ready\nid: 41\ndata: {\"jobId\": \"j1\"}\n\n"
    b"event: fulfilment\r\ndata: {\"state\":\r\ndata: \"running\"}\r\n\r\n"
    b"data:no space\rdata:  two spaces\r\r"
    b"id: 42\n\n"
    b"event: job:succeeded\ndata: {\"jobId\": \"j1\"}\n"
)


class ParserTest(unittest.TestCase):
    def test_reads_fields_as_the_format_says_whatever_the_line_ends(self) -> None:
        events, parser = feed_all(STREAM)
        self.assertEqual(
            [(e.type, e.data, e.id) for e in events],
            [
                ("job:ready", {"jobId": "j1"}, "41"),
                ("fulfilment", {"state": "running"}, None),
                ("message", "no space\n two spaces", None),
            ],
        )
        self.assertEqual(parser.retry_ms, 1500)
        # An id with no data still moves the resume point; an event cut off is not dispatched.
        self.assertEqual(parser.last_id, "42")

    def test_gives_the_same_events_however_the_bytes_are_split(self) -> None:
        whole, _ = feed_all(STREAM)
        for piece in (1, 2, 3, 7, 64):
            with self.subTest(piece=piece):
                split, parser = feed_all(STREAM, piece)
                self.assertEqual(split, whole)
                self.assertEqual(parser.last_id, "42")

    def test_keeps_a_crlf_split_between_chunks_as_one_line_end(self) -> None:
        parser = EventParser()
        self.assertEqual(parser.feed(b"data: a\r"), [])
        self.assertEqual(parser.feed(b"\n\r"), [Event("message", "a")])
        self.assertEqual(parser.feed(b"\ndata: b\n\n"), [Event("message", "b")])

    def test_ignores_a_bad_retry_and_an_id_with_nul(self) -> None:
        events, parser = feed_all(b"retry: 1s\nid: 5\n\nid: a\0b\ndata: x\n\n")
        self.assertIsNone(parser.retry_ms)
        self.assertEqual(parser.last_id, "5")
        self.assertEqual(events, [Event("message", "x")])

    def test_an_empty_id_clears_the_resume_point(self) -> None:
        _, parser = feed_all(b"id: 9\n\nid\n\n")
        self.assertEqual(parser.last_id, "")


if __name__ == "__main__":
    unittest.main()
