# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The standby's native receive path: a C thread that reads the replication link, writes each batch
of records to the journal and acknowledges it, never taking the GIL or waiting for the event loop.

In ``--ack-after replica`` the primary's answers wait for the standby's acknowledgement: the trip
from the primary's send to that acknowledgement is part of every answer. On the event loop it
costs the loop's wake-up and the Python handling of the frame on top of the network's round trip;
here the thread blocks in ``recv``, writes and sends the ACK at once, and only then hands the batch
to the loop (``take``), which applies it to the engine and does the journal's bookkeeping
(``native_link.NativeStandbyLink``).

The thread takes only the ordinary case, a RECORDS frame that (1) carries the epoch the link
follows, (2) starts at the journal's next seq, (3) holds whole records in sequence of no epoch newer
than the node's epoch log knows, (4) fits in the current segment (the Python writer rotates when a
segment is full) and (5) in the unsynced window (the disk is not far behind). Any other frame
(the first of an epoch, a full segment, a CHECK, a DIVERGED, a REFUSE, a broken frame) goes to the
loop unwritten, and the thread waits (``resume``) until the loop has handled a RECORDS frame, so
the journal is only ever written by one of them at a time. The loop then does exactly what the
reference link (``shard.StandbyLink``) does with it.

Queue items for the loop: ``(kind, payload, written)``; kind 0 means the link ended: closed or
reset (an empty payload), or broken (the payload says why: a frame out of bounds, a failed write).
"""

from libc.errno cimport EINTR, errno
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport abort, free, malloc, realloc
from libc.stdio cimport snprintf
from libc.string cimport memcpy, memmove, memset, strerror, strncpy, strlen
from posix.unistd cimport write

from meridian_hotpath.journal_sync cimport (
    JournalSyncer,
    State,
    pthread_cond_destroy,
    pthread_cond_init,
    pthread_cond_signal,
    pthread_cond_t,
    pthread_cond_wait,
    pthread_create,
    pthread_join,
    pthread_mutex_destroy,
    pthread_mutex_init,
    pthread_mutex_lock,
    pthread_mutex_t,
    pthread_mutex_unlock,
    pthread_t,
    syncer_written,
    wake_fd,
)


cdef extern from "<sys/socket.h>" nogil:
    ssize_t recv(int fd, void *buf, size_t n, int flags)
    ssize_t send(int fd, const void *buf, size_t n, int flags)
    int shutdown(int fd, int how)
    int SHUT_RDWR
    int MSG_NOSIGNAL


cdef enum:
    ENDED = 0  # an item's kind: the link ended
    RECORDS = 2
    ACK = 3
    DIVERGED = 4
    REFUSE = 6
    LINK_HEADER = 5  # u32 length (of the kind and the payload) | u8 kind
    RECORDS_BODY = 18  # u16 epoch | u64 first seq | u64 last seq
    RECORD_OVERHEAD = 16  # u32 word (length | epoch << 16) | u64 seq | ... | u32 crc
    MAX_LINK_FRAME = 16 * 1024 * 1024
    RING = 1024  # writes not yet known durable that the unsynced window can track
    FIRST_BUFFER = 256 * 1024


cdef struct Item:
    Item *next
    int kind
    int written
    size_t length
    char *data


cdef struct Receiver:
    pthread_mutex_t lock  # the queue, paused, stopping, running
    pthread_cond_t resumed
    pthread_mutex_t send_lock  # whole frames on the socket: the thread's ACKs and the loop's sends
    int sock
    int notify_fd  # an eventfd: written when the queue goes from empty to not empty
    State *syncer
    # the fast path's parameters: set by start/resume while the thread waits, read by the thread
    int journal_fd
    uint64_t segment_size
    uint64_t segment_limit
    uint64_t next_seq
    uint32_t epoch
    uint32_t known_epoch
    uint64_t window
    uint64_t total  # bytes this thread wrote (plus the unsynced bytes it started with)
    uint64_t durable_total
    uint64_t ring_seq[RING]
    uint64_t ring_total[RING]
    int ring_head
    int ring_len
    Item *head
    Item *tail
    int paused
    int stopping
    int running
    uint64_t fast_frames
    uint64_t handed_frames
    char ended[160]


cdef bint push(Receiver *r, int kind, const char *data, size_t length, int written) noexcept nogil:
    """Queue an item for the loop; True when the loop must be woken (the queue was empty)."""
    cdef Item *item = <Item *> malloc(sizeof(Item))
    cdef bint was_empty
    if item != NULL:
        item.data = <char *> malloc(length if length > 0 else 1)
    if item == NULL or item.data == NULL:
        abort()  # a written batch the loop never hears of would part the engine from the journal
    item.next = NULL
    item.kind = kind
    item.written = written
    item.length = length
    if length > 0:
        memcpy(item.data, data, length)
    pthread_mutex_lock(&r.lock)
    was_empty = r.head == NULL
    if r.tail == NULL:
        r.head = item
    else:
        r.tail.next = item
    r.tail = item
    pthread_mutex_unlock(&r.lock)
    return was_empty


cdef void send_all(Receiver *r, const char *data, size_t length) noexcept nogil:
    cdef ssize_t sent
    cdef size_t done = 0
    pthread_mutex_lock(&r.send_lock)
    while done < length:
        sent = send(r.sock, data + done, length - done, MSG_NOSIGNAL)
        if sent < 0:
            if errno == EINTR:
                continue
            break  # the link is gone: the reading side sees it too
        done += <size_t> sent
    pthread_mutex_unlock(&r.send_lock)


cdef void send_ack(Receiver *r, uint64_t written) noexcept nogil:
    cdef char frame[LINK_HEADER + 16]
    cdef uint32_t length = 17
    cdef uint64_t durable
    pthread_mutex_lock(&r.syncer.lock)
    durable = r.syncer.durable
    pthread_mutex_unlock(&r.syncer.lock)
    memcpy(frame, &length, 4)
    frame[4] = ACK
    memcpy(frame + 5, &written, 8)
    memcpy(frame + 13, &durable, 8)
    send_all(r, frame, LINK_HEADER + 16)


cdef uint64_t write_fast(Receiver *r, const char *p, size_t n) noexcept nogil:
    """Write a RECORDS frame's records if it is the ordinary case (module docstring): the last seq
    written, or 0 when the frame is for the loop."""
    cdef uint16_t epoch
    cdef uint64_t first, last, seq, record_seq, durable
    cdef uint32_t word
    cdef const char *records
    cdef size_t length, offset, done
    cdef ssize_t wrote
    if n < RECORDS_BODY:
        return 0
    memcpy(&epoch, p, 2)
    memcpy(&first, p + 2, 8)
    memcpy(&last, p + 10, 8)
    if epoch != r.epoch or first != r.next_seq or last < first or r.segment_size >= r.segment_limit:
        return 0
    records = p + RECORDS_BODY
    length = n - RECORDS_BODY
    offset = 0
    seq = first
    while offset < length:
        if length - offset < RECORD_OVERHEAD:
            return 0
        memcpy(&word, records + offset, 4)
        memcpy(&record_seq, records + offset + 4, 8)
        if (word >> 16) > r.known_epoch or record_seq != seq:
            return 0
        offset += (word & 0xFFFF) + RECORD_OVERHEAD
        seq += 1
    if offset != length or seq != last + 1:
        return 0
    # the unsynced window: bytes written and not yet known durable
    pthread_mutex_lock(&r.syncer.lock)
    durable = r.syncer.durable
    pthread_mutex_unlock(&r.syncer.lock)
    while r.ring_len > 0 and r.ring_seq[r.ring_head] <= durable:
        r.durable_total = r.ring_total[r.ring_head]
        r.ring_head = (r.ring_head + 1) % RING
        r.ring_len -= 1
    if r.ring_len == RING or length > r.window or r.total + length - r.durable_total > r.window:
        return 0
    done = 0
    while done < length:
        wrote = write(r.journal_fd, records + done, length - done)
        if wrote < 0:
            if errno == EINTR:
                continue
            if done == 0:
                return 0  # the loop writes it and meets the same error, as the reference link does
            strncpy(r.ended, strerror(errno), 150)
            return <uint64_t> -1
        done += <size_t> wrote
    r.segment_size += length
    r.next_seq = last + 1
    r.total += length
    r.ring_seq[(r.ring_head + r.ring_len) % RING] = last
    r.ring_total[(r.ring_head + r.ring_len) % RING] = r.total
    r.ring_len += 1
    syncer_written(r.syncer, last)
    return last


cdef bint wait_for_loop(Receiver *r) noexcept nogil:
    """Wait until the loop has handled the frame it was given (``resume``); False when stopping."""
    cdef bint go_on
    pthread_mutex_lock(&r.lock)
    r.paused = 1
    while r.paused and not r.stopping:
        pthread_cond_wait(&r.resumed, &r.lock)
    go_on = not r.stopping
    pthread_mutex_unlock(&r.lock)
    return go_on


cdef void *receive(void *arg) noexcept nogil:
    cdef Receiver *r = <Receiver *> arg
    cdef size_t capacity = FIRST_BUFFER
    cdef char *buffer = <char *> malloc(capacity)
    cdef char *grown
    cdef size_t have = 0, offset, frame_end
    cdef ssize_t got
    cdef uint32_t length
    cdef uint64_t acked, wrote
    cdef int kind
    cdef bint wake, done = False
    if buffer == NULL:
        strncpy(r.ended, b"out of memory", 150)
        done = True
    while not done:
        got = recv(r.sock, buffer + have, capacity - have, 0)
        if got < 0 and errno == EINTR:
            continue
        if got <= 0:
            break  # closed or reset: the link ended (the loop reconnects, as it does on the loop)
        have += <size_t> got
        offset = 0
        acked = 0
        wake = False
        while have - offset >= LINK_HEADER:
            memcpy(&length, buffer + offset, 4)
            if length < 1 or length > MAX_LINK_FRAME:
                snprintf(r.ended, 150, b"replication frame of %u bytes", length)
                done = True
                break
            frame_end = offset + 4 + length
            if frame_end > have:
                break
            kind = <uint8_t> buffer[offset + 4]
            wrote = write_fast(r, buffer + offset + LINK_HEADER, length - 1) if kind == RECORDS else 0
            if wrote == <uint64_t> -1:
                done = True
                break
            if wrote != 0:
                acked = wrote
                r.fast_frames += 1
                wake = push(r, RECORDS, buffer + offset + LINK_HEADER, length - 1, 1) or wake
                offset = frame_end
                continue
            # for the loop: what was written so far is acknowledged first
            if acked != 0:
                send_ack(r, acked)
                acked = 0
            if wake:
                wake_fd(r.notify_fd)
                wake = False
            r.handed_frames += 1
            if push(r, kind, buffer + offset + LINK_HEADER, length - 1, 0):
                wake_fd(r.notify_fd)
            offset = frame_end
            if kind == RECORDS:
                if not wait_for_loop(r):
                    done = True
                    break
            elif kind == DIVERGED or kind == REFUSE:
                done = True  # the loop closes the link
                break
        if acked != 0:
            send_ack(r, acked)
        if wake:
            wake_fd(r.notify_fd)
        if done:
            break
        memmove(buffer, buffer + offset, have - offset)
        have -= offset
        if have >= 4:
            memcpy(&length, buffer, 4)
            if 4 + <size_t> length > capacity and length <= MAX_LINK_FRAME:
                grown = <char *> realloc(buffer, 4 + <size_t> length)
                if grown == NULL:
                    strncpy(r.ended, b"out of memory", 150)
                    break
                buffer = grown
                capacity = 4 + <size_t> length
    free(buffer)
    if push(r, ENDED, r.ended, strlen(r.ended), 0):
        wake_fd(r.notify_fd)
    pthread_mutex_lock(&r.lock)
    r.running = 0
    pthread_mutex_unlock(&r.lock)
    return NULL


cdef void halt(Receiver *r, pthread_t thread) noexcept nogil:
    """Stop the thread: wake it if it waits for the loop, end its read (shut the socket down), join."""
    pthread_mutex_lock(&r.lock)
    r.stopping = 1
    pthread_cond_signal(&r.resumed)
    pthread_mutex_unlock(&r.lock)
    shutdown(r.sock, SHUT_RDWR)
    pthread_join(thread, NULL)


cdef class ReplicaReceiver:
    """A standby's native receive thread on one link; see the module docstring."""

    cdef Receiver r
    cdef pthread_t thread
    cdef bint started
    cdef JournalSyncer _syncer  # kept alive: the thread wakes it

    def __cinit__(self):
        memset(&self.r, 0, sizeof(Receiver))
        pthread_mutex_init(&self.r.lock, NULL)
        pthread_mutex_init(&self.r.send_lock, NULL)
        pthread_cond_init(&self.r.resumed, NULL)
        self.started = False

    def __init__(self, int sock, JournalSyncer syncer, int notify_fd, uint64_t window):
        """``sock``: the connected link (blocking); ``syncer``: the journal's; ``notify_fd``: an
        eventfd the loop watches; ``window``: the journal's unsynced window in bytes."""
        self.r.sock = sock
        self.r.notify_fd = notify_fd
        self._syncer = syncer
        self.r.syncer = &syncer.s
        self.r.window = window

    cdef void _set(self, int journal_fd, uint64_t segment_size, uint64_t segment_limit, uint64_t next_seq,
                   uint32_t epoch, uint32_t known_epoch, uint64_t unsynced_bytes) noexcept nogil:
        self.r.journal_fd = journal_fd
        self.r.segment_size = segment_size
        self.r.segment_limit = segment_limit
        self.r.next_seq = next_seq
        self.r.epoch = epoch
        self.r.known_epoch = known_epoch
        # what the journal holds unsynced counts against the window until the disk passes it
        self.r.total = unsynced_bytes
        self.r.durable_total = 0
        self.r.ring_head = 0
        self.r.ring_len = 0
        if unsynced_bytes > 0 and next_seq > 0:
            self.r.ring_seq[0] = next_seq - 1
            self.r.ring_total[0] = unsynced_bytes
            self.r.ring_len = 1

    def start(self, int journal_fd, uint64_t segment_size, uint64_t segment_limit, uint64_t next_seq,
              uint32_t epoch, uint32_t known_epoch, uint64_t unsynced_bytes):
        """Start reading with the journal as it is: its segment's fd and size, the segment limit, the
        next seq, the epoch the link follows (0: none yet), the newest epoch of the epoch log, and
        the bytes written but not known durable."""
        if self.started:
            raise RuntimeError("the receiver runs already")
        self._set(journal_fd, segment_size, segment_limit, next_seq, epoch, known_epoch, unsynced_bytes)
        self.r.running = 1
        if pthread_create(&self.thread, NULL, receive, &self.r) != 0:
            self.r.running = 0
            raise OSError("cannot start the replica receiver thread")
        self.started = True

    def resume(self, int journal_fd, uint64_t segment_size, uint64_t segment_limit, uint64_t next_seq,
               uint32_t epoch, uint32_t known_epoch, uint64_t unsynced_bytes):
        """The loop handled the RECORDS frame it was given: go on, with the journal as it now is."""
        with nogil:
            pthread_mutex_lock(&self.r.lock)
            self._set(journal_fd, segment_size, segment_limit, next_seq, epoch, known_epoch, unsynced_bytes)
            self.r.paused = 0
            pthread_cond_signal(&self.r.resumed)
            pthread_mutex_unlock(&self.r.lock)

    def take(self):
        """Every queued item, oldest first: ``[(kind, payload, written), ...]``."""
        cdef Item *item
        cdef Item *following
        with nogil:
            pthread_mutex_lock(&self.r.lock)
            item = self.r.head
            self.r.head = NULL
            self.r.tail = NULL
            pthread_mutex_unlock(&self.r.lock)
        items = []
        while item != NULL:
            following = item.next
            if item.data != NULL:
                items.append((item.kind, item.data[:item.length], bool(item.written)))
                free(item.data)
            free(item)
            item = following
        return items

    def send(self, const unsigned char[::1] frame):
        """Send a whole frame (between the thread's ACKs, never inside one)."""
        cdef size_t length = frame.shape[0]
        if length == 0:
            return
        with nogil:
            send_all(&self.r, <const char *> &frame[0], length)

    def stop(self):
        """Stop reading (the socket is shut down) and wait for the thread (idempotent)."""
        if not self.started:
            return
        with nogil:
            halt(&self.r, self.thread)
        self.started = False

    @property
    def running(self):
        return bool(self.r.running)

    @property
    def fast_frames(self):
        """RECORDS frames the thread wrote and acknowledged itself."""
        return self.r.fast_frames

    @property
    def handed_frames(self):
        """Frames the thread handed to the loop unwritten."""
        return self.r.handed_frames

    def __dealloc__(self):
        cdef Item *item
        cdef Item *following
        if self.started:
            halt(&self.r, self.thread)
        item = self.r.head
        while item != NULL:
            following = item.next
            free(item.data)
            free(item)
            item = following
        pthread_cond_destroy(&self.r.resumed)
        pthread_mutex_destroy(&self.r.send_lock)
        pthread_mutex_destroy(&self.r.lock)
