"""What the tests share: the client under test (from this checkout, whether or not it is
installed) and the scheduler they talk to, named by the environment:

- ``LOCKSTEP_URL``, ``LOCKSTEP_TOKEN``: a scheduler started with ``--allow-download`` and a
  workbench token of it; workers ``clinic-1`` … ``clinic-3`` holding project ``clinics`` (the
  rows of ``examples/data/clinic-N.csv``), which also run ``exec`` jobs;
- ``LOCKSTEP_OTHER_TOKEN``: a workbench token of another owner;
- ``LOCKSTEP_EXAMPLES``: the ``examples`` directory (``../../../examples`` from here unless set).

Without ``LOCKSTEP_URL`` the tests that need a scheduler are skipped, saying so.
"""

from __future__ import annotations

import os
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lockstep import Lockstep  # noqa: E402

EXAMPLES = Path(
    os.environ.get("LOCKSTEP_EXAMPLES") or Path(__file__).resolve().parents[3] / "examples"
)


def scheduler() -> Lockstep:
    """A client of the scheduler under test; skips the test when none is named."""
    if not os.environ.get("LOCKSTEP_URL"):
        raise unittest.SkipTest("no scheduler: set LOCKSTEP_URL and LOCKSTEP_TOKEN")
    return Lockstep(timeout=20)


def other_owner() -> Lockstep:
    """A client with another owner's workbench token."""
    token = os.environ.get("LOCKSTEP_OTHER_TOKEN")
    if not token:
        raise unittest.SkipTest("no second owner: set LOCKSTEP_OTHER_TOKEN")
    return Lockstep(token=token, timeout=20)
