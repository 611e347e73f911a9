"""Declarations the journal's syncer shares with the standby's native receiver (replica_receiver)."""

from libc.stdint cimport uint64_t


cdef extern from "<unistd.h>" nogil:
    int fdatasync(int fd)


cdef extern from "<pthread.h>" nogil:
    ctypedef unsigned long pthread_t
    ctypedef struct pthread_mutex_t:
        pass
    ctypedef struct pthread_cond_t:
        pass
    int pthread_create(pthread_t *thread, void *attr, void *(*start)(void *) noexcept nogil, void *arg)
    int pthread_join(pthread_t thread, void **result)
    int pthread_mutex_init(pthread_mutex_t *mutex, void *attr)
    int pthread_mutex_destroy(pthread_mutex_t *mutex)
    int pthread_mutex_lock(pthread_mutex_t *mutex)
    int pthread_mutex_unlock(pthread_mutex_t *mutex)
    int pthread_cond_init(pthread_cond_t *cond, void *attr)
    int pthread_cond_destroy(pthread_cond_t *cond)
    int pthread_cond_wait(pthread_cond_t *cond, pthread_mutex_t *mutex)
    int pthread_cond_signal(pthread_cond_t *cond)


cdef enum:
    MAX_RETIRED = 64
    MAX_NOTIFY = 4
    N_BUCKETS = 24  # fdatasync times: bucket k holds [2^k, 2^(k+1)) microseconds, the last everything above


cdef struct State:
    pthread_mutex_t lock
    pthread_cond_t wake
    int fd  # the segment being written
    int dir_fd  # the journal directory
    int dir_pending  # a segment was created: fsync the directory before counting it durable
    int retired[MAX_RETIRED]  # segments rotated away from: fsync, then close
    int n_retired
    int notify[MAX_NOTIFY]
    int n_notify
    uint64_t written  # last seq the writer handed to the page cache
    uint64_t durable  # last seq made durable
    int error  # errno of a failed sync (0: none)
    int stopping
    int running
    uint64_t syncs
    uint64_t sync_ns_total
    uint64_t sync_ns_last
    uint64_t sync_ns_max
    uint64_t buckets[N_BUCKETS]
    uint64_t *durable_out  # where the durable seq is also stored (a shared page), or NULL
    uint64_t min_gap_ns  # at least this long from one fdatasync's start to the next (0: none)


cdef class JournalSyncer:
    cdef State s
    cdef pthread_t thread
    cdef bint started
    cdef object _keep  # objects whose memory the state points into (the shared durable page)


cdef void syncer_written(State *s, uint64_t seq) noexcept nogil
cdef void wake_fd(int fd) noexcept nogil
