"""Error answers become exceptions that carry the server's code, status and issues."""

from __future__ import annotations

import json
import unittest

import support  # noqa: F401  (puts the client on the path)
from lockstep import (
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
    ValidationError,
)
from lockstep.errors import error_from


def answer(code: str, message: str = "m", **more: object) -> str:
    return json.dumps({"error": {"code": code, "message": message, **more}})


class ErrorFromTest(unittest.TestCase):
    def test_picks_the_class_by_code_then_by_status(self) -> None:
        cases = [
            (400, "VALIDATION_FAILED", ValidationError),
            (400, "CYCLE_IN_GRAPH", ValidationError),
            (401, "UNAUTHORIZED", Unauthorized),
            (403, "DOWNLOAD_DISABLED", Forbidden),
            (404, "ORDER_NOT_FOUND", NotFound),
            (409, "ALREADY_FINAL", Conflict),
            (421, "HOST_NOT_ALLOWED", LockstepError),
            (422, "SITES_OFFLINE", SitesOffline),
            (429, "QUOTA_EXCEEDED", QuotaExceeded),
            (500, "INTERNAL", InternalError),
            (503, "STORE_UNAVAILABLE", Unavailable),
        ]
        for status, code, cls in cases:
            with self.subTest(code):
                e = error_from(status, answer(code, "why"))
                self.assertIs(type(e), cls)
                self.assertEqual((e.code, e.message, e.status), (code, "why", status))
                self.assertEqual(str(e), f"{code}: why")

    def test_keeps_the_issues_and_the_body(self) -> None:
        issues = [{"path": "jobs[1].after[0]", "message": "no job named x"}]
        e = error_from(400, answer("VALIDATION_FAILED", issues=issues))
        self.assertEqual(e.issues, (Issue("jobs[1].after[0]", "no job named x"),))
        self.assertEqual(str(e.issues[0]), "jobs[1].after[0]: no job named x")
        self.assertEqual(e.body["issues"], issues)

    def test_reads_retry_after_in_seconds(self) -> None:
        e = error_from(503, answer("STORE_UNAVAILABLE"), "7")
        assert isinstance(e, Unavailable)
        self.assertEqual(e.retry_after, 7.0)
        self.assertIsNone(getattr(error_from(503, answer("UNAVAILABLE")), "retry_after"))

    def test_an_answer_not_from_lockstep_keeps_its_status(self) -> None:
        e = error_from(502, "<html>Bad Gateway</html>")
        self.assertIsInstance(e, Unavailable)
        self.assertEqual((e.code, e.status), ("UNAVAILABLE", 502))
        self.assertIn("Bad Gateway", e.message)
        self.assertEqual(error_from(404, "").code, "NOT_FOUND")


if __name__ == "__main__":
    unittest.main()
