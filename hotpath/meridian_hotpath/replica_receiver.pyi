"""Type stub of a standby's native receive thread (replica_receiver.pyx)."""

from meridian_hotpath.journal_sync import JournalSyncer

class ReplicaReceiver:
    def __init__(self, sock: int, syncer: JournalSyncer, notify_fd: int, window: int) -> None: ...
    def start(
        self,
        journal_fd: int,
        segment_size: int,
        segment_limit: int,
        next_seq: int,
        epoch: int,
        known_epoch: int,
        unsynced_bytes: int,
    ) -> None: ...
    def resume(
        self,
        journal_fd: int,
        segment_size: int,
        segment_limit: int,
        next_seq: int,
        epoch: int,
        known_epoch: int,
        unsynced_bytes: int,
    ) -> None: ...
    def take(self) -> list[tuple[int, bytes, bool]]: ...
    def send(self, frame: bytes) -> None: ...
    def stop(self) -> None: ...
    @property
    def running(self) -> bool: ...
    @property
    def fast_frames(self) -> int: ...
    @property
    def handed_frames(self) -> int: ...
