"""Following an order through a connection that drops: the client reconnects and follows the
order to its end."""

from __future__ import annotations

import unittest
import urllib.parse
import uuid

from support import scheduler
from tcp_proxy import TcpProxy
from lockstep import Event, Lockstep


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


class ResumeTest(unittest.TestCase):
    def test_a_cut_stream_is_followed_again_to_the_orders_end(self) -> None:
        direct = scheduler()
        target = urllib.parse.urlsplit(direct.url)
        with TcpProxy(target.hostname or "127.0.0.1", target.port or 80) as proxy:
            ls = Lockstep(f"http://127.0.0.1:{proxy.port}", token=direct.token, timeout=20)
            order = ls.submit(chain(3, 0.4))
            before = proxy.connections
            heard: list[Event] = []
            for event in ls.follow(order):
                heard.append(event)
                if len(heard) == 1:
                    proxy.cut()
            self.assertEqual(proxy.connections - before, 2)
        self.assertEqual(heard[-1].type, "fulfilment")
        self.assertEqual(heard[-1].data["state"], "succeeded")
        self.assertEqual(direct.status(order).state, "succeeded")


if __name__ == "__main__":
    unittest.main()
