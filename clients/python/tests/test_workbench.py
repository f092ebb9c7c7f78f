"""The client against a real scheduler and its workers (see support.py for what they must be):
a federated analysis end to end, a build whose products are downloaded, cancelling, following,
and the errors a workbench meets."""

from __future__ import annotations

import csv
import json
import socket
import tempfile
import unittest
import uuid
from pathlib import Path

from support import EXAMPLES, other_owner, scheduler
from lockstep import (
    Conflict,
    Event,
    Lockstep,
    LockstepError,
    NotFound,
    Unauthorized,
    Unreachable,
    ValidationError,
)


def central_mean(column: str) -> tuple[float, int]:
    """The column's mean over every clinic's rows put together, as one machine computes it."""
    values: list[float] = []
    for path in sorted((EXAMPLES / "data").glob("*.csv")):
        with path.open(newline="") as f:
            values += [float(row[column]) for row in csv.DictReader(f)]
    return sum(values) / len(values), len(values)


def sleeper(seconds: int) -> dict[str, object]:
    """A packet of one job that sleeps, with a name of its own."""
    return {
        "name": f"sleep-{uuid.uuid4().hex[:8]}",
        "jobs": [{"name": "sleep", "op": {"exec": ["sleep", str(seconds)]}}],
    }


def running(event: Event) -> bool:
    """Whether the event shows the order running a job."""
    return (
        event.type == "fulfilment"
        and event.data["state"] == "running"
        and event.data["counts"]["running"] > 0
    )


class FederatedTest(unittest.TestCase):
    def test_mean_over_three_clinics_equals_the_central_mean(self) -> None:
        ls = scheduler()
        order = ls.submit(EXAMPLES / "federated-mean.yaml", priority=70)
        self.assertEqual((order.state, order.priority, order.total), ("running", 70, 4))
        events = list(ls.follow(order))
        final = events[-1]
        self.assertEqual(final.type, "fulfilment")
        self.assertEqual(final.data["state"], "succeeded")
        self.assertEqual(final.data["counts"]["succeeded"], 4)
        self.assertIn("order:succeeded", [e.type for e in events])
        progress = [e.data["progress"] for e in events if e.type == "fulfilment"]
        self.assertEqual(progress, sorted(progress))
        self.assertEqual(ls.status(order).state, "succeeded")

        result = ls.result(order)
        mean, count = central_mean("bmi")
        self.assertEqual(result["count"], count)
        self.assertAlmostEqual(result["mean"], mean, places=9)

        # Only sums and counts left the clinics: the three site jobs ran where the data is.
        jobs = ls.jobs(order)
        self.assertEqual([j.state for j in jobs], ["succeeded"] * 4)
        sites = sorted(j.raw["policy"].get("target") for j in jobs[:3])
        self.assertEqual(sites, ["clinic-1", "clinic-2", "clinic-3"])


class BuildTest(unittest.TestCase):
    def test_downloads_the_products_of_a_build_one_directory_per_job(self) -> None:
        ls = scheduler()
        order = ls.submit(EXAMPLES / "build.yaml")
        self.assertEqual(ls.wait(order, timeout=30).state, "succeeded")
        with tempfile.TemporaryDirectory() as scratch:
            got = ls.download(order, Path(scratch) / "build")
            self.assertEqual(got.dir, (Path(scratch) / "build").resolve())
            self.assertEqual(sorted(got.jobs), ["compile-a", "compile-b", "link", "test"])
            self.assertEqual(got.missing, [])
            self.assertEqual((got.dir / "link" / "out" / "app").read_text(), "part a\npart b\n")
            self.assertEqual((got.dir / "test" / "stdout").read_text(), "2\n")
        test = next(j for j in ls.jobs(order) if j.name == "test")
        logs = ls.logs(test)
        self.assertEqual((logs.stdout, logs.job.state), ("2\n", "succeeded"))
        self.assertEqual([a["state"] for a in logs.attempts], ["succeeded"])

    def test_orders_a_stored_packet_by_name(self) -> None:
        ls = scheduler()
        name = f"hello-{uuid.uuid4().hex[:8]}"
        stored = ls.store_packet(
            {"name": name, "jobs": [{"name": "hi", "op": {"exec": ["echo", "hello"]}}]}
        )
        self.assertEqual(stored.name, name)
        order = ls.order_packet(name, priority=5)
        self.assertEqual(order.priority, 5)
        self.assertEqual(ls.wait(order, timeout=30).state, "succeeded")
        self.assertEqual(ls.result(order), "hello\n")


class CancelTest(unittest.TestCase):
    def test_cancels_a_running_order_and_its_stream_ends(self) -> None:
        ls = scheduler()
        order = ls.submit(sleeper(60))
        seen: list[Event] = []
        stream = ls.follow(order)
        for event in stream:
            seen.append(event)
            if running(event):
                cancelled = ls.cancel(order)
                self.assertEqual(cancelled.state, "cancelled")
        # The stream ended by itself, with the order's end.
        self.assertEqual(seen[-1].type, "fulfilment")
        self.assertEqual(seen[-1].data["state"], "cancelled")
        self.assertEqual(len([e for e in seen if running(e)]), 1)
        self.assertEqual([j.state for j in ls.jobs(order)], ["cancelled"])
        # Cancelling again changes nothing; an order that succeeded cannot be cancelled.
        self.assertEqual(ls.cancel(order).state, "cancelled")
        done = ls.submit(sleeper(0))
        self.assertEqual(ls.wait(done, timeout=30).state, "succeeded")
        with self.assertRaises(Conflict) as caught:
            ls.cancel(done)
        self.assertEqual((caught.exception.code, caught.exception.status), ("ALREADY_FINAL", 409))


class ErrorTest(unittest.TestCase):
    def test_a_bad_document_names_the_field(self) -> None:
        ls = scheduler()
        with self.assertRaises(ValidationError) as caught:
            ls.submit({"project": "clinics", "steps": [{"kind": "paralel"}]})
        e = caught.exception
        self.assertEqual((e.code, e.status), ("VALIDATION_FAILED", 400))
        self.assertEqual([i.path for i in e.issues], ["steps[0].kind"])
        self.assertIn("parallel", e.issues[0].message)

    def test_a_bad_file_names_the_file_and_line(self) -> None:
        ls = scheduler()
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "bad.yaml"
            path.write_text("name: bad\njobs:\n  - name: a\n   op: {exec: [echo]}\n")
            with self.assertRaises(ValidationError) as caught:
                ls.submit(path)
        self.assertRegex(str(caught.exception), rf"^VALIDATION_FAILED: {path}:4:")

    def test_a_priority_out_of_range_is_refused(self) -> None:
        ls = scheduler()
        with self.assertRaises(ValidationError) as caught:
            ls.submit(EXAMPLES / "build.yaml", priority=500)
        self.assertEqual([i.path for i in caught.exception.issues], ["query.priority"])

    def test_an_unknown_order_is_not_found(self) -> None:
        ls = scheduler()
        for call in (ls.status, ls.jobs, ls.cancel, lambda o: list(ls.follow(o))):
            with self.assertRaises(NotFound) as caught:
                call("no-such-order")
            e = caught.exception
            self.assertEqual((e.code, e.status), ("ORDER_NOT_FOUND", 404))

    def test_another_owners_order_is_not_found(self) -> None:
        ls = scheduler()
        order = ls.submit(sleeper(0))
        with self.assertRaises(NotFound) as caught:
            other_owner().status(order)
        self.assertEqual(caught.exception.code, "ORDER_NOT_FOUND")
        ls.wait(order, timeout=30)

    def test_a_wrong_token_is_unauthorized(self) -> None:
        ls = scheduler()
        with self.assertRaises(Unauthorized) as caught:
            Lockstep(ls.url, token="not-a-token-of-this-server").orders()
        self.assertEqual((caught.exception.code, caught.exception.status), ("UNAUTHORIZED", 401))

    def test_a_scheduler_that_cannot_be_reached_says_so(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        # Nothing listens on the port any more.
        with self.assertRaises(Unreachable) as caught:
            Lockstep(f"http://127.0.0.1:{port}", token="t").status("x")
        e = caught.exception
        self.assertIsInstance(e, LockstepError)
        self.assertEqual((e.code, e.status), ("UNAVAILABLE", None))
        self.assertIn(f"cannot reach the scheduler at http://127.0.0.1:{port}", str(e))


if __name__ == "__main__":
    unittest.main()
