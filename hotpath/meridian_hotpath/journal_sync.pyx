# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The journal's syncer: a native thread that makes written journal records durable, never holding
the GIL, so no fdatasync ever runs on (or waits for) the matching node's event loop.

The event loop writes each sealed batch of records with one ``write()`` (into the page cache) and
tells the syncer how far it wrote (``written``). The syncer thread, in C, waits for news, calls
``fdatasync`` once for everything written so far (a group commit that grows by itself when the disk
is slow), publishes how far is durable, and signals the file descriptors it was given
(``notify``): the loop's eventfd (which releases answers held for durability) and the wake-up pipe
of the process that tails the journal. It also fsyncs and closes the segments the writer rotated
away from, and the directory that holds a new segment, before counting anything in it durable.

A standby of a shard acknowledging on ``write`` (``--ack-after replica``) has its syncer paced
(``pace``): at least that long from the start of one fdatasync to the start of the next. Its disk's
durability is no part of the acknowledgement there, and each fdatasync in flight can hold up the
standby's next ``write()`` of a batch its primary waits on (ext4 commits its journal under it).

A failed fdatasync is final: the syncer stops, ``error`` holds the errno, and the loop fails the
node (the state of the failed write on disk is unknown).
"""

from libc.errno cimport EAGAIN, EINTR, errno
from libc.stdint cimport uint64_t
from libc.string cimport memset
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, nanosleep, timespec
from posix.unistd cimport close, fsync, write

import os


cdef uint64_t now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <uint64_t> ts.tv_sec * 1000000000 + <uint64_t> ts.tv_nsec


cdef void syncer_written(State *s, uint64_t seq) noexcept nogil:
    """Records up to ``seq`` are in the page cache: wake the syncer (from any thread)."""
    pthread_mutex_lock(&s.lock)
    if seq > s.written:
        s.written = seq
        pthread_cond_signal(&s.wake)
    pthread_mutex_unlock(&s.lock)


cdef void wake_fd(int fd) noexcept nogil:
    """Write 8 bytes to ``fd``: an eventfd adds one; a pipe already holding a byte has woken its
    reader (EAGAIN: fine)."""
    cdef uint64_t one = 1
    while write(fd, &one, 8) < 0 and errno == EINTR:
        pass


cdef void signal_all(State *s) noexcept nogil:
    cdef int i
    for i in range(s.n_notify):
        wake_fd(s.notify[i])


cdef void *run(void *arg) noexcept nogil:
    cdef State *s = <State *> arg
    cdef uint64_t target, started, elapsed, micros, gap
    cdef timespec pause
    cdef int fd, dir_fd, n, i, bucket, error
    cdef int retired[MAX_RETIRED]
    cdef bint sync_dir
    pthread_mutex_lock(&s.lock)
    while True:
        while (s.written == s.durable and s.n_retired == 0 and not s.dir_pending and not s.stopping
               and s.error == 0):
            pthread_cond_wait(&s.wake, &s.lock)
        if s.error != 0 or (s.stopping and s.written == s.durable and s.n_retired == 0 and not s.dir_pending):
            break
        target = s.written
        fd = s.fd
        dir_fd = s.dir_fd
        sync_dir = s.dir_pending
        s.dir_pending = 0
        n = s.n_retired
        for i in range(n):
            retired[i] = s.retired[i]
        s.n_retired = 0
        pthread_mutex_unlock(&s.lock)
        started = now_ns()
        error = 0
        for i in range(n):
            if fsync(retired[i]) != 0 and error == 0:
                error = errno
            close(retired[i])
        if sync_dir and error == 0 and fsync(dir_fd) != 0:
            error = errno
        if error == 0 and fdatasync(fd) != 0:
            error = errno
        elapsed = now_ns() - started
        pthread_mutex_lock(&s.lock)
        if error != 0:
            s.error = error
        else:
            if target > s.durable:
                s.durable = target
                if s.durable_out != NULL:
                    s.durable_out[0] = target
            s.syncs += 1
            s.sync_ns_total += elapsed
            s.sync_ns_last = elapsed
            if elapsed > s.sync_ns_max:
                s.sync_ns_max = elapsed
            micros = elapsed // 1000
            bucket = 0
            while micros > 1 and bucket < N_BUCKETS - 1:
                micros >>= 1
                bucket += 1
            s.buckets[bucket] += 1
        gap = s.min_gap_ns if not s.stopping else 0
        pthread_mutex_unlock(&s.lock)
        signal_all(s)
        elapsed = now_ns() - started
        if gap > elapsed:
            pause.tv_sec = <long> ((gap - elapsed) // 1000000000)
            pause.tv_nsec = <long> ((gap - elapsed) % 1000000000)
            nanosleep(&pause, NULL)
        pthread_mutex_lock(&s.lock)
    s.running = 0
    pthread_mutex_unlock(&s.lock)
    signal_all(s)
    return NULL


cdef class JournalSyncer:
    """Makes the journal durable behind the writer; see the module docstring."""

    def __cinit__(self):
        memset(&self.s, 0, sizeof(State))
        pthread_mutex_init(&self.s.lock, NULL)
        pthread_cond_init(&self.s.wake, NULL)
        self.started = False

    def __init__(self, int fd, int dir_fd, uint64_t durable_seq):
        """``fd``: the segment being written; ``dir_fd``: the journal directory (kept open by the
        caller); ``durable_seq``: the last seq already durable (the journal's end at start)."""
        self.s.fd = fd
        self.s.dir_fd = dir_fd
        self.s.written = durable_seq
        self.s.durable = durable_seq

    def share_durable(self, buffer):
        """Also store the durable seq (u64, native byte order) in ``buffer``'s first 8 bytes, e.g. a
        shared mapping that another process reads."""
        cdef unsigned char[::1] view = buffer
        if view.shape[0] < 8:
            raise ValueError("the durable seq needs 8 bytes")
        self._keep = buffer
        with nogil:
            pthread_mutex_lock(&self.s.lock)
            self.s.durable_out = <uint64_t *> &view[0]
            self.s.durable_out[0] = self.s.durable
            pthread_mutex_unlock(&self.s.lock)

    def notify(self, int fd):
        """Write 8 bytes to ``fd`` (an eventfd or a non-blocking pipe) after every sync."""
        if self.started:
            raise RuntimeError("notify fds are set before start")
        if self.s.n_notify == MAX_NOTIFY:
            raise ValueError("too many notify fds")
        self.s.notify[self.s.n_notify] = fd
        self.s.n_notify += 1

    def start(self):
        if self.started:
            return
        self.s.running = 1
        if pthread_create(&self.thread, NULL, run, &self.s) != 0:
            self.s.running = 0
            raise OSError("cannot start the journal syncer thread")
        self.started = True

    def written(self, uint64_t seq):
        """The writer handed every record up to ``seq`` to the page cache: make it durable."""
        with nogil:
            syncer_written(&self.s, seq)

    def pace(self, double seconds):
        """At least ``seconds`` from the start of one fdatasync to the start of the next (0: sync
        as soon as anything is written, the default)."""
        if seconds < 0:
            raise ValueError("a sync gap is not negative")
        with nogil:
            pthread_mutex_lock(&self.s.lock)
            self.s.min_gap_ns = <uint64_t> (seconds * 1e9)
            pthread_mutex_unlock(&self.s.lock)

    @property
    def sync_gap(self):
        return self.s.min_gap_ns / 1e9

    def rotate(self, int new_fd):
        """The writer moved to a new segment: the old one is fsynced and closed by the syncer, the
        directory fsynced, before anything written to ``new_fd`` counts as durable."""
        with nogil:
            pthread_mutex_lock(&self.s.lock)
            if self.s.n_retired == MAX_RETIRED:
                pthread_mutex_unlock(&self.s.lock)
                with gil:
                    raise OSError("the journal syncer is too far behind the segment rotation")
            self.s.retired[self.s.n_retired] = self.s.fd
            self.s.n_retired += 1
            self.s.fd = new_fd
            self.s.dir_pending = 1
            pthread_cond_signal(&self.s.wake)
            pthread_mutex_unlock(&self.s.lock)

    def stop(self):
        """Sync everything written, then stop the thread (idempotent). Returns the durable seq."""
        if self.started:
            with nogil:
                pthread_mutex_lock(&self.s.lock)
                self.s.stopping = 1
                pthread_cond_signal(&self.s.wake)
                pthread_mutex_unlock(&self.s.lock)
                pthread_join(self.thread, NULL)
            self.started = False
        if self.s.error:
            raise OSError(self.s.error, os.strerror(self.s.error))
        return self.s.durable

    @property
    def durable_seq(self):
        return self.s.durable

    @property
    def written_seq(self):
        return self.s.written

    @property
    def fd(self):
        return self.s.fd

    @property
    def error(self):
        """The errno of a failed sync, or 0."""
        return self.s.error

    @property
    def running(self):
        return bool(self.s.running)

    def stats(self):
        """(syncs, seconds in sync in all, seconds of the last one, seconds of the longest one,
        counts per power-of-two microsecond bucket)."""
        with nogil:
            pthread_mutex_lock(&self.s.lock)
        try:
            return (
                self.s.syncs,
                self.s.sync_ns_total / 1e9,
                self.s.sync_ns_last / 1e9,
                self.s.sync_ns_max / 1e9,
                [self.s.buckets[i] for i in range(N_BUCKETS)],
            )
        finally:
            pthread_mutex_unlock(&self.s.lock)

    def __dealloc__(self):
        if self.started:
            pthread_mutex_lock(&self.s.lock)
            self.s.stopping = 1
            pthread_cond_signal(&self.s.wake)
            pthread_mutex_unlock(&self.s.lock)
            pthread_join(self.thread, NULL)
        pthread_cond_destroy(&self.s.wake)
        pthread_mutex_destroy(&self.s.lock)


SYNC_BUCKET_UPPER_SECONDS = tuple((2 ** (k + 1)) / 1e6 for k in range(N_BUCKETS - 1)) + (float("inf"),)
