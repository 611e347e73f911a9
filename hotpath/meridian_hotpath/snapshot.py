"""Engine snapshots on disk: written atomically, checked by CRC32C, named by sequence number.

File ``snapshot-<seq>.snap``::

    8s magic | u64 seq | u64 engine checksum | u64 payload length | payload | u32 crc32c(all before)

A snapshot is written to a temporary name, fsynced, renamed into place and the directory fsynced,
so a crash leaves either the complete file or none (plus a stray temporary, removed on open).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import google_crc32c

from meridian_hotpath.journal import fsync_directory

MAGIC = b"MRDNSNP1"
SNAPSHOT_HEADER = struct.Struct("<8sQQQ")
SNAPSHOT_CRC = struct.Struct("<I")
SNAPSHOT_PREFIX = "snapshot-"
SNAPSHOT_SUFFIX = ".snap"
TEMP_SUFFIX = ".tmp"
CHECKSUM_MASK = (1 << 64) - 1  # the wire's Snapshot message and this header hold 64 bits


class InvalidSnapshotError(Exception):
    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path.name}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SnapshotFile:
    seq: int
    path: Path


@dataclass(frozen=True, slots=True)
class LoadedSnapshot:
    seq: int
    checksum: int
    payload: bytes
    path: Path


def snapshot_name(seq: int) -> str:
    return f"{SNAPSHOT_PREFIX}{seq:020d}{SNAPSHOT_SUFFIX}"


def encode_snapshot(seq: int, checksum: int, payload: bytes) -> bytes:
    header = SNAPSHOT_HEADER.pack(MAGIC, seq, checksum & CHECKSUM_MASK, len(payload))
    crc = google_crc32c.extend(google_crc32c.value(header), payload)
    return header + payload + SNAPSHOT_CRC.pack(crc)


def decode_snapshot(path: Path, data: bytes) -> LoadedSnapshot:
    if len(data) < SNAPSHOT_HEADER.size + SNAPSHOT_CRC.size:
        raise InvalidSnapshotError(path, "shorter than a header")
    magic, seq, checksum, length = SNAPSHOT_HEADER.unpack_from(data)
    if magic != MAGIC:
        raise InvalidSnapshotError(path, "bad magic")
    if len(data) != SNAPSHOT_HEADER.size + length + SNAPSHOT_CRC.size:
        raise InvalidSnapshotError(path, f"size {len(data)} does not match payload length {length}")
    (stored,) = SNAPSHOT_CRC.unpack_from(data, len(data) - SNAPSHOT_CRC.size)
    if google_crc32c.value(data[: -SNAPSHOT_CRC.size]) != stored:
        raise InvalidSnapshotError(path, "crc mismatch")
    return LoadedSnapshot(seq, checksum, data[SNAPSHOT_HEADER.size : -SNAPSHOT_CRC.size], path)


class SnapshotStore:
    """The snapshot directory of a node."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def remove_stray_temporaries(self) -> list[Path]:
        """Delete half-written snapshots a crash left behind; return what was removed."""
        strays = sorted(self.directory.glob(f"*{TEMP_SUFFIX}"))
        for stray in strays:
            stray.unlink()
        return strays

    def write(self, seq: int, checksum: int, payload: bytes) -> Path:
        final = self.directory / snapshot_name(seq)
        temporary = final.with_name(final.name + TEMP_SUFFIX)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            data = memoryview(encode_snapshot(seq, checksum, payload))
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, final)
        fsync_directory(self.directory)
        return final

    def files(self) -> list[SnapshotFile]:
        """Snapshot files by ascending seq (not yet validated)."""
        found: list[SnapshotFile] = []
        for path in self.directory.glob(f"{SNAPSHOT_PREFIX}*{SNAPSHOT_SUFFIX}"):
            digits = path.name[len(SNAPSHOT_PREFIX) : -len(SNAPSHOT_SUFFIX)]
            if digits.isdigit():
                found.append(SnapshotFile(int(digits), path))
        return sorted(found, key=lambda snapshot: snapshot.seq)

    def load(self, snapshot: SnapshotFile) -> LoadedSnapshot:
        try:
            data = snapshot.path.read_bytes()
        except OSError as exc:
            raise InvalidSnapshotError(snapshot.path, f"unreadable: {exc}") from None
        loaded = decode_snapshot(snapshot.path, data)
        if loaded.seq != snapshot.seq:
            raise InvalidSnapshotError(snapshot.path, f"holds seq {loaded.seq}, name says {snapshot.seq}")
        return loaded
