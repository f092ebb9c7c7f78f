"""Unpacking products: files and directories under the target, or nothing at all."""

from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
import unittest
from pathlib import Path

import support  # noqa: F401  (puts the client on the path)
from lockstep.archive import UnsafeArchive, unpack


def archive(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def file(name: str, data: bytes = b"x", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    return info, data


def entry(name: str, kind: bytes, link: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info, None


class UnpackTest(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="lockstep-archive-test-"))
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)

    def test_unpacks_files_and_directories_with_their_execute_bit(self) -> None:
        data = archive(
            entry("out/", tarfile.DIRTYPE),
            file("out/app", b"#!/bin/sh\n", 0o755),
            file("stdout", b"2\n"),
        )
        where = unpack(io.BytesIO(data), self.dir / "p")
        self.assertEqual((where / "stdout").read_bytes(), b"2\n")
        self.assertEqual((where / "out" / "app").stat().st_mode & 0o777, 0o755)
        self.assertEqual((where / "stdout").stat().st_mode & 0o777, 0o644)

    def test_refuses_what_a_product_cannot_hold_and_leaves_nothing(self) -> None:
        cases = {
            "absolute path": archive(file("ok"), file("/etc/evil")),
            "dot-dot": archive(file("ok"), file("out/../../evil")),
            "symlink": archive(file("ok"), entry("link", tarfile.SYMTYPE, "/etc/passwd")),
            "hard link": archive(file("ok"), entry("hard", tarfile.LNKTYPE, "ok")),
            "device": archive(entry("dev", tarfile.CHRTYPE)),
            "fifo": archive(entry("fifo", tarfile.FIFOTYPE)),
            "duplicate": archive(file("a", b"1"), file("a", b"2")),
            "file then directory": archive(file("a"), file("a/b")),
            "too large": archive(file("big", b"x" * 2048)),
            "cut short": archive(file("a", b"x" * 600), file("b"))[:1536],
            "cut at an entry": archive(file("a", b"x" * 600), file("b"))[:1536 + 1024],
            "not tar": b"this is not an archive" * 100,
        }
        for why, data in cases.items():
            with self.subTest(why):
                target = self.dir / why.replace(" ", "-")
                with self.assertRaises(UnsafeArchive):
                    unpack(io.BytesIO(data), target, max_bytes=1024)
                self.assertFalse(target.exists())
        self.assertEqual(sorted(p.name for p in self.dir.iterdir()), [])
        self.assertFalse(Path("/etc/evil").exists())

    def test_names_the_entry_it_refuses(self) -> None:
        data = archive(file("ok"), entry("out/link", tarfile.SYMTYPE, "../../x"))
        with self.assertRaisesRegex(UnsafeArchive, "out/link.*link"):
            unpack(io.BytesIO(data), self.dir / "p")

    def test_refuses_a_target_that_exists(self) -> None:
        (self.dir / "p").mkdir()
        with self.assertRaises(FileExistsError):
            unpack(io.BytesIO(archive(file("a"))), self.dir / "p")


if __name__ == "__main__":
    unittest.main()
