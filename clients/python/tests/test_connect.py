"""Where a client finds its scheduler and token: arguments, then LOCKSTEP_URL and
LOCKSTEP_TOKEN, then what ``lockstep up`` saved, whose token goes to its own URL only."""

from __future__ import annotations

import json
import os
import tempfile
import unittest
from pathlib import Path
from unittest import mock

import support  # noqa: F401  (puts the client on the path)
from lockstep import Lockstep

SAVED = {"url": "http://127.0.0.1:7300", "token": "saved-token"}


class ConnectTest(unittest.TestCase):
    def setUp(self) -> None:
        scratch = tempfile.TemporaryDirectory()
        self.addCleanup(scratch.cleanup)
        self.data = Path(scratch.name)
        self.env = {"LOCKSTEP_DATA_DIR": str(self.data)}

    def save(self, mode: int = 0o600) -> None:
        path = self.data / "cli.json"
        path.write_text(json.dumps(SAVED))
        os.chmod(path, mode)

    def client(self, *args: str | None, **env: str) -> Lockstep:
        clean = {k: v for k, v in os.environ.items() if k not in ("LOCKSTEP_URL", "LOCKSTEP_TOKEN")}
        with mock.patch.dict(os.environ, {**clean, **self.env, **env}, clear=True):
            return Lockstep(*args)

    def test_arguments_then_the_environment(self) -> None:
        self.save()
        ls = self.client("http://a:1/", "t", LOCKSTEP_URL="http://b:2", LOCKSTEP_TOKEN="u")
        self.assertEqual((ls.url, ls.token), ("http://a:1", "t"))
        ls = self.client(LOCKSTEP_URL="http://b:2", LOCKSTEP_TOKEN="u")
        self.assertEqual((ls.url, ls.token), ("http://b:2", "u"))

    def test_a_saved_token_goes_to_the_saved_url_only(self) -> None:
        self.save()
        ls = self.client()
        self.assertEqual((ls.url, ls.token), (SAVED["url"], SAVED["token"]))
        self.assertIsNone(self.client(LOCKSTEP_URL="http://elsewhere:7300").token)
        self.assertEqual(self.client(LOCKSTEP_URL=SAVED["url"]).token, SAVED["token"])

    def test_a_file_others_may_write_is_refused(self) -> None:
        self.save(0o666)
        with self.assertRaisesRegex(ValueError, "chmod 600"):
            self.client()

    def test_no_scheduler_anywhere_says_how_to_name_one(self) -> None:
        with self.assertRaisesRegex(ValueError, "LOCKSTEP_URL"):
            self.client()


if __name__ == "__main__":
    unittest.main()
