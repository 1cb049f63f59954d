"""Media-sized parts: the payload as one tar stream cut into `parts/bundle.tar.NNN`.

Writing hashes each part as it is written. Reading streams the parts back in order as one file
(for `tarfile`'s stream mode), checking each part's size at its end and hashing it on a second
thread, so a split bundle is read once and its two kinds of checksum cost about one pass of
wall time on two cores.
"""

from __future__ import annotations

import hashlib
import queue
import re
import threading
from pathlib import Path
from typing import BinaryIO

from .manifest import BundleError, FileEntry, part_name

UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
MIN_PART_SIZE = 1 << 10
MAX_PARTS = 1000  # three digits in the name
NEXT_PART = "next"


def parse_size(text: str) -> int:
    """`4G`, `700M`, `4GiB`, `1048576`: binary units, as `split -b` reads them."""
    match = re.fullmatch(r"\s*([0-9]+)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not match:
        raise BundleError(f"--split-size {text!r}: give a size such as 4G, 700M or 1048576")
    size = int(match.group(1)) * UNITS[match.group(2).upper()]
    if size < MIN_PART_SIZE:
        raise BundleError(f"--split-size {text!r}: parts must hold at least {MIN_PART_SIZE} bytes")
    return size


class PartWriter:
    """A write-only file object that fills `parts/bundle.tar.000`, `.001`, … of `size` bytes."""

    def __init__(self, directory: Path, size: int):
        self.directory = directory / "parts"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.size = size
        self.parts: list[FileEntry] = []
        self._handle: BinaryIO | None = None
        """The part being written, if any."""
        self._hash = hashlib.sha256()
        self._written = 0

    def _next(self) -> BinaryIO:
        self._finish()
        if len(self.parts) >= MAX_PARTS:
            raise BundleError(f"more than {MAX_PARTS} parts; give a larger --split-size")
        self._handle = open(self.directory.parent / part_name(len(self.parts)), "xb")
        self._hash = hashlib.sha256()
        self._written = 0
        return self._handle

    def _finish(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self.parts.append(FileEntry(part_name(len(self.parts)), self._written, self._hash.hexdigest()))
            self._handle = None

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            handle = self._handle
            if handle is None or self._written == self.size:
                handle = self._next()
            chunk = view[:self.size - self._written]
            handle.write(chunk)
            self._hash.update(chunk)
            self._written += len(chunk)
            view = view[len(chunk):]
        return len(data)

    def close(self) -> list[FileEntry]:
        self._finish()
        return self.parts


class PartsReader:
    """A read-only file object over the parts, in order; problems are collected in `problems`.

    Call `finish()` after the last read: it reads what the tar reader left (end-of-archive
    padding), waits for the hashing thread, and compares each part's sha256.
    """

    def __init__(self, root: Path, parts: list[FileEntry]):
        self.root = root
        self.parts = parts
        self.problems: list[str] = []
        self._index = -1
        self._handle: BinaryIO | None = None
        self._read_in_part = 0
        # To the hashing thread: NEXT_PART before each part, then its bytes; None at the end.
        self._queue: queue.Queue[bytes | str | None] = queue.Queue(maxsize=16)
        self._digests: list[str] = []
        self._hasher = threading.Thread(target=self._hash_parts, daemon=True)
        self._hasher.start()
        self._open_next()

    def _hash_parts(self) -> None:
        hashes = []
        while (item := self._queue.get()) is not None:
            if item == NEXT_PART:
                hashes.append(hashlib.sha256())
            elif isinstance(item, bytes):
                hashes[-1].update(item)
        self._digests = [digest.hexdigest() for digest in hashes]

    def _open_next(self) -> bool:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        self._index += 1
        if self._index >= len(self.parts):
            return False
        self._handle = open(self.root / self.parts[self._index].path, "rb")
        self._read_in_part = 0
        self._queue.put(NEXT_PART)
        return True

    def read(self, size: int = -1) -> bytes:
        chunks, wanted = [], size if size >= 0 else 1 << 62
        while wanted > 0 and self._handle is not None:
            part = self.parts[self._index]
            data = self._handle.read(min(wanted, part.size - self._read_in_part, 1 << 22))
            if data:
                self._queue.put(data)
                self._read_in_part += len(data)
                chunks.append(data)
                wanted -= len(data)
            if not data or self._read_in_part >= part.size:
                if self._read_in_part != part.size or self._handle.read(1):
                    # Sizes are checked before reading; a part changed while it was read.
                    self.problems.append(f"{part.path}: changed size while being read")
                self._open_next()
        return b"".join(chunks)

    def finish(self) -> None:
        while self._handle is not None:
            if not self.read(1 << 22):
                break
        self._queue.put(None)
        self._hasher.join()
        # A part that could not be opened has no digest; the error reading it is reported already.
        for part, digest in zip(self.parts, self._digests, strict=False):
            if digest != part.sha256:
                self.problems.append(f"{part.path}: sha256 differs from {part.sha256[:16]}… (altered)")

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
