"""Unpacking a product: the tar archive a job's directory travels as.

Invariant: an archive unpacks to files and directories under the target directory, or not at
all. An absolute path, a ``..`` component, a link, a device or a FIFO, a duplicate entry, or
more bytes in all than the cap refuse the whole archive, naming the entry; what was unpacked so
far is removed, and the target directory appears only once every entry is in. The archive is
read as a stream, one entry at a time, never held whole.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath
from typing import IO

__all__ = ["UnsafeArchive", "DEFAULT_MAX_BYTES", "unpack"]

#: The most a product may unpack to unless the caller says otherwise: 10 GiB, as the CLI.
DEFAULT_MAX_BYTES = 10 * 1024**3

_CHUNK = 1 << 16

_DATA_FILTER = getattr(tarfile, "data_filter", None)


_BLOCK = 512
_TAIL = 1 << 16


class _Counted:
    """A stream that counts what is read from it and keeps the last bytes: the end of an archive
    is checked on them, since ``tarfile`` takes an archive cut short at an entry's boundary for
    a whole one."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self.total = 0
        self.tail = bytearray()

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.total += len(data)
        self.tail += data
        del self.tail[: max(0, len(self.tail) - _TAIL)]
        return data

    def drain(self, limit: int) -> None:
        """Reads to the end, up to ``limit`` more bytes (padding after the end blocks)."""
        while limit > 0:
            data = self.read(min(limit, _CHUNK))
            if not data:
                return
            limit -= len(data)

    def ended_at(self, offset: int) -> bool:
        """Whether two zero blocks were read at ``offset``: the archive's end marker."""
        if self.total < offset + 2 * _BLOCK:
            return False
        start = len(self.tail) - (self.total - offset)
        if start < 0:
            return False
        marker = self.tail[start : start + 2 * _BLOCK]
        return len(marker) == 2 * _BLOCK and not any(marker)


class UnsafeArchive(Exception):
    """An archive that names a path outside its directory, holds something other than files and
    directories, or unpacks to more than allowed."""


def _checked_name(member: tarfile.TarInfo, seen: set[str]) -> PurePosixPath:
    name = member.name
    path = PurePosixPath(name)
    if name.startswith("/") or path.is_absolute() or "\\" in name:
        raise UnsafeArchive(f"entry {name!r}: an absolute path")
    parts = [p for p in path.parts if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive(f"entry {name!r}: a '..' component leads outside the product")
    if not parts:
        raise UnsafeArchive(f"entry {name!r}: names no file")
    if not (member.isreg() or member.isdir()):
        kind = "a link" if member.issym() or member.islnk() else "a device or a FIFO"
        raise UnsafeArchive(f"entry {name!r}: {kind}; a product holds files and directories only")
    clean = "/".join(parts)
    if clean in seen:
        raise UnsafeArchive(f"entry {name!r}: appears twice")
    seen.add(clean)
    return PurePosixPath(clean)


def unpack(
    stream: IO[bytes], target: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_BYTES
) -> Path:
    """Unpacks the archive read from ``stream`` into the directory ``target``, which must not
    exist yet; returns it. Raises :class:`UnsafeArchive` (and leaves nothing behind) for an
    archive that breaks the invariant above."""
    final = Path(target)
    if final.exists():
        raise FileExistsError(f"{final} exists already")
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        total = 0
        seen: set[str] = set()
        current = ""
        counted = _Counted(stream)
        with tarfile.open(fileobj=counted, mode="r|") as archive:  # type: ignore[call-overload]
            for member in archive:
                current = member.name
                relative = _checked_name(member, seen)
                if _DATA_FILTER is not None:
                    # The standard library's own check too, where it has one (3.11.4+).
                    _DATA_FILTER(member, str(staging))
                where = staging.joinpath(*relative.parts)
                if member.isdir():
                    where.mkdir(parents=True, exist_ok=True)
                    continue
                total += member.size
                if total > max_bytes:
                    raise UnsafeArchive(
                        f"entry {member.name!r}: the product unpacks to more than {max_bytes} bytes"
                    )
                where.parent.mkdir(parents=True, exist_ok=True)
                source = archive.extractfile(member)
                assert source is not None  # a regular file always has content
                # "x": a path a directory entry or another file made already is refused.
                with open(where, "xb") as out:
                    shutil.copyfileobj(source, out, _CHUNK)
                os.chmod(where, 0o755 if member.mode & 0o111 else 0o644)
            end = archive.offset
        counted.drain(_TAIL // 2)
        if not counted.ended_at(end):
            raise UnsafeArchive("the archive ended early, or holds something that is not tar")
        os.chmod(staging, 0o755)
        staging.rename(final)
        return final
    except (FileExistsError, NotADirectoryError) as e:
        raise UnsafeArchive(f"entry {current!r}: a file and a directory at one path") from None
    except tarfile.TarError as e:
        raise UnsafeArchive(f"not a readable tar archive: {e}") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
