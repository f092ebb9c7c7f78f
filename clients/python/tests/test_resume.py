"""Following an order through a connection that drops: the client reconnects, and with
``Last-Event-ID`` it hears every stored event of the order exactly once, in order."""

from __future__ import annotations

import unittest
import urllib.parse
import uuid
from typing import Callable

from support import scheduler
from tcp_proxy import TcpProxy
from lockstep import Event, Lockstep, Order


def chain(jobs: int, seconds: float) -> dict[str, object]:
    """A packet of jobs one after another, each taking a little while."""
    return {
        "name": f"chain-{uuid.uuid4().hex[:8]}",
        "jobs": [
            {
                "name": f"step-{i}",
                "op": {"exec": ["sleep", str(seconds)]},
                **({"after": [f"step-{i - 1}"]} if i > 0 else {}),
            }
            for i in range(jobs)
        ],
    }


def stored(events: list[Event]) -> list[tuple[str, str]]:
    """The stored events among those heard (a fulfilment is a snapshot, with no id)."""
    return [(e.id, e.type) for e in events if e.id is not None]


def follow_cut(
    jobs: int, cut_after: Callable[[list[Event]], bool], **follow: str
) -> tuple[Order, list[Event], int]:
    """Submits a chain of jobs and follows it through a proxy that is cut whenever
    ``cut_after(heard)`` says so; returns the order, the events heard and how many times the
    stream was opened."""
    direct = scheduler()
    target = urllib.parse.urlsplit(direct.url)
    with TcpProxy(target.hostname or "127.0.0.1", target.port or 80) as proxy:
        ls = Lockstep(f"http://127.0.0.1:{proxy.port}", token=direct.token, timeout=20)
        order = ls.submit(chain(jobs, 0.4))
        before = proxy.connections
        heard: list[Event] = []
        for event in ls.follow(order, **follow):
            heard.append(event)
            if cut_after(heard):
                proxy.cut()
        return order, heard, proxy.connections - before


class ResumeTest(unittest.TestCase):
    def test_a_cut_stream_is_followed_again_to_the_orders_end(self) -> None:
        order, heard, streams = follow_cut(3, lambda heard: len(heard) == 1)
        self.assertEqual(streams, 2)
        self.assertEqual(heard[-1].type, "fulfilment")
        self.assertEqual(heard[-1].data["state"], "succeeded")
        self.assertEqual(scheduler().status(order).state, "succeeded")

    def test_a_cut_stream_resumes_where_it_broke_off(self) -> None:
        # Cut twice, each time after a job's success while later jobs still run, so that
        # events happen while the client is away.
        def cut(heard: list[Event]) -> bool:
            succeeded = [e for e in heard if e.type == "job:succeeded"]
            return heard[-1].type == "job:succeeded" and len(succeeded) <= 2

        order, heard, streams = follow_cut(5, cut, last_event_id="0")
        self.assertEqual(streams, 3)
        self.assertEqual(heard[-1].type, "fulfilment")
        self.assertEqual(heard[-1].data["state"], "succeeded")

        # The order's stored events, read afresh from the log now that it has ended.
        log = stored(list(scheduler().follow(order, last_event_id="0")))
        self.assertEqual(stored(heard), log)
        ids = [int(i) for i, _ in log]
        self.assertEqual(ids, sorted(set(ids)))
        types = [t for _, t in log]
        self.assertEqual(types.count("job:succeeded"), 5)
        self.assertEqual((types[0], types[-1]), ("order:submitted", "order:succeeded"))


if __name__ == "__main__":
    unittest.main()
