# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# cython: nonecheck=False, infer_types=False, embedsignature=True
"""The native matching core: price-time priority books over wire frames, compiled with gcc.

``MatchingEngine`` keeps its state in C arrays of plain structs, never in Python objects:

* orders live in a pool of ``Order`` structs (reused through a free list) and leave it as soon as
  they are finished (filled, cancelled, expired); memory follows the live orders;
* each book side is an array of price levels sorted by key (a bid's key is its price, an ask's
  minus its price, so the best level is the last on both sides), each level an intrusive FIFO of
  its orders: adding to a level, matching from its front and cancelling from its middle are O(1);
* a live order is found by its id through a paged table (ids are handed out in sequence, so a page
  of 256 ids is an array; a page goes when its last live order does): no hashing, no rehash;
* duplicate detection keys (client order id, account) for the trading day. An entry per id keeps
  what a duplicate's answer needs once the order is finished; END_OF_DAY (engine-wide) forgets the
  finished orders' ids. Ids numbered as FIX sessions number them (a prefix of at most 12
  characters, then a rising decimal counter) are indexed per (prefix, account) stream: an id whose
  number is above its stream's last is new without a lookup, and is appended; any other id goes to
  an open-addressed hash table that grows by migrating a few slots per insert (no stop-the-world
  rehash), its slot prefetched a frame ahead by ``feed``. See ``_dup_find``.

Requests enter three ways, all through the same C code:

* ``feed(data, offset)``: the node's path. A buffer of wire frames in; the encoded answers (held
  until their journal record is safe), the immediate answers (heartbeats) and the journal records
  (``u32 length | u64 seq | frame | u32 crc32c``) out, with no Python object per message;
* ``submit``/``cancel``/``replace``/``admin`` with plain values: one request, its encoded answer;
* ``process(request)``: the per-call API of the reference engine (message tuples in and out), for
  tests and tools.

The rules are those of ``reference.ReferenceEngine`` (the plain-Python model the tests hold this
engine to, answer for answer, byte for byte, checksum for checksum); its module docstring lists
them.
"""

cimport cython
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, qsort, realloc
from libc.string cimport memcmp, memcpy, memmove, memset
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_Check

import hashlib
import struct

from meridian.domain import Instrument
from meridian.protocol import ProtocolError, decode_stream
from meridian_hotpath.engine.state import (
    EngineState,
    OrderRecord,
    OrderView,
    book_checksum,
    decode_snapshot as decode_json_snapshot,
    engine_checksum,
)

cdef extern from *:
    void __builtin_prefetch(const void *address) nogil

cdef extern from "native_support.h" nogil:
    uint64_t mn_load_u64(const char *p)
    int64_t mn_load_i64(const char *p)
    uint32_t mn_load_u32(const char *p)
    uint16_t mn_load_u16(const char *p)
    void mn_store_u64(char *p, uint64_t v)
    void mn_store_i64(char *p, int64_t v)
    void mn_store_u32(char *p, uint32_t v)
    void mn_store_u16(char *p, uint16_t v)
    void mn_crc_init()
    uint32_t mn_crc32c(uint32_t crc, const char *buf, size_t length)
    uint32_t mn_crc32c_table(uint32_t crc, const char *buf, size_t length)
    int mn_crc32c_is_hardware()
    uint32_t mn_crc32c_record(uint32_t word, uint64_t seq, const char *frame, size_t length)
    bint mn_valid_text(const char *p, int width)
    uint64_t mn_hash_bytes(const char *p, size_t length)
    int mn_coid_split(const char *coid, uint64_t *number)
    void mn_stream_key(uint64_t *w, const char *key, int start)
    uint64_t mn_stream_hash(const uint64_t *w)
    bint mn_stream_key_equal(const uint64_t *a, const uint64_t *b)
    void *mn_table_alloc(size_t size)
    void mn_table_free(void *p, size_t size)
    void mn_touch(void *p, size_t size)
    void mn_zero(char *p, size_t size)

mn_crc_init()

# ---- wire constants (the protocol's numbering; tests pin them to meridian.protocol) ----------------

cdef enum:
    PROTOCOL_VERSION = 1
    HEADER_SIZE = 16
    MAX_FRAME_SIZE = 512
    T_NEW_ORDER = 1
    T_CANCEL = 2
    T_REPLACE = 3
    T_HEARTBEAT = 4
    T_SNAPSHOT_REQUEST = 5
    T_ADMIN = 6
    T_NEW_STOP_ORDER = 7
    T_LOGON = 8
    T_BOOK_EXPORT = 9
    T_ACK = 20
    T_REJECT = 21
    T_FILL = 22
    T_CANCEL_ACK = 23
    T_SNAPSHOT = 24
    T_ADMIN_ACK = 25
    T_PROTOCOL_REJECT = 26
    T_LOGON_CHALLENGE = 27
    T_LOGON_ACK = 28
    T_RESTING_ORDER = 29
    T_BOOK_EXPORTED = 30
    SZ_NEW_ORDER = 80
    SZ_CANCEL = 48
    SZ_REPLACE = 64
    SZ_HEARTBEAT = 24
    SZ_SNAPSHOT_REQUEST = 24
    SZ_BOOK_EXPORT = 24
    SZ_RESTING_ORDER = 108
    SZ_BOOK_EXPORTED = 48
    SZ_ADMIN = 32
    SZ_NEW_STOP_ORDER = 88
    SZ_ACK = 116
    SZ_REJECT = 68
    SZ_FILL = 168
    SZ_CANCEL_ACK = 92
    SZ_SNAPSHOT = 32
    SZ_ADMIN_ACK = 40
    SZ_PROTOCOL_REJECT = 24
    SZ_LOGON = 112
    SZ_LOGON_CHALLENGE = 80
    SZ_LOGON_ACK = 40
    FLAG_LAST = 1
    FLAG_DUPLICATE = 2
    FLAG_REPLACED = 4
    SYMBOL_LEN = 8
    ACCOUNT_LEN = 16
    COID_LEN = 20
    KEY_LEN = 36  # client order id (20) then account (16): contiguous in a NEW_ORDER frame

cdef enum:
    BUY = 1
    SELL = 2
    LIMIT = 1
    MARKET = 2
    GTC = 1
    IOC = 2
    FOK = 3
    DAY = 4
    POST_ONLY = 0x01
    STP_SHIFT = 1
    STP_MASK = 0x06
    KNOWN_ORDER_FLAGS = 0x07
    STP_CANCEL_NEWEST = 0
    STP_CANCEL_OLDEST = 1
    STP_ALLOW = 3
    STATUS_NEW = 1
    STATUS_PARTIALLY_FILLED = 2
    STATUS_FILLED = 3
    STATUS_CANCELLED = 4
    STATUS_PENDING_TRIGGER = 8
    UNKNOWN_SYMBOL = 1
    INVALID_QUANTITY = 2
    LOT_SIZE = 3
    TICK_SIZE = 4
    PRICE_BAND = 5
    POST_ONLY_WOULD_CROSS = 6
    INVALID_PRICE = 7
    UNKNOWN_ORDER = 9
    NOT_ORDER_OWNER = 10
    TRADING_HALTED = 11
    INVALID_ORDER = 12
    REPLACE_NOT_ALLOWED = 13
    CANCEL_USER = 1
    CANCEL_IOC_REMAINDER = 2
    CANCEL_FOK_UNFILLED = 3
    CANCEL_SELF_TRADE = 4
    CANCEL_END_OF_DAY = 5
    CANCEL_NO_LIQUIDITY = 6
    ADMIN_HALT = 1
    ADMIN_RESUME = 2
    ADMIN_END_OF_DAY = 3

# ProtocolRejectCode values, and what ``feed`` reports when it stops early.
cdef enum:
    PR_MALFORMED = 1
    PR_UNSUPPORTED_VERSION = 2
    PR_UNKNOWN_TYPE = 3
    PR_BAD_LENGTH = 4
    PR_BAD_FIELD = 5
    PR_NOT_A_REQUEST = 6
    PR_NOT_PERMITTED = 13
    PR_WRONG_ACCOUNT = 14
    PR_LAST_CODE = 14
    # A session's permissions (meridian.session_auth), checked per frame by ``feed``.
    PERM_TRADE = 1  # orders, stop orders, cancels, replaces
    PERM_ADMIN = 2  # HALT / RESUME / END_OF_DAY, SNAPSHOT_REQUEST and BOOK_EXPORT
    PERM_ALL = 3

FEED_DONE = 0  # every complete frame consumed (a partial frame may remain after the offset)
FEED_SNAPSHOT_REQUEST = 1  # stopped after a SNAPSHOT_REQUEST frame: the caller answers it
FEED_PROTOCOL_ERROR = 2  # stopped at a frame that must be refused with ProtocolReject(code)
FEED_BOOK_EXPORT = 3  # stopped after a BOOK_EXPORT frame: the caller answers it (``detail``: symbol)

# Outcome counters: [request type][outcome]
cdef enum:
    K_NEW_ORDER = 0
    K_CANCEL = 1
    K_REPLACE = 2
    K_ADMIN = 3
    K_HEARTBEAT = 4
    K_NEW_STOP_ORDER = 5
    N_KINDS = 6
    O_ACCEPTED = 0
    O_REJECTED = 1
    O_CANCELLED = 2
    O_DUPLICATE = 3
    O_OTHER = 4
    N_OUTCOMES = 5

REQUEST_KINDS = ("new_order", "cancel", "replace", "admin", "heartbeat", "new_stop_order")
OUTCOMES = ("accepted", "rejected", "cancelled", "duplicate", "other")

cdef int64_t MAX_PRICE_VALUE = 10 ** 15
cdef int64_t ANY_PRICE_KEY = -(10 ** 15) - 1  # every key is >= this: a market order crosses every level
cdef uint32_t NIL = 0xFFFFFFFF
cdef uint32_t STOP_WAITING = 0xFFFFFFFE  # an Order's ``level`` while it is a stop order not triggered yet
cdef uint64_t LOW32 = 0xFFFFFFFF
cdef enum:
    PAGE_BITS = 8
    PAGE_SIZE = 256
    DUP_MIGRATE_STEP = 32
    LEVEL_WINDOW = 512  # slots per book side of the price -> level cache
    MAX_STREAMS = 1 << 14  # numbered client-order-id streams per day; ids past them use the hash table
    RECORD_HEADER = 12  # u32 frame length | u64 seq
    RECORD_OVERHEAD = 16  # header + u32 crc

SNAPSHOT_MAGIC = b"MRDNENG2"
SNAPSHOT_HEADER = "<8sIQQQBI"  # magic, version, seq, trade id, order count, global halt, journal epoch
SNAPSHOT_VERSION = 3  # 3: each book's waiting stop orders follow its resting orders; 2 (none) still restores
SNAPSHOT_VERSIONS = (2, 3)

# ---- state -----------------------------------------------------------------------------------------

cdef struct Order:
    uint64_t order_id
    int64_t price
    int64_t quantity
    int64_t leaves
    int64_t filled
    int64_t cancelled
    uint32_t prev  # in its level; a waiting stop's stop price (low 32 bits)
    uint32_t next  # in its level; the free list's link while the slot is free; a waiting stop's stop
                   # price (high 32 bits)
    uint32_t level  # STOP_WAITING: a stop order not triggered yet (in its book's ``stops``, not a level)
    uint32_t dup  # index + 1 of its client-order-id entry (0: none)
    uint16_t book
    uint8_t side
    uint8_t order_type
    uint8_t tif
    uint8_t flags
    char key[KEY_LEN]  # client order id (20 bytes) then account (16), NUL padded


cdef struct Level:
    int64_t price
    int64_t total
    uint32_t head
    uint32_t tail
    uint32_t count
    uint32_t next_free


cdef struct LevelRef:
    int64_t key
    uint32_t level


cdef struct SideBook:
    LevelRef *refs
    uint32_t n
    uint32_t cap


cdef struct StopRef:
    int64_t key  # buy stops: -stop price; sell stops: stop price (the next to trigger is the last)
    uint64_t order_id  # ties: the lower id triggers first, so it sits nearer the end
    uint32_t slot


cdef struct StopSide:
    StopRef *refs  # sorted by (key ascending, order id descending)
    uint32_t n
    uint32_t cap


cdef struct Book:
    char symbol[SYMBOL_LEN]
    uint64_t symbol_key
    int64_t tick
    int64_t lot
    int64_t max_quantity
    int64_t reference_price
    int64_t band_bps
    int64_t band_low
    int64_t band_high
    int64_t last_price
    int halted
    int trading
    uint64_t trades
    SideBook sides[2]  # 0: bids, 1: asks
    StopSide stops[2]  # waiting stop orders: 0: buy stops, 1: sell stops
    uint32_t *window  # per side, LEVEL_WINDOW slots by price: NIL or a level of that side (a cache)


cdef struct DupEntry:
    char key[KEY_LEN]
    uint32_t slot  # the live order's slot; NIL once it is finished
    uint64_t order_id
    int64_t price
    int64_t quantity
    int64_t filled
    uint16_t book
    uint8_t side
    uint8_t status  # once finished: FILLED or CANCELLED
    uint8_t hashed  # indexed in the hash table (else in its stream)


cdef struct StreamRef:
    uint64_t number
    uint64_t entry  # index of its DupEntry


cdef struct Stream:
    uint64_t key[5]  # the ids' prefix (their digits cleared) then the account: mn_stream_key
    uint32_t n
    uint64_t last  # numbers above it are new to the stream; 0: a free table slot
    StreamRef *refs  # ascending numbers (the ids above the day's start; the live ones it began
                     # with are in the hash table)
    uint32_t cap


cdef struct DupProbe:  # a client order id's lookup, kept for its insert
    uint64_t number  # what its canonical decimal suffix spells
    uint64_t hash  # its hash-table hash (0: not computed yet)
    int64_t stream  # the stream table slot of its (prefix, account), -1: none yet
    int start  # where its digits start; -1: no canonical decimal suffix


cdef struct IdPage:
    uint32_t live
    uint32_t slots[PAGE_SIZE]


cdef struct Buf:
    char *data
    size_t length
    size_t capacity


cdef int buf_reserve(Buf *b, size_t extra) except -1:
    cdef size_t need = b.length + extra
    cdef size_t capacity
    cdef char *grown
    if need <= b.capacity:
        return 0
    capacity = b.capacity * 2 if b.capacity else 4096
    while capacity < need:
        capacity *= 2
    grown = <char *> realloc(b.data, capacity)
    if grown == NULL:
        raise MemoryError()
    b.data = grown
    b.capacity = capacity
    return 0


cdef void *doubled(void *items, uint32_t *cap, size_t item_size, uint32_t first) except NULL:
    """``items``, an array of ``cap[0]`` items of ``item_size`` bytes, reallocated to twice its
    capacity (``first`` items when it has none); ``cap[0]`` becomes the new capacity. On failure the
    array is left as it was and MemoryError raised."""
    cdef uint32_t capacity = cap[0] * 2 if cap[0] else first
    cdef void *grown = realloc(items, item_size * capacity)
    if grown == NULL:
        raise MemoryError()
    cap[0] = capacity
    return grown


cdef inline char *put_frame(Buf *b, uint8_t mtype, size_t size, uint64_t request_id) except NULL:
    buf_reserve(b, size)
    cdef char *p = b.data + b.length
    mn_zero(p, size)
    mn_store_u32(p, <uint32_t> (size - 4))
    p[4] = <char> PROTOCOL_VERSION
    p[5] = <char> mtype
    mn_store_u64(p + 8, request_id)
    b.length += size
    return p


cdef void finish_answer(Buf *b, size_t start, uint16_t flags) noexcept nogil:
    """Put ``flags`` on every frame of the answer that starts at ``start``, LAST on its final one."""
    cdef size_t at = start
    cdef size_t size
    while at < b.length:
        size = mn_load_u32(b.data + at) + 4
        if at + size >= b.length:
            mn_store_u16(b.data + at + 6, flags | FLAG_LAST)
        else:
            mn_store_u16(b.data + at + 6, flags)
        at += size


cdef inline bint valid_text(const char *p, int width) noexcept nogil:
    """A string field as the protocol decodes it: ASCII, no NUL before its NUL padding."""
    return mn_valid_text(p, width)


cdef inline int text_cmp(const char *a, const char *b, int width) noexcept nogil:
    return memcmp(a, b, width)


cdef inline bint is_blank(const char *p, int width) noexcept nogil:
    cdef int i
    for i in range(width):
        if p[i] != 0:
            return False
    return True


cdef extern from "Python.h":
    bint PyUnicode_IS_COMPACT_ASCII(object text)
    const char *PyUnicode_DATA(object text)
    Py_ssize_t PyUnicode_GET_LENGTH(object text)


cdef inline int put_text(object text, char *into, int width) except -1:
    """Copy ``text`` (ASCII, at most ``width`` bytes, no NUL) into a NUL padded field."""
    cdef Py_ssize_t size
    cdef const char *raw
    if PyUnicode_Check(text) and PyUnicode_IS_COMPACT_ASCII(text):  # the usual case: one memcpy
        size = PyUnicode_GET_LENGTH(text)
        raw = PyUnicode_DATA(text)
        if size <= width and not memchr_zero(raw, size):
            memset(into, 0, width)
            memcpy(into, raw, size)
            return 0
    return put_text_slow(text, into, width)


cdef int put_text_slow(object text, char *into, int width) except -1:
    cdef Py_ssize_t size
    cdef const char *raw
    if not PyUnicode_Check(text):
        raise ProtocolError("bad_field", f"expected a string, got {type(text).__name__}")
    raw = PyUnicode_AsUTF8AndSize(text, &size)
    if size > width:
        raise ProtocolError("bad_field", f"string {text!r} does not fit {width} bytes")
    memset(into, 0, width)
    memcpy(into, raw, size)
    if not valid_text(into, width) or memchr_zero(into, size):
        raise ProtocolError("bad_field", f"string {text!r} is not NUL-free ASCII")
    return 0


cdef inline bint memchr_zero(const char *p, Py_ssize_t size) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(size):
        if p[i] == 0:
            return True
    return False


cdef str text_of(const char *p, int width):
    cdef int end = width
    while end > 0 and p[end - 1] == 0:
        end -= 1
    return p[:end].decode("ascii")


cdef inline int64_t stop_price_of(Order *o) noexcept nogil:
    return <int64_t> ((<uint64_t> o.next << 32) | o.prev)


cdef int order_status(Order *o) noexcept nogil:
    if o.leaves > 0 and o.level == STOP_WAITING:
        return STATUS_PENDING_TRIGGER
    if o.leaves > 0:
        return STATUS_PARTIALLY_FILLED if o.filled > 0 else STATUS_NEW
    return STATUS_CANCELLED if o.cancelled > 0 else STATUS_FILLED


cdef int compare_u64(const void *a, const void *b) noexcept nogil:
    cdef uint64_t x = (<uint64_t *> a)[0]
    cdef uint64_t y = (<uint64_t *> b)[0]
    return -1 if x < y else (1 if x > y else 0)


def crc32c(data, uint32_t crc=0):
    """CRC32C of ``data`` continuing ``crc`` (google_crc32c.extend's meaning), as the journal uses it."""
    cdef const unsigned char[::1] view = data
    if view.shape[0] == 0:
        return crc
    return mn_crc32c(crc, <const char *> &view[0], view.shape[0])


def crc32c_software(data, uint32_t crc=0):
    """The table-driven CRC32C (what hosts without SSE4.2 run); the tests hold it to ``crc32c``."""
    cdef const unsigned char[::1] view = data
    if view.shape[0] == 0:
        return crc
    return mn_crc32c_table(crc, <const char *> &view[0], view.shape[0])


def crc32c_uses_hardware():
    return bool(mn_crc32c_is_hardware())


cdef class MatchingEngine:
    """Single-writer matching engine for many instruments; see the module docstring."""

    cdef Book *books
    cdef int nbooks
    cdef uint64_t *book_keys  # symbol key per book, for the lookup
    cdef Order *orders
    cdef uint32_t order_cap
    cdef uint32_t free_order
    cdef uint64_t live_orders
    cdef Level *levels
    cdef uint32_t level_cap
    cdef uint32_t free_level
    cdef IdPage **pages
    cdef size_t page_cap
    cdef size_t page_start
    cdef size_t page_len
    cdef uint64_t page_first
    cdef DupEntry *dups
    cdef size_t dup_len
    cdef size_t dup_cap
    cdef uint64_t *dup_index
    cdef size_t dup_mask
    cdef size_t dup_used
    cdef uint64_t *dup_old
    cdef size_t dup_old_mask
    cdef size_t dup_migrated
    cdef size_t dup_initial
    cdef size_t dup_reserved  # entries kept allocated across days (what reserve/preallocate asked)
    cdef Stream *streams  # open-addressed by (prefix, account)
    cdef size_t stream_mask
    cdef size_t stream_count
    cdef Buf out
    cdef Buf now
    cdef Buf journal
    cdef uint64_t journal_first
    cdef uint32_t *fire_queue  # stop orders triggered and not fired yet (empty between requests)
    cdef uint32_t fire_len
    cdef uint32_t fire_cap
    cdef uint64_t counts[N_KINDS][N_OUTCOMES]
    cdef public uint64_t seq
    cdef public uint64_t trade_id
    cdef public uint64_t order_count
    cdef public int last_flags
    cdef public uint32_t journal_epoch  # the leadership epoch this engine's journal records carry
    cdef public bint global_halt
    cdef readonly dict instruments
    cdef list _symbols  # book index -> symbol str

    def __cinit__(self):
        self.books = NULL
        self.orders = NULL
        self.levels = NULL
        self.pages = NULL
        self.dups = NULL
        self.dup_index = NULL
        self.dup_old = NULL
        self.streams = NULL
        self.stream_mask = 0
        self.stream_count = 0
        self.book_keys = NULL
        self.fire_queue = NULL
        self.fire_len = 0
        self.fire_cap = 0
        memset(&self.out, 0, sizeof(Buf))
        memset(&self.now, 0, sizeof(Buf))
        memset(&self.journal, 0, sizeof(Buf))
        memset(self.counts, 0, sizeof(self.counts))

    def __init__(self, instruments, trade_id_base=0, expected_client_order_ids=1 << 20,
                 expected_live_orders=4096, preallocate=False):
        """``trade_id_base`` is the trade id before the first trade (the node's number in its top
        bits). ``expected_client_order_ids`` (a trading day's) and ``expected_live_orders`` size the
        client-order-id table and the order pool, which grow past them; with ``preallocate`` their
        memory is also touched now (the node does this at start), not by the first orders."""
        cdef int i
        cdef Book *book
        items = list(instruments)
        if not 0 <= trade_id_base < (1 << 64):
            raise ValueError(f"trade id base must be a u64 below {1 << 64}, got {trade_id_base}")
        self.instruments = {}
        for instrument in items:
            if instrument.symbol in self.instruments:
                raise ValueError(f"instrument {instrument.symbol} given twice")
            self.instruments[instrument.symbol] = instrument
        if not items or len(items) > 65535:
            raise ValueError("an engine needs 1 to 65535 instruments")
        self.nbooks = len(items)
        self.books = <Book *> malloc(sizeof(Book) * self.nbooks)
        self.book_keys = <uint64_t *> malloc(sizeof(uint64_t) * self.nbooks)
        if self.books == NULL or self.book_keys == NULL:
            raise MemoryError()
        memset(self.books, 0, sizeof(Book) * self.nbooks)
        self._symbols = []
        for i in range(self.nbooks):
            instrument = items[i]
            book = &self.books[i]
            put_text(instrument.symbol, book.symbol, SYMBOL_LEN)
            book.symbol_key = mn_load_u64(book.symbol)
            self.book_keys[i] = book.symbol_key
            book.tick = instrument.tick_size
            book.lot = instrument.lot_size
            book.max_quantity = instrument.max_order_quantity
            book.reference_price = instrument.reference_price
            book.band_bps = instrument.band_bps
            book.trading = 1
            book.window = <uint32_t *> malloc(sizeof(uint32_t) * 2 * LEVEL_WINDOW)
            if book.window == NULL:
                raise MemoryError()
            memset(book.window, 0xFF, sizeof(uint32_t) * 2 * LEVEL_WINDOW)
            self._set_last_price(book, 0)
            self._symbols.append(instrument.symbol)
        self.seq = 0
        self.trade_id = trade_id_base
        self.order_count = 0
        self.last_flags = 0
        self.global_halt = False
        self.free_order = NIL
        self.free_level = NIL
        self.dup_initial = 16
        while self.dup_initial < 2 * expected_client_order_ids:
            self.dup_initial *= 2
        self._dup_reset(self.dup_initial)
        self._grow_orders(max(16, expected_live_orders))
        if preallocate:
            self.dup_reserved = expected_client_order_ids
            self._reserve_dups(expected_client_order_ids)
            memset(self.dup_index, 0, sizeof(uint64_t) * (self.dup_mask + 1))
            memset(self.orders, 0, sizeof(Order) * self.order_cap)
            memset(self.dups, 0, sizeof(DupEntry) * self.dup_cap)
            self.free_order = NIL
            self._link_free_orders(0)

    def __dealloc__(self):
        cdef int i
        cdef size_t p
        if self.books != NULL:
            for i in range(self.nbooks):
                free(self.books[i].sides[0].refs)
                free(self.books[i].sides[1].refs)
                free(self.books[i].stops[0].refs)
                free(self.books[i].stops[1].refs)
                free(self.books[i].window)
            free(self.books)
        free(self.fire_queue)
        free(self.book_keys)
        free(self.orders)
        free(self.levels)
        if self.pages != NULL:
            for p in range(self.page_start, self.page_start + self.page_len):
                free(self.pages[p])
            free(self.pages)
        free(self.dups)
        if self.dup_index != NULL:
            mn_table_free(self.dup_index, sizeof(uint64_t) * (self.dup_mask + 1))
        if self.dup_old != NULL:
            mn_table_free(self.dup_old, sizeof(uint64_t) * (self.dup_old_mask + 1))
        self._streams_free()
        free(self.out.data)
        free(self.now.data)
        free(self.journal.data)

    # ---- books ---------------------------------------------------------------------------------

    cdef inline int _book_of(self, uint64_t key) noexcept nogil:
        cdef int i
        for i in range(self.nbooks):
            if self.book_keys[i] == key:
                return i
        return -1

    cdef void _set_last_price(self, Book *book, int64_t price) noexcept nogil:
        """Record the last trade price and move the price band around it (Instrument.band)."""
        cdef int64_t reference, width, low
        book.last_price = price
        reference = price if price else book.reference_price
        if reference <= 0 or book.band_bps == 0:
            book.band_low = 1
            book.band_high = MAX_PRICE_VALUE
            return
        width = reference * book.band_bps // 10000
        low = reference - width
        book.band_low = low if low > 1 else 1
        book.band_high = reference + width

    cdef inline int64_t _best_key(self, Book *book, int side_index) noexcept nogil:
        cdef SideBook *s = &book.sides[side_index]
        return s.refs[s.n - 1].key if s.n else ANY_PRICE_KEY - 1

    cdef uint32_t _find_ref(self, SideBook *s, int64_t key) noexcept nogil:
        """Position of the first ref with a key >= ``key``: a few steps from the best end (where most
        orders arrive and most cancels land), then a binary search."""
        cdef uint32_t lo = 0, hi = s.n, mid, steps = 0
        while hi > 0 and steps < 8:
            if s.refs[hi - 1].key < key:
                return hi
            hi -= 1
            steps += 1
        while lo < hi:
            mid = (lo + hi) >> 1
            if s.refs[mid].key < key:
                lo = mid + 1
            else:
                hi = mid
        return lo

    cdef uint32_t _new_level(self, int64_t price) except? 0xFFFFFFFF:
        cdef uint32_t index, i, capacity
        cdef Level *grown
        if self.free_level == NIL:
            capacity = self.level_cap * 2 if self.level_cap else 1024
            grown = <Level *> realloc(self.levels, sizeof(Level) * capacity)
            if grown == NULL:
                raise MemoryError()
            self.levels = grown
            for i in range(self.level_cap, capacity):
                self.levels[i].next_free = i + 1 if i + 1 < capacity else NIL
            self.free_level = self.level_cap
            self.level_cap = capacity
        index = self.free_level
        self.free_level = self.levels[index].next_free
        self.levels[index].price = price
        self.levels[index].total = 0
        self.levels[index].head = NIL
        self.levels[index].tail = NIL
        self.levels[index].count = 0
        return index

    cdef int _rest(self, uint32_t slot) except -1:
        """Put an order at the back of its price level (creating the level)."""
        cdef Order *o = &self.orders[slot]
        cdef Book *book = &self.books[o.book]
        cdef int side_index = 0 if o.side == BUY else 1
        cdef int64_t key = o.price if o.side == BUY else -o.price
        cdef SideBook *s = &book.sides[side_index]
        cdef uint32_t *cached = &book.window[side_index * LEVEL_WINDOW + (<uint64_t> o.price & (LEVEL_WINDOW - 1))]
        cdef uint32_t at
        cdef uint32_t level = cached[0]
        cdef Level *lv
        if level != NIL and self.levels[level].price == o.price:
            pass  # the level, from the cache
        elif s.n and s.refs[s.n - 1].key < key:  # a new best level
            level = self._rest_level(s, s.n, key, slot)
        else:
            at = self._find_ref(s, key)
            if at < s.n and s.refs[at].key == key:
                level = s.refs[at].level
            else:
                level = self._rest_level(s, at, key, slot)
        cached[0] = level
        o = &self.orders[slot]
        lv = &self.levels[level]
        o.level = level
        o.next = NIL
        o.prev = lv.tail
        if lv.tail == NIL:
            lv.head = slot
        else:
            self.orders[lv.tail].next = slot
        lv.tail = slot
        lv.count += 1
        lv.total += o.leaves
        return 0

    cdef uint32_t _rest_level(self, SideBook *s, uint32_t at, int64_t key, uint32_t slot) except? 0xFFFFFFFF:
        """A new level for order ``slot``'s price, its ref inserted at ``at``."""
        cdef uint32_t level = self._new_level(self.orders[slot].price)
        if s.n == s.cap:
            s.refs = <LevelRef *> doubled(s.refs, &s.cap, sizeof(LevelRef), 64)
        memmove(&s.refs[at + 1], &s.refs[at], sizeof(LevelRef) * (s.n - at))
        s.refs[at].key = key
        s.refs[at].level = level
        s.n += 1
        return level

    cdef void _drop_level(self, Book *book, int side_index, int64_t key, uint32_t level) noexcept nogil:
        cdef SideBook *s = &book.sides[side_index]
        cdef uint32_t at
        if s.n and s.refs[s.n - 1].key == key:
            s.n -= 1
        else:
            at = self._find_ref(s, key)
            memmove(&s.refs[at], &s.refs[at + 1], sizeof(LevelRef) * (s.n - at - 1))
            s.n -= 1
        self._uncache_level(book, side_index, level)
        self.levels[level].next_free = self.free_level
        self.free_level = level

    cdef inline void _uncache_level(self, Book *book, int side_index, uint32_t level) noexcept nogil:
        cdef uint32_t *cached = &book.window[side_index * LEVEL_WINDOW
                                             + (<uint64_t> self.levels[level].price & (LEVEL_WINDOW - 1))]
        if cached[0] == level:
            cached[0] = NIL

    cdef void _unlink(self, uint32_t slot) noexcept nogil:
        """Take a resting order out of its level (its leaves stay the caller's business)."""
        cdef Order *o = &self.orders[slot]
        cdef Level *lv = &self.levels[o.level]
        if o.prev == NIL:
            lv.head = o.next
        else:
            self.orders[o.prev].next = o.next
        if o.next == NIL:
            lv.tail = o.prev
        else:
            self.orders[o.next].prev = o.prev
        lv.count -= 1
        lv.total -= o.leaves
        if lv.count == 0:
            self._drop_level(&self.books[o.book], 0 if o.side == BUY else 1,
                             o.price if o.side == BUY else -o.price, o.level)

    # ---- order pool and the id table ------------------------------------------------------------

    cdef int _grow_orders(self, uint32_t capacity) except -1:
        cdef Order *grown = <Order *> realloc(self.orders, sizeof(Order) * capacity)
        cdef uint32_t first = self.order_cap
        if grown == NULL:
            raise MemoryError()
        self.orders = grown
        self.order_cap = capacity
        self._link_free_orders(first)
        return 0

    cdef void _link_free_orders(self, uint32_t first) noexcept nogil:
        """Chain the slots from ``first`` to the end of the pool onto the free list (all unused)."""
        cdef uint32_t i
        for i in range(first, self.order_cap):
            self.orders[i].next = i + 1 if i + 1 < self.order_cap else self.free_order
        if first < self.order_cap:
            self.free_order = first

    cdef int _reserve_dups(self, size_t capacity) except -1:
        cdef DupEntry *grown
        if capacity <= self.dup_cap:
            return 0
        grown = <DupEntry *> realloc(self.dups, sizeof(DupEntry) * capacity)
        if grown == NULL:
            raise MemoryError()
        self.dups = grown
        self.dup_cap = capacity
        return 0

    cdef uint32_t _new_order_slot(self) except? 0xFFFFFFFF:
        cdef uint32_t slot
        if self.free_order == NIL:
            self._grow_orders(self.order_cap * 2)
        slot = self.free_order
        self.free_order = self.orders[slot].next
        self.live_orders += 1
        return slot

    cdef int _map_id(self, uint64_t order_id, uint32_t slot) except -1:
        cdef uint64_t page = order_id >> PAGE_BITS
        cdef size_t index, shift, capacity
        cdef IdPage **grown
        cdef IdPage *p
        if self.page_len == 0:
            self.page_first = page
            self.page_start = 0
        if page < self.page_first:  # only while loading a snapshot out of id order
            shift = <size_t> (self.page_first - page)
            self._reserve_pages(self.page_len + shift)
            memmove(&self.pages[self.page_start + shift], &self.pages[self.page_start],
                    sizeof(IdPage *) * self.page_len)
            memset(&self.pages[self.page_start], 0, sizeof(IdPage *) * shift)
            self.page_len += shift
            self.page_first = page
        if page >= self.page_first + self.page_len:
            shift = <size_t> (page - self.page_first + 1)
            self._reserve_pages(shift)
            memset(&self.pages[self.page_start + self.page_len], 0,
                   sizeof(IdPage *) * (shift - self.page_len))
            self.page_len = shift
        index = self.page_start + <size_t> (page - self.page_first)
        p = self.pages[index]
        if p == NULL:
            p = <IdPage *> malloc(sizeof(IdPage))
            if p == NULL:
                raise MemoryError()
            memset(p.slots, 0xFF, sizeof(p.slots))
            p.live = 0
            self.pages[index] = p
        p.slots[order_id & (PAGE_SIZE - 1)] = slot
        p.live += 1
        return 0

    cdef int _reserve_pages(self, size_t length) except -1:
        """Room for ``length`` directory entries from ``page_start``."""
        cdef size_t capacity
        cdef IdPage **grown
        if self.page_start + length <= self.page_cap:
            return 0
        if self.page_start and length <= self.page_cap // 2:
            memmove(self.pages, &self.pages[self.page_start], sizeof(IdPage *) * self.page_len)
            self.page_start = 0
            return 0
        capacity = self.page_cap * 2 if self.page_cap else 256
        while capacity < self.page_start + length:
            capacity *= 2
        grown = <IdPage **> realloc(self.pages, sizeof(IdPage *) * capacity)
        if grown == NULL:
            raise MemoryError()
        self.pages = grown
        self.page_cap = capacity
        return 0

    cdef inline uint32_t _slot_of(self, uint64_t order_id) noexcept nogil:
        cdef uint64_t page = order_id >> PAGE_BITS
        cdef IdPage *p
        if page < self.page_first or page >= self.page_first + self.page_len:
            return NIL
        p = self.pages[self.page_start + <size_t> (page - self.page_first)]
        if p == NULL:
            return NIL
        return p.slots[order_id & (PAGE_SIZE - 1)]

    cdef void _finish(self, uint32_t slot) noexcept nogil:
        """An order has no leaves left: keep what a duplicate's answer needs, free its slot."""
        cdef Order *o = &self.orders[slot]
        cdef DupEntry *entry
        cdef uint64_t page = o.order_id >> PAGE_BITS
        cdef size_t index = self.page_start + <size_t> (page - self.page_first)
        cdef IdPage *p = self.pages[index]
        if o.dup:
            entry = &self.dups[o.dup - 1]
            entry.slot = NIL
            entry.price = o.price
            entry.quantity = o.quantity
            entry.filled = o.filled
            entry.status = STATUS_CANCELLED if o.cancelled > 0 else STATUS_FILLED
        p.slots[o.order_id & (PAGE_SIZE - 1)] = NIL
        p.live -= 1
        if p.live == 0:
            free(p)
            self.pages[index] = NULL
            while self.page_len and self.pages[self.page_start] == NULL:
                self.page_start += 1
                self.page_first += 1
                self.page_len -= 1
            while self.page_len and self.pages[self.page_start + self.page_len - 1] == NULL:
                self.page_len -= 1
        o.next = self.free_order
        self.free_order = slot
        self.live_orders -= 1

    # ---- the client-order-id table (duplicate detection for the trading day) ---------------------

    cdef int _dup_reset(self, size_t slots) except -1:
        if self.dup_index != NULL:
            mn_table_free(self.dup_index, sizeof(uint64_t) * (self.dup_mask + 1))
        if self.dup_old != NULL:
            mn_table_free(self.dup_old, sizeof(uint64_t) * (self.dup_old_mask + 1))
        self.dup_old = NULL
        self.dup_index = <uint64_t *> mn_table_alloc(sizeof(uint64_t) * slots)  # zero pages until touched
        if self.dup_index == NULL:
            raise MemoryError()
        self.dup_mask = slots - 1
        self.dup_used = 0
        self._streams_free()
        return 0

    cdef void _streams_free(self) noexcept nogil:
        cdef size_t i
        if self.streams != NULL:
            for i in range(self.stream_mask + 1):
                free(self.streams[i].refs)
            free(self.streams)
        self.streams = NULL
        self.stream_mask = 0
        self.stream_count = 0

    cdef inline int64_t _stream_slot(self, const uint64_t *skey, uint64_t h) noexcept nogil:
        """The table slot of the stream keyed ``skey`` (hash ``h``), or the free slot it would take
        (its ``last`` 0); -1 when there is no table."""
        cdef size_t at
        if self.streams == NULL:
            return -1
        at = <size_t> h & self.stream_mask
        while self.streams[at].last != 0:
            if mn_stream_key_equal(self.streams[at].key, skey):
                return <int64_t> at
            at = (at + 1) & self.stream_mask
        return <int64_t> at

    cdef int64_t _stream_create(self, const uint64_t *skey, uint64_t h, uint64_t last) except -2:
        """A new empty stream for ``skey`` whose numbers up to ``last`` (> 0) are not new to it: its
        slot, or -1 when the day has all the streams it may."""
        cdef size_t slots, i, at
        cdef Stream *table
        cdef Stream *old = self.streams
        cdef size_t old_slots = self.stream_mask + 1 if old != NULL else 0
        cdef int64_t found
        if self.stream_count >= MAX_STREAMS:
            return -1
        if old == NULL or (self.stream_count + 1) * 2 > old_slots:
            slots = old_slots * 2 if old_slots else 64
            table = <Stream *> calloc(slots, sizeof(Stream))
            if table == NULL:
                raise MemoryError()
            for i in range(old_slots):
                if old[i].last != 0:
                    at = <size_t> mn_stream_hash(old[i].key) & (slots - 1)
                    while table[at].refs != NULL:
                        at = (at + 1) & (slots - 1)
                    memcpy(&table[at], &old[i], sizeof(Stream))
            free(old)
            self.streams = table
            self.stream_mask = slots - 1
        found = self._stream_slot(skey, h)
        memcpy(self.streams[found].key, skey, sizeof(uint64_t) * 5)
        self.streams[found].refs = NULL
        self.streams[found].n = 0
        self.streams[found].cap = 0
        self.streams[found].last = last
        self.stream_count += 1
        return found

    cdef inline int64_t _dup_probe(self, uint64_t *table, size_t mask, const char *key,
                                   uint64_t hash) noexcept nogil:
        cdef size_t at = (hash >> 32) & mask
        cdef uint64_t tag = (hash >> 32) << 32
        cdef uint64_t slot
        cdef size_t entry
        while True:
            slot = table[at]
            if slot == 0:
                return -1
            if (slot >> 32) << 32 == tag:
                entry = <size_t> (slot & LOW32) - 1
                if memcmp(self.dups[entry].key, key, KEY_LEN) == 0:
                    return <int64_t> entry
            at = (at + 1) & mask

    cdef int64_t _dup_find(self, const char *key, DupProbe *pr, uint64_t hash=0) noexcept nogil:
        """The entry of (client order id, account) ``key`` today, or -1; ``pr`` keeps what the
        lookup learnt for ``_dup_index``.

        An id with a canonical decimal suffix is first looked for in its stream: a number above the
        stream's last one was never seen (an id goes to the hash table only when its number is at or
        below its stream's last, or when its stream could not be made; no stream is made after that
        for the rest of the day), and one at or below it is found by a binary search. Other ids, and
        stream ids not in their stream, are looked up in the hash table (``hash``: the id's hash when
        the caller has it, 0: computed here)."""
        cdef int64_t found = -1
        cdef uint64_t skey[5]
        cdef Stream *st
        cdef uint32_t lo, hi, mid
        pr.hash = 0
        pr.stream = -1
        pr.start = mn_coid_split(key, &pr.number)
        if pr.start >= 0 and self.stream_count:
            mn_stream_key(skey, key, pr.start)
            pr.stream = self._stream_slot(skey, mn_stream_hash(skey))
            st = &self.streams[pr.stream]
            if st.last == 0:
                pr.stream = -1
            else:
                if pr.number > st.last:
                    return -1
                lo = 0
                hi = st.n
                while lo < hi:
                    mid = (lo + hi) >> 1
                    if st.refs[mid].number < pr.number:
                        lo = mid + 1
                    else:
                        hi = mid
                if lo < st.n and st.refs[lo].number == pr.number:
                    return <int64_t> st.refs[lo].entry
        if self.dup_used == 0:
            return -1
        pr.hash = hash if hash else mn_hash_bytes(key, KEY_LEN)
        found = self._dup_probe(self.dup_index, self.dup_mask, key, pr.hash)
        if found < 0 and self.dup_old != NULL:
            found = self._dup_probe(self.dup_old, self.dup_old_mask, key, pr.hash)
        return found

    cdef inline void _dup_place(self, uint64_t *table, size_t mask, uint64_t hash,
                                size_t entry) noexcept nogil:
        cdef size_t at = (hash >> 32) & mask  # the slot keeps these bits: migration needs no rehash
        while table[at] != 0:
            at = (at + 1) & mask
        table[at] = ((hash >> 32) << 32) | <uint64_t> (entry + 1)

    cdef void _dup_migrate(self, size_t step) noexcept nogil:
        """Move up to ``step`` slots of the old table into the current one."""
        cdef size_t end = self.dup_migrated + step
        cdef uint64_t slot
        cdef size_t entry
        if end > self.dup_old_mask + 1:
            end = self.dup_old_mask + 1
        while self.dup_migrated < end:
            slot = self.dup_old[self.dup_migrated]
            if slot != 0:
                entry = <size_t> (slot & LOW32) - 1
                self._dup_place(self.dup_index, self.dup_mask, slot, entry)
            self.dup_migrated += 1
        if self.dup_migrated > self.dup_old_mask:
            mn_table_free(self.dup_old, sizeof(uint64_t) * (self.dup_old_mask + 1))
            self.dup_old = NULL

    cdef uint32_t _dup_add(self, const char *key, DupProbe *pr, uint32_t slot, uint64_t order_id,
                           uint16_t book, uint8_t side) except 0:
        """Remember (client order id, account) for order ``order_id`` (live in ``slot``, or NIL),
        ``pr`` being its ``_dup_find`` (which found nothing); return the entry's index + 1."""
        cdef DupEntry *entry
        if self.dup_len == <size_t> 0xFFFFFFFE:
            raise MemoryError("more client order ids in one day than the table numbers")
        if self.dup_len == self.dup_cap:
            self._reserve_dups(self.dup_cap * 2 if self.dup_cap else 4096)
        entry = &self.dups[self.dup_len]
        memcpy(entry.key, key, KEY_LEN)
        entry.slot = slot
        entry.order_id = order_id
        entry.book = book
        entry.side = side
        entry.status = 0
        entry.price = 0
        entry.quantity = 0
        entry.filled = 0
        self._dup_index(self.dup_len, pr)
        self.dup_len += 1
        return <uint32_t> self.dup_len

    cdef int _dup_index(self, size_t index, DupProbe *pr) except -1:
        """Index entry ``index`` (not indexed yet; ``pr``: its ``_dup_find`` or ``_dup_split``): in
        its stream when its number comes after the stream's last, else in the hash table."""
        cdef DupEntry *entry = &self.dups[index]
        cdef uint64_t skey[5]
        cdef uint64_t h
        cdef Stream *st
        cdef size_t slots
        cdef uint64_t *table
        if pr.start >= 0:
            if pr.stream < 0:
                mn_stream_key(skey, entry.key, pr.start)
                h = mn_stream_hash(skey)
                pr.stream = self._stream_slot(skey, h)
                if pr.stream < 0 or self.streams[pr.stream].last == 0:
                    pr.stream = self._stream_create(skey, h, pr.number - 1)
            if pr.stream >= 0:
                st = &self.streams[pr.stream]
                if pr.number > st.last:
                    if st.n == st.cap:
                        st.refs = <StreamRef *> doubled(st.refs, &st.cap, sizeof(StreamRef), 4)
                    st.refs[st.n].number = pr.number
                    st.refs[st.n].entry = index
                    st.n += 1
                    st.last = pr.number
                    entry.hashed = 0
                    return 0
        if pr.hash == 0:
            pr.hash = mn_hash_bytes(entry.key, KEY_LEN)
        if self.dup_old != NULL:
            self._dup_migrate(DUP_MIGRATE_STEP)
        if (self.dup_used + 1) * 2 > self.dup_mask + 1:
            if self.dup_old != NULL:  # still migrating: finish it first (a table this full is rare)
                self._dup_migrate(self.dup_old_mask + 1)
            slots = (self.dup_mask + 1) * 2
            table = <uint64_t *> mn_table_alloc(sizeof(uint64_t) * slots)
            if table == NULL:
                raise MemoryError()
            self.dup_old = self.dup_index
            self.dup_old_mask = self.dup_mask
            self.dup_migrated = 0
            self.dup_index = table
            self.dup_mask = slots - 1
            self._dup_migrate(DUP_MIGRATE_STEP)
        self._dup_place(self.dup_index, self.dup_mask, pr.hash, index)
        self.dup_used += 1
        entry.hashed = 1
        return 0

    cdef inline void _dup_split(self, const char *key, DupProbe *pr) noexcept nogil:
        """``pr`` for indexing ``key`` without a lookup (the caller knows it is not there)."""
        pr.hash = 0
        pr.stream = -1
        pr.start = mn_coid_split(key, &pr.number)

    cdef int _dup_keep_live_only(self) except -1:
        """END_OF_DAY: forget the finished orders' ids; the live orders keep theirs."""
        cdef size_t kept = 0
        cdef size_t i, need = 16, capacity
        cdef uint32_t slot
        cdef DupEntry *fresh
        cdef Order *o
        cdef DupProbe pr
        while need < 2 * self.live_orders:
            need *= 2
        if need < self.dup_initial:
            need = self.dup_initial
        capacity = max(self.dup_reserved, self.live_orders + 1)  # the next day's room, as reserved
        fresh = <DupEntry *> malloc(sizeof(DupEntry) * capacity)
        if fresh == NULL:
            raise MemoryError()
        if self.dup_reserved:
            memset(fresh, 0, sizeof(DupEntry) * capacity)  # mapped now, not by the day's first orders
        for i in range(self.dup_len):
            slot = self.dups[i].slot
            if slot == NIL:
                continue
            memcpy(&fresh[kept], &self.dups[i], sizeof(DupEntry))
            o = &self.orders[slot]
            o.dup = <uint32_t> kept + 1
            kept += 1
        free(self.dups)
        self.dups = fresh
        self.dup_len = kept
        self.dup_cap = capacity
        self._dup_reset(need)
        for i in range(kept):  # into the hash table, each stream starting above its ids
            self._dup_split(fresh[i].key, &pr)
            if pr.start >= 0:
                self._stream_raise(fresh[i].key, &pr)
            pr.start = -1
            self._dup_index(i, &pr)
        return 0

    cdef int _stream_raise(self, const char *key, DupProbe *pr) except -1:
        """Make the stream of ``key`` (split in ``pr``) count its number as seen (an id indexed in
        the hash table); when it cannot be made, no stream for it is made today."""
        cdef uint64_t skey[5]
        cdef uint64_t h
        cdef int64_t at
        mn_stream_key(skey, key, pr.start)
        h = mn_stream_hash(skey)
        at = self._stream_slot(skey, h)
        if at < 0 or self.streams[at].last == 0:
            self._stream_create(skey, h, pr.number)
        elif pr.number > self.streams[at].last:
            self.streams[at].last = pr.number
        return 0

    # ---- answers ---------------------------------------------------------------------------------

    cdef int _ack(self, Buf *b, uint64_t rid, Order *o) except -1:
        cdef uint64_t order_id = o.order_id
        cdef char *p = put_frame(b, T_ACK, SZ_ACK, rid)
        mn_store_u64(p + 16, self.seq)
        mn_store_u64(p + 24, order_id)
        memcpy(p + 32, o.key, KEY_LEN)
        memcpy(p + 68, self.books[o.book].symbol, SYMBOL_LEN)
        p[76] = <char> o.side
        p[77] = <char> order_status(o)
        mn_store_i64(p + 84, o.quantity)
        mn_store_i64(p + 92, o.leaves)
        mn_store_i64(p + 100, o.filled)
        mn_store_i64(p + 108, o.price)
        return 0

    cdef int _reject(self, Buf *b, uint64_t rid, uint64_t order_id, const char *coid, const char *symbol,
                     int reason) except -1:
        cdef char *p = put_frame(b, T_REJECT, SZ_REJECT, rid)
        mn_store_u64(p + 16, self.seq)
        mn_store_u64(p + 24, order_id)
        if coid != NULL:
            memcpy(p + 32, coid, COID_LEN)
        memcpy(p + 52, symbol, SYMBOL_LEN)
        mn_store_u16(p + 60, <uint16_t> reason)
        return 0

    cdef int _cancel_ack(self, Buf *b, uint64_t rid, uint32_t slot, int reason, int64_t quantity) except -1:
        cdef char *p = put_frame(b, T_CANCEL_ACK, SZ_CANCEL_ACK, rid)
        cdef Order *o = &self.orders[slot]
        mn_store_u64(p + 16, self.seq)
        mn_store_u64(p + 24, o.order_id)
        memcpy(p + 32, o.key, KEY_LEN)
        memcpy(p + 68, self.books[o.book].symbol, SYMBOL_LEN)
        p[76] = <char> reason
        mn_store_i64(p + 84, quantity)
        return 0

    cdef int _admin_ack(self, Buf *b, uint64_t rid, const char *symbol, int action) except -1:
        cdef char *p = put_frame(b, T_ADMIN_ACK, SZ_ADMIN_ACK, rid)
        mn_store_u64(p + 16, self.seq)
        memcpy(p + 24, symbol, SYMBOL_LEN)
        p[32] = <char> action
        return 0

    cdef void _count(self, int kind, size_t start) noexcept nogil:
        cdef int outcome = O_OTHER
        cdef int mtype
        if self.last_flags & FLAG_DUPLICATE:
            outcome = O_DUPLICATE
        else:
            mtype = <unsigned char> self.out.data[start + 5]
            if mtype == T_ACK or mtype == T_ADMIN_ACK:
                outcome = O_ACCEPTED
            elif mtype == T_REJECT:
                outcome = O_REJECTED
            elif mtype == T_CANCEL_ACK:
                outcome = O_CANCELLED
        self.counts[kind][outcome] += 1

    # ---- requests --------------------------------------------------------------------------------

    cdef int _new_order(self, uint64_t rid, const char *key, const char *symbol, int side, int order_type,
                        int tif, int flags, int64_t quantity, int64_t price, uint64_t hash=0) except -1:
        """``key``: the client order id (20 bytes) then the account (16); ``hash``: its hash-table hash
        when the caller has it (0: computed when needed)."""
        cdef int64_t found
        cdef DupProbe pr
        cdef int b, reason, opposite
        cdef Book *book
        cdef int64_t limit_key
        cdef uint32_t slot
        cdef Order *o
        cdef bint has_coid = not is_blank(key, COID_LEN)
        if has_coid:
            found = self._dup_find(key, &pr, hash)
            if found >= 0:
                return self._answer_duplicate(rid, &self.dups[found])
        b = self._book_of(mn_load_u64(symbol))
        if b < 0:
            return self._reject(&self.out, rid, 0, key, symbol, UNKNOWN_SYMBOL)
        book = &self.books[b]
        opposite = 1 if side == BUY else 0
        limit_key = -price if side == BUY else price
        if not (
            order_type == LIMIT and GTC <= tif <= DAY and not (flags & ~STP_MASK)
            and (side == BUY or side == SELL) and book.trading
            and 0 < quantity <= book.max_quantity and book.band_low <= price <= book.band_high
            and quantity % book.lot == 0 and price % book.tick == 0
        ):
            reason = 0
            if ((side != BUY and side != SELL) or (order_type != LIMIT and order_type != MARKET)
                    or tif < GTC or tif > DAY or flags & ~KNOWN_ORDER_FLAGS):
                reason = INVALID_ORDER
            elif not book.trading:
                reason = TRADING_HALTED
            elif quantity <= 0 or quantity > book.max_quantity:
                reason = INVALID_QUANTITY
            elif quantity % book.lot:
                reason = LOT_SIZE
            elif order_type == MARKET:
                price = 0
                limit_key = ANY_PRICE_KEY
                if flags & POST_ONLY:
                    reason = INVALID_ORDER
            elif price <= 0:
                reason = INVALID_PRICE
            elif price % book.tick:
                reason = TICK_SIZE
            elif price < book.band_low or price > book.band_high:
                reason = PRICE_BAND
            elif flags & POST_ONLY:
                if tif == IOC or tif == FOK:
                    reason = INVALID_ORDER
                elif book.sides[opposite].n and self._best_key(book, opposite) >= limit_key:
                    reason = POST_ONLY_WOULD_CROSS
            if reason:
                return self._reject(&self.out, rid, 0, key, symbol, reason)
        slot = self._new_order_slot()
        self.order_count += 1
        o = &self.orders[slot]
        o.order_id = self.order_count
        o.price = price
        o.quantity = quantity
        o.leaves = quantity
        o.filled = 0
        o.cancelled = 0
        o.book = <uint16_t> b
        o.side = <uint8_t> side
        o.order_type = <uint8_t> order_type
        o.tif = <uint8_t> tif
        o.flags = <uint8_t> flags
        o.dup = 0
        o.level = NIL
        memcpy(o.key, key, KEY_LEN)
        self._map_id(o.order_id, slot)
        if has_coid:
            self.orders[slot].dup = self._dup_add(key, &pr, slot, self.order_count, <uint16_t> b, <uint8_t> side)
        self._ack(&self.out, rid, &self.orders[slot])
        if ((book.sides[opposite].n and self._best_key(book, opposite) >= limit_key)
                or order_type == MARKET or tif == IOC or tif == FOK):
            self._execute(book, slot, limit_key, rid)
            if book.stops[0].n or book.stops[1].n:
                return self._run_stops(book, rid)
            return 0
        return self._rest(slot)

    cdef int _answer_duplicate(self, uint64_t rid, DupEntry *entry) except -1:
        """A new order whose (client order id, account) the day has seen: the existing order now."""
        cdef char *p
        self.last_flags = FLAG_DUPLICATE
        if entry.slot != NIL:
            return self._ack(&self.out, rid, &self.orders[entry.slot])
        p = put_frame(&self.out, T_ACK, SZ_ACK, rid)
        mn_store_u64(p + 16, self.seq)
        mn_store_u64(p + 24, entry.order_id)
        memcpy(p + 32, entry.key, KEY_LEN)
        memcpy(p + 68, self.books[entry.book].symbol, SYMBOL_LEN)
        p[76] = <char> entry.side
        p[77] = <char> entry.status
        mn_store_i64(p + 84, entry.quantity)
        mn_store_i64(p + 100, entry.filled)
        mn_store_i64(p + 108, entry.price)
        return 0

    # ---- stop orders (the rules: reference.py) ------------------------------------------------------

    cdef int _stop_problem(self, Book *book, int side, int order_type, int tif, int flags, int64_t quantity,
                           int64_t price, int64_t stop_price) noexcept nogil:
        """0, or the reason a new stop order is refused (the reference's order of checks)."""
        if ((side != BUY and side != SELL) or (order_type != LIMIT and order_type != MARKET)
                or tif < GTC or tif > DAY or flags & ~KNOWN_ORDER_FLAGS or flags & POST_ONLY):
            return INVALID_ORDER
        if not book.trading:
            return TRADING_HALTED
        if quantity <= 0 or quantity > book.max_quantity:
            return INVALID_QUANTITY
        if quantity % book.lot:
            return LOT_SIZE
        if order_type == LIMIT:
            if price <= 0:
                return INVALID_PRICE
            if price % book.tick:
                return TICK_SIZE
            if price < book.band_low or price > book.band_high:
                return PRICE_BAND
        if stop_price <= 0:
            return INVALID_PRICE
        if stop_price % book.tick:
            return TICK_SIZE
        if stop_price < book.band_low or stop_price > book.band_high:
            return PRICE_BAND
        return 0

    cdef int _new_stop_order(self, uint64_t rid, const char *key, const char *symbol, int side,
                             int order_type, int tif, int flags, int64_t quantity, int64_t price,
                             int64_t stop_price) except -1:
        cdef int64_t found
        cdef int b, reason
        cdef Book *book
        cdef uint32_t slot
        cdef Order *o
        cdef DupProbe pr
        cdef bint has_coid = not is_blank(key, COID_LEN)
        if has_coid:
            found = self._dup_find(key, &pr)
            if found >= 0:
                return self._answer_duplicate(rid, &self.dups[found])
        b = self._book_of(mn_load_u64(symbol))
        if b < 0:
            return self._reject(&self.out, rid, 0, key, symbol, UNKNOWN_SYMBOL)
        book = &self.books[b]
        reason = self._stop_problem(book, side, order_type, tif, flags, quantity, price, stop_price)
        if reason:
            return self._reject(&self.out, rid, 0, key, symbol, reason)
        slot = self._new_order_slot()
        self.order_count += 1
        o = &self.orders[slot]
        o.order_id = self.order_count
        o.price = 0 if order_type == MARKET else price
        o.quantity = quantity
        o.leaves = quantity
        o.filled = 0
        o.cancelled = 0
        o.book = <uint16_t> b
        o.side = <uint8_t> side
        o.order_type = <uint8_t> order_type
        o.tif = <uint8_t> tif
        o.flags = <uint8_t> flags
        o.dup = 0
        o.level = STOP_WAITING
        o.prev = <uint32_t> (<uint64_t> stop_price & LOW32)
        o.next = <uint32_t> (<uint64_t> stop_price >> 32)
        memcpy(o.key, key, KEY_LEN)
        self._map_id(o.order_id, slot)
        if has_coid:
            self.orders[slot].dup = self._dup_add(key, &pr, slot, self.order_count, <uint16_t> b, <uint8_t> side)
        self._add_stop(slot)
        self._ack(&self.out, rid, &self.orders[slot])
        return self._run_stops(book, rid)

    cdef int _add_stop(self, uint32_t slot) except -1:
        """Put a waiting stop order in its book's trigger order."""
        cdef Order *o = &self.orders[slot]
        cdef StopSide *s = &self.books[o.book].stops[0 if o.side == BUY else 1]
        cdef int64_t stop = stop_price_of(o)
        cdef int64_t key = -stop if o.side == BUY else stop
        cdef uint32_t lo = 0, hi, mid
        if s.n == s.cap:
            s.refs = <StopRef *> doubled(s.refs, &s.cap, sizeof(StopRef), 16)
        hi = s.n
        while lo < hi:  # the first ref after (key, order id) in (key ascending, id descending) order
            mid = (lo + hi) >> 1
            if s.refs[mid].key < key or (s.refs[mid].key == key and s.refs[mid].order_id > o.order_id):
                lo = mid + 1
            else:
                hi = mid
        memmove(&s.refs[lo + 1], &s.refs[lo], sizeof(StopRef) * (s.n - lo))
        s.refs[lo].key = key
        s.refs[lo].order_id = o.order_id
        s.refs[lo].slot = slot
        s.n += 1
        return 0

    cdef void _remove_stop(self, uint32_t slot) noexcept nogil:
        """Take a waiting stop order out of its book (cancelled); its leaves are the caller's."""
        cdef Order *o = &self.orders[slot]
        cdef StopSide *s = &self.books[o.book].stops[0 if o.side == BUY else 1]
        cdef int64_t stop = stop_price_of(o)
        cdef int64_t key = -stop if o.side == BUY else stop
        cdef uint32_t lo = 0, hi = s.n, mid
        while lo < hi:
            mid = (lo + hi) >> 1
            if s.refs[mid].key < key or (s.refs[mid].key == key and s.refs[mid].order_id > o.order_id):
                lo = mid + 1
            else:
                hi = mid
        memmove(&s.refs[lo], &s.refs[lo + 1], sizeof(StopRef) * (s.n - lo - 1))
        s.n -= 1
        o.level = NIL

    cdef int _collect_stops(self, Book *book) except -1:
        """Queue the waiting stops the book's last trade price meets, in trigger order."""
        cdef int64_t last = book.last_price
        cdef int k
        cdef int64_t threshold
        cdef StopSide *s
        if last == 0:
            return 0
        for k in range(2):
            s = &book.stops[k]
            threshold = -last if k == 0 else last  # buy stops: stop <= last; sell stops: stop >= last
            while s.n and s.refs[s.n - 1].key >= threshold:
                if self.fire_len == self.fire_cap:
                    self.fire_queue = <uint32_t *> doubled(self.fire_queue, &self.fire_cap, sizeof(uint32_t), 64)
                s.n -= 1
                self.fire_queue[self.fire_len] = s.refs[s.n].slot
                self.fire_len += 1
        return 0

    cdef int _run_stops(self, Book *book, uint64_t rid) except -1:
        """Fire the stops the last trade price triggered, and those their trades trigger, in order."""
        cdef uint32_t head = 0, slot
        cdef uint64_t trades_before
        cdef Order *o
        cdef int opposite
        cdef int64_t limit_key
        self.fire_len = 0
        self._collect_stops(book)
        try:
            while head < self.fire_len:
                slot = self.fire_queue[head]
                head += 1
                o = &self.orders[slot]
                o.level = NIL
                o.prev = NIL
                o.next = NIL
                self._ack(&self.out, rid, o)
                trades_before = self.trade_id
                opposite = 1 if o.side == BUY else 0
                if o.order_type == MARKET:
                    limit_key = ANY_PRICE_KEY
                else:
                    limit_key = -o.price if o.side == BUY else o.price
                if ((book.sides[opposite].n and self._best_key(book, opposite) >= limit_key)
                        or o.order_type == MARKET or o.tif == IOC or o.tif == FOK):
                    self._execute(book, slot, limit_key, rid)
                else:
                    self._rest(slot)
                if self.trade_id != trades_before:
                    self._collect_stops(book)
        finally:
            self.fire_len = 0
        return 0

    cdef bint _fok_fillable(self, Book *book, int opposite, int64_t limit_key, int64_t quantity,
                            const char *account, int stp) noexcept nogil:
        """Whether matching would fill ``quantity`` entirely, walking the book as matching does."""
        cdef SideBook *s = &book.sides[opposite]
        cdef int64_t available = 0
        cdef Level *lv
        cdef uint32_t at = s.n, cursor
        cdef Order *resting
        while at > 0:
            at -= 1
            if s.refs[at].key < limit_key:
                return False
            lv = &self.levels[s.refs[at].level]
            cursor = lv.head
            while cursor != NIL:
                resting = &self.orders[cursor]
                cursor = resting.next
                if stp != STP_ALLOW and memcmp(resting.key + COID_LEN, account, ACCOUNT_LEN) == 0:
                    if stp == STP_CANCEL_OLDEST:
                        continue
                    return False
                available += resting.leaves
                if available >= quantity:
                    return True
        return False

    cdef int _execute(self, Book *book, uint32_t slot, int64_t limit_key, uint64_t rid) except -1:
        """Match an incoming (or repriced) order, then rest or cancel what is left of it."""
        cdef Order *o = &self.orders[slot]
        cdef int side = o.side
        cdef int opposite = 1 if side == BUY else 0
        cdef int64_t sign = -1 if side == BUY else 1
        cdef SideBook *s = &book.sides[opposite]
        cdef int stp = (o.flags & STP_MASK) >> STP_SHIFT
        cdef int64_t remaining = o.leaves
        cdef int64_t quantity, price = 0, last_price = 0, resting_leaves
        cdef uint64_t trade_id = self.trade_id
        cdef bint self_trade = False
        cdef int64_t key
        cdef uint32_t level_index, resting_slot
        cdef Level *lv
        cdef Order *resting
        cdef Order *buy
        cdef Order *sell
        cdef char *p
        cdef char account[ACCOUNT_LEN]
        cdef int reason
        memcpy(account, o.key + COID_LEN, ACCOUNT_LEN)
        if o.tif == FOK and not self._fok_fillable(book, opposite, limit_key, remaining, account, stp):
            o.leaves = 0
            o.cancelled += remaining
            self._cancel_ack(&self.out, rid, slot, CANCEL_FOK_UNFILLED, remaining)
            self._finish(slot)
            return 0
        while s.n:
            key = s.refs[s.n - 1].key
            if key < limit_key:
                break
            level_index = s.refs[s.n - 1].level
            lv = &self.levels[level_index]
            price = key * sign
            while lv.head != NIL:
                resting_slot = lv.head
                resting = &self.orders[resting_slot]
                if stp != STP_ALLOW and memcmp(resting.key + COID_LEN, account, ACCOUNT_LEN) == 0:
                    if stp != STP_CANCEL_NEWEST:  # CANCEL_OLDEST or CANCEL_BOTH: the resting order goes
                        resting_leaves = resting.leaves
                        self._pop_head(lv, resting_slot)
                        self._cancel_ack(&self.out, rid, resting_slot, CANCEL_SELF_TRADE, resting_leaves)
                        resting = &self.orders[resting_slot]
                        resting.cancelled += resting_leaves
                        resting.leaves = 0
                        self._finish(resting_slot)
                    if stp != STP_CANCEL_OLDEST:  # CANCEL_NEWEST or CANCEL_BOTH: the incoming one stops
                        self_trade = True
                        break
                    continue
                resting_leaves = resting.leaves
                quantity = resting_leaves if resting_leaves <= remaining else remaining
                resting_leaves -= quantity
                resting.leaves = resting_leaves
                resting.filled += quantity
                lv.total -= quantity
                remaining -= quantity
                trade_id += 1
                last_price = price
                p = put_frame(&self.out, T_FILL, SZ_FILL, rid)
                resting = &self.orders[resting_slot]
                o = &self.orders[slot]
                mn_store_u64(p + 16, self.seq)
                mn_store_u64(p + 24, trade_id)
                memcpy(p + 32, book.symbol, SYMBOL_LEN)
                mn_store_i64(p + 40, price)
                mn_store_i64(p + 48, quantity)
                p[56] = <char> side
                if side == BUY:
                    buy, sell = o, resting
                    mn_store_i64(p + 152, remaining)
                    mn_store_i64(p + 160, resting_leaves)
                else:
                    buy, sell = resting, o
                    mn_store_i64(p + 152, resting_leaves)
                    mn_store_i64(p + 160, remaining)
                mn_store_u64(p + 64, buy.order_id)
                mn_store_u64(p + 72, sell.order_id)
                memcpy(p + 80, buy.key + COID_LEN, ACCOUNT_LEN)
                memcpy(p + 96, sell.key + COID_LEN, ACCOUNT_LEN)
                memcpy(p + 112, buy.key, COID_LEN)
                memcpy(p + 132, sell.key, COID_LEN)
                if resting_leaves == 0:
                    self._pop_head(lv, resting_slot)
                    self._finish(resting_slot)
                if not remaining:
                    break
            if lv.head == NIL:
                s.n -= 1
                self._uncache_level(book, opposite, level_index)
                lv.next_free = self.free_level
                self.free_level = level_index
            if not remaining or self_trade:
                break
        o = &self.orders[slot]
        if trade_id != self.trade_id:
            o.filled += o.leaves - remaining
            book.trades += trade_id - self.trade_id
            self.trade_id = trade_id
            if last_price != book.last_price:
                self._set_last_price(book, last_price)
        o.leaves = remaining
        if not remaining:
            self._finish(slot)
            return 0
        if self_trade:
            reason = CANCEL_SELF_TRADE
        elif o.order_type == MARKET:
            reason = CANCEL_NO_LIQUIDITY
        elif o.tif == IOC or o.tif == FOK:
            reason = CANCEL_IOC_REMAINDER
        else:
            return self._rest(slot)
        o.leaves = 0
        o.cancelled += remaining
        self._cancel_ack(&self.out, rid, slot, reason, remaining)
        self._finish(slot)
        return 0

    cdef inline void _pop_head(self, Level *lv, uint32_t slot) noexcept nogil:
        """Take the head order off a level that stays in place (the caller drops an empty level)."""
        cdef Order *o = &self.orders[slot]
        lv.head = o.next
        if o.next == NIL:
            lv.tail = NIL
        else:
            self.orders[o.next].prev = NIL
        lv.count -= 1
        lv.total -= o.leaves

    cdef uint32_t _target(self, uint64_t rid, const char *account, const char *symbol, uint64_t order_id,
                          int not_live) except? 0xFFFFFFFE:
        """The live order a cancel or replace names, or NIL once its Reject is written."""
        cdef uint32_t slot = NIL
        cdef Order *o
        if 0 < order_id <= self.order_count:
            slot = self._slot_of(order_id)
        if slot == NIL:
            reason = not_live if 0 < order_id <= self.order_count else UNKNOWN_ORDER
            self._reject(&self.out, rid, order_id, NULL, symbol, reason)
            return NIL
        o = &self.orders[slot]
        if not is_blank(symbol, SYMBOL_LEN) and mn_load_u64(symbol) != self.books[o.book].symbol_key:
            self._reject(&self.out, rid, order_id, NULL, symbol, UNKNOWN_ORDER)
            return NIL
        if memcmp(o.key + COID_LEN, account, ACCOUNT_LEN) != 0:
            self._reject(&self.out, rid, order_id, NULL, symbol, NOT_ORDER_OWNER)
            return NIL
        return slot

    cdef int _cancel(self, uint64_t rid, const char *account, const char *symbol,
                     uint64_t order_id) except -1:
        cdef uint32_t slot = self._target(rid, account, symbol, order_id, UNKNOWN_ORDER)
        cdef Order *o
        cdef int64_t quantity
        if slot == NIL:
            return 0
        o = &self.orders[slot]
        quantity = o.leaves
        if o.level == STOP_WAITING:
            self._remove_stop(slot)
        else:
            self._unlink(slot)
        o.leaves = 0
        o.cancelled += quantity
        self._cancel_ack(&self.out, rid, slot, CANCEL_USER, quantity)
        self._finish(slot)
        return 0

    cdef int _replace(self, uint64_t rid, const char *account, const char *symbol, uint64_t order_id,
                      int64_t quantity, int64_t price) except -1:
        cdef uint32_t slot = self._target(rid, account, symbol, order_id, REPLACE_NOT_ALLOWED)
        cdef Order *o
        cdef Book *book
        cdef int opposite, reason = 0
        cdef int64_t match_key
        cdef bint keeps_priority
        if slot == NIL:
            return 0
        o = &self.orders[slot]
        book = &self.books[o.book]
        opposite = 1 if o.side == BUY else 0
        match_key = -price if o.side == BUY else price
        if o.level == STOP_WAITING:
            reason = REPLACE_NOT_ALLOWED
        elif not book.trading:
            reason = TRADING_HALTED
        elif quantity <= 0 or quantity > book.max_quantity:
            reason = INVALID_QUANTITY
        elif quantity % book.lot:
            reason = LOT_SIZE
        elif price <= 0:
            reason = INVALID_PRICE
        elif price % book.tick:
            reason = TICK_SIZE
        elif price != o.price and (price < book.band_low or price > book.band_high):
            reason = PRICE_BAND
        elif o.flags & POST_ONLY and book.sides[opposite].n and self._best_key(book, opposite) >= match_key:
            reason = POST_ONLY_WOULD_CROSS
        if reason:
            return self._reject(&self.out, rid, order_id, o.key, symbol, reason)
        self.last_flags = FLAG_REPLACED
        keeps_priority = price == o.price and quantity <= o.leaves
        if keeps_priority:
            self.levels[o.level].total += quantity - o.leaves
        else:
            self._unlink(slot)
            o = &self.orders[slot]
        o.quantity += quantity - o.leaves
        o.leaves = quantity
        o.price = price
        self._ack(&self.out, rid, o)
        if keeps_priority:
            return 0
        if book.sides[opposite].n and self._best_key(book, opposite) >= match_key:
            self._execute(book, slot, match_key, rid)
            if book.stops[0].n or book.stops[1].n:
                return self._run_stops(book, rid)
            return 0
        return self._rest(slot)

    cdef int _admin(self, uint64_t rid, const char *symbol, int action) except -1:
        cdef int b = -1, i, n, k
        cdef bint whole = is_blank(symbol, SYMBOL_LEN)
        cdef bint halt
        cdef Book *book
        cdef uint64_t *day_orders
        cdef uint64_t count, capacity
        cdef SideBook *s
        cdef uint32_t r, cursor, slot
        cdef Order *o
        cdef int64_t quantity
        if not whole:
            b = self._book_of(mn_load_u64(symbol))
            if b < 0:
                return self._reject(&self.out, rid, 0, NULL, symbol, UNKNOWN_SYMBOL)
        if action == ADMIN_HALT or action == ADMIN_RESUME:
            halt = action == ADMIN_HALT
            if whole:
                self.global_halt = halt
            for i in range(self.nbooks):
                if not whole and i != b:
                    continue
                book = &self.books[i]
                if not whole or not halt:
                    book.halted = halt
                book.trading = not (book.halted or self.global_halt)
        elif action == ADMIN_END_OF_DAY:
            for i in self._books_by_symbol() if whole else [b]:
                book = &self.books[i]
                count = 0
                capacity = 64
                day_orders = <uint64_t *> malloc(sizeof(uint64_t) * capacity)
                if day_orders == NULL:
                    raise MemoryError()
                try:
                    for k in range(2):
                        s = &book.sides[k]
                        for r in range(s.n):
                            cursor = self.levels[s.refs[r].level].head
                            while cursor != NIL:
                                o = &self.orders[cursor]
                                if o.tif == DAY:
                                    if count == capacity:
                                        capacity *= 2
                                        day_orders = <uint64_t *> realloc(day_orders, sizeof(uint64_t) * capacity)
                                        if day_orders == NULL:
                                            raise MemoryError()
                                    day_orders[count] = o.order_id
                                    count += 1
                                cursor = o.next
                    for k in range(2):
                        for r in range(book.stops[k].n):
                            o = &self.orders[book.stops[k].refs[r].slot]
                            if o.tif == DAY:
                                if count == capacity:
                                    capacity *= 2
                                    day_orders = <uint64_t *> realloc(day_orders, sizeof(uint64_t) * capacity)
                                    if day_orders == NULL:
                                        raise MemoryError()
                                day_orders[count] = o.order_id
                                count += 1
                    qsort(day_orders, count, sizeof(uint64_t), compare_u64)
                    for n in range(count):
                        slot = self._slot_of(day_orders[n])
                        o = &self.orders[slot]
                        quantity = o.leaves
                        if o.level == STOP_WAITING:
                            self._remove_stop(slot)
                        else:
                            self._unlink(slot)
                        self._cancel_ack(&self.out, rid, slot, CANCEL_END_OF_DAY, quantity)
                        o = &self.orders[slot]
                        o.cancelled += quantity
                        o.leaves = 0
                        self._finish(slot)
                finally:
                    free(day_orders)
            if whole:
                self._dup_keep_live_only()
        else:
            return self._reject(&self.out, rid, 0, NULL, symbol, INVALID_ORDER)
        return self._admin_ack(&self.out, rid, symbol, action)

    cdef list _books_by_symbol(self):
        return [index for _, index in sorted((symbol, index) for index, symbol in enumerate(self._symbols))]

    # ---- one frame -------------------------------------------------------------------------------

    cdef inline uint64_t _prefetch(self, const char *f, Py_ssize_t available) noexcept nogil:
        """For the NEW_ORDER frame at ``f`` whose client order id goes to the hash table (no stream
        for it): its hash, with the table slot it lands on already on its way into the cache while
        the frame before it runs; else 0."""
        cdef uint64_t hash, number
        if (available < SZ_NEW_ORDER or <unsigned char> f[5] != T_NEW_ORDER or self.dup_used == 0
                or is_blank(f + 16, COID_LEN) or mn_coid_split(f + 16, &number) >= 0):
            return 0
        hash = mn_hash_bytes(f + 16, KEY_LEN)
        __builtin_prefetch(&self.dup_index[(hash >> 32) & self.dup_mask])
        return hash

    cdef int _apply_frame(self, const char *f, int mtype, uint64_t hash=0) except -1:
        """Apply one decoded, validated state-changing frame; its answer goes to ``out``."""
        cdef uint64_t rid = mn_load_u64(f + 8)
        cdef size_t start = self.out.length
        cdef int kind
        self.seq += 1
        self.last_flags = 0
        if mtype == T_NEW_ORDER:
            kind = K_NEW_ORDER
            self._new_order(rid, f + 16, f + 52, <unsigned char> f[60], <unsigned char> f[61],
                            <unsigned char> f[62], <unsigned char> f[63], mn_load_i64(f + 64),
                            mn_load_i64(f + 72), hash)
        elif mtype == T_NEW_STOP_ORDER:
            kind = K_NEW_STOP_ORDER
            self._new_stop_order(rid, f + 16, f + 52, <unsigned char> f[60], <unsigned char> f[61],
                                 <unsigned char> f[62], <unsigned char> f[63], mn_load_i64(f + 64),
                                 mn_load_i64(f + 72), mn_load_i64(f + 80))
        elif mtype == T_CANCEL:
            kind = K_CANCEL
            self._cancel(rid, f + 16, f + 32, mn_load_u64(f + 40))
        elif mtype == T_REPLACE:
            kind = K_REPLACE
            self._replace(rid, f + 16, f + 32, mn_load_u64(f + 40), mn_load_i64(f + 48), mn_load_i64(f + 56))
        else:
            kind = K_ADMIN
            self._admin(rid, f + 16, <unsigned char> f[24])
        finish_answer(&self.out, start, <uint16_t> self.last_flags)
        self._count(kind, start)
        return 0

    # ---- the node's path: frames in, answers and journal records out -----------------------------

    @cython.binding(False)  # a plain C method: called without a bound-method object
    def feed(self, data, Py_ssize_t offset=0, int permissions=PERM_ALL, bytes account=None):
        """Process every complete request frame in ``data`` from ``offset``, for a session that may
        send what ``permissions`` (PERM_* bits) allow, for ``account`` only when it is given (the
        account field's ACCOUNT_LEN bytes, NUL-padded); a frame it may not send stops processing
        with ``NOT_PERMITTED`` or ``WRONG_ACCOUNT`` before it touches any state.

        Returns ``(offset, held, immediate, changes, stop, request_id, detail)``: where processing
        stopped, the answers to the state-changing requests (to be released once their journal
        records are safe), the heartbeat answers (sent at once), how many state-changing requests
        were processed (their journal records wait in ``take_journal``), and why it stopped:
        ``FEED_DONE`` (what remains from ``offset`` is the start of an incomplete frame),
        ``FEED_SNAPSHOT_REQUEST`` (after such a frame; ``detail`` is its symbol) or
        ``FEED_PROTOCOL_ERROR`` (at a frame to refuse: ``detail`` is the ProtocolRejectCode and
        ``request_id`` its header's request id, 0 when it has no complete header).
        """
        cdef const unsigned char[::1] view
        cdef const char *base
        cdef Py_ssize_t end
        cdef Py_ssize_t at = offset
        cdef uint32_t length
        cdef Py_ssize_t total
        cdef int mtype, code = 0, stop = FEED_DONE, expected
        cdef uint64_t request_id = 0
        cdef const char *f
        cdef long changes = 0
        cdef uint32_t crc, word
        cdef uint64_t hash = 0, next_hash = 0
        cdef char header[RECORD_HEADER]
        cdef char *j
        cdef const char *session_account = NULL
        cdef bint limited = permissions != PERM_ALL or account is not None
        if account is not None:
            if len(account) != ACCOUNT_LEN:
                raise ValueError(f"a session's account is {ACCOUNT_LEN} bytes, NUL-padded")
            session_account = <const char *> account
        detail = None
        self.out.length = 0
        self.now.length = 0
        if type(data) is bytes:  # the node's case: no buffer to acquire
            base = PyBytes_AS_STRING(data)
            end = PyBytes_GET_SIZE(data)
        else:
            view = data
            end = view.shape[0]
            if end == 0:
                return (offset, b"", b"", 0, FEED_DONE, 0, None)
            base = <const char *> &view[0]
        if end == 0:
            return (offset, b"", b"", 0, FEED_DONE, 0, None)
        if at >= 0:
            next_hash = self._prefetch(base + at, end - at)
        while end - at >= 4:
            f = base + at
            hash = next_hash
            request_id = 0  # the refused frame's own, or 0 when it has no complete header
            length = mn_load_u32(f)
            total = <Py_ssize_t> length + 4
            if total > MAX_FRAME_SIZE or total < HEADER_SIZE:
                code = PR_BAD_LENGTH
                if end - at >= HEADER_SIZE:
                    request_id = mn_load_u64(f + 8)
                stop = FEED_PROTOCOL_ERROR
                break
            if end - at < total:
                break
            request_id = mn_load_u64(f + 8)
            if <unsigned char> f[4] != PROTOCOL_VERSION:
                code = PR_UNSUPPORTED_VERSION
            else:
                mtype = <unsigned char> f[5]
                expected = frame_size(mtype)
                if expected == 0:
                    code = PR_UNKNOWN_TYPE
                elif total != expected:
                    code = PR_BAD_LENGTH
                else:
                    code = validate_frame(f, mtype)
                    if code == 0 and (mtype >= T_ACK or mtype == T_LOGON):
                        code = PR_NOT_A_REQUEST
                    if code == 0 and limited:
                        code = session_check(f, mtype, permissions, session_account)
            if code:
                stop = FEED_PROTOCOL_ERROR
                break
            if mtype == T_HEARTBEAT:
                buf_reserve(&self.now, SZ_HEARTBEAT)
                memcpy(self.now.data + self.now.length, f, SZ_HEARTBEAT)
                mn_store_u16(self.now.data + self.now.length + 6, FLAG_LAST)
                self.now.length += SZ_HEARTBEAT
                self.counts[K_HEARTBEAT][O_ACCEPTED] += 1
                at += total
                continue
            if mtype == T_SNAPSHOT_REQUEST or mtype == T_BOOK_EXPORT:
                at += total
                stop = FEED_SNAPSHOT_REQUEST if mtype == T_SNAPSHOT_REQUEST else FEED_BOOK_EXPORT
                detail = text_of(f + 16, SYMBOL_LEN)
                break
            next_hash = self._prefetch(f + total, end - at - total)
            self._apply_frame(f, mtype, hash)
            if self.journal.length == 0:
                self.journal_first = self.seq
            buf_reserve(&self.journal, total + RECORD_OVERHEAD)
            j = self.journal.data + self.journal.length
            word = (self.journal_epoch << 16) | (length + 4)
            mn_store_u32(j, word)
            mn_store_u64(j + 4, self.seq)
            memcpy(j + RECORD_HEADER, f, total)
            crc = mn_crc32c_record(word, self.seq, f, total)
            mn_store_u32(j + RECORD_HEADER + total, crc)
            self.journal.length += total + RECORD_OVERHEAD
            changes += 1
            at += total
        if stop == FEED_PROTOCOL_ERROR:
            detail = code
        held = PyBytes_FromStringAndSize(self.out.data, self.out.length) if self.out.length else b""
        immediate = PyBytes_FromStringAndSize(self.now.data, self.now.length) if self.now.length else b""
        return (at, held, immediate, changes, stop, request_id, detail)

    @property
    def journal_pending(self):
        """(first seq, last seq, bytes) of the journal records ``take_journal`` would return."""
        if not self.journal.length:
            return (self.seq + 1, self.seq, 0)
        return (self.journal_first, self.seq, self.journal.length)

    @cython.binding(False)  # a plain C method: called without a bound-method object
    def take_journal(self):
        """The journal records of the requests processed since the last call, as one bytes object."""
        if not self.journal.length:
            return b""
        data = PyBytes_FromStringAndSize(self.journal.data, self.journal.length)
        self.journal.length = 0
        return data

    def replay(self, data, Py_ssize_t offset=0, Py_ssize_t end=-1, uint64_t to_seq=0, bint answers=False,
               uint64_t first_seq=0):
        """Apply the journal records in ``data[offset:end]`` (``u32 length | u64 seq | frame | u32
        crc``) that come after the engine's state, stopping after ``to_seq`` (0: no limit).

        The records must carry consecutive seqs from ``first_seq`` (0: from the engine's next seq);
        those up to the engine's seq are checked and skipped. Epochs never go back; the engine's
        ``journal_epoch`` follows the records it reads. Returns ``(offset, applied, defect,
        answers, last_seq)``: where it stopped, how many records it applied, None or why it stopped
        before ``end`` (a record it cannot read or out of sequence: the caller tells a torn tail from
        damage), the encoded answers of every applied record when ``answers`` is set, and the seq of
        the last intact record read.
        """
        cdef const unsigned char[::1] view = data
        cdef const char *base
        cdef Py_ssize_t at = offset
        cdef Py_ssize_t stop_at
        cdef uint32_t length, stored, word, epoch
        cdef uint64_t seq, expected = first_seq if first_seq else self.seq + 1
        cdef const char *f
        cdef long applied = 0
        cdef int mtype, frame_expected, code
        cdef Buf kept
        memset(&kept, 0, sizeof(Buf))
        stop_at = view.shape[0] if end < 0 else end
        defect = None
        if stop_at <= offset:
            return (offset, 0, None, b"", expected - 1)
        base = <const char *> &view[0]
        try:
            while at < stop_at:
                if to_seq and self.seq >= to_seq:
                    break
                if stop_at - at < RECORD_HEADER:
                    defect = "truncated header"
                    break
                word = mn_load_u32(base + at)
                length = word & 0xFFFF
                epoch = word >> 16
                seq = mn_load_u64(base + at + 4)
                if length < HEADER_SIZE or length > MAX_FRAME_SIZE:
                    defect = f"implausible frame length {length}"
                    break
                if stop_at - at < <Py_ssize_t> length + RECORD_OVERHEAD:
                    defect = "truncated record"
                    break
                stored = mn_load_u32(base + at + RECORD_HEADER + length)
                if mn_crc32c(0, base + at, RECORD_HEADER + length) != stored:
                    defect = "crc mismatch"
                    break
                if seq != expected:
                    defect = f"intact record carries seq {seq}, expected {expected}"
                    break
                if epoch < self.journal_epoch and seq > self.seq:
                    defect = f"intact record of epoch {epoch} after epoch {self.journal_epoch}"
                    break
                f = base + at + RECORD_HEADER
                mtype = <unsigned char> f[5]
                frame_expected = frame_size(mtype)
                code = 0
                if (<unsigned char> f[4] != PROTOCOL_VERSION or frame_expected != <int> length
                        or mn_load_u32(f) + 4 != length):
                    code = PR_MALFORMED
                elif (mtype != T_NEW_ORDER and mtype != T_CANCEL and mtype != T_REPLACE and mtype != T_ADMIN
                        and mtype != T_NEW_STOP_ORDER):
                    code = PR_NOT_A_REQUEST
                else:
                    code = validate_frame(f, mtype)
                if code:
                    defect = f"intact record holds a bad frame (protocol reject code {code})"
                    break
                if seq > self.seq:
                    if seq != self.seq + 1:
                        defect = f"journal resumes at seq {seq} but the state is at seq {self.seq}"
                        break
                    self.out.length = 0
                    self._apply_frame(f, mtype)
                    if answers:
                        buf_reserve(&kept, self.out.length)
                        memcpy(kept.data + kept.length, self.out.data, self.out.length)
                        kept.length += self.out.length
                    applied += 1
                    self.journal_epoch = epoch
                elif epoch > self.journal_epoch:
                    self.journal_epoch = epoch
                expected += 1
                at += length + RECORD_OVERHEAD
            result = PyBytes_FromStringAndSize(kept.data, kept.length) if kept.length else b""
        finally:
            free(kept.data)
        return (at, applied, defect, result, expected - 1)

    # ---- one request with plain values -----------------------------------------------------------

    cdef bytes _answer(self, size_t start, int kind):
        finish_answer(&self.out, start, <uint16_t> self.last_flags)
        self._count(kind, start)
        return PyBytes_FromStringAndSize(self.out.data, self.out.length)

    @cython.binding(False)  # a plain C method: called without a bound-method object
    def submit(self, uint64_t request_id, client_order_id, account, symbol, int side, int order_type,
               int time_in_force, int order_flags, int64_t quantity, int64_t price):
        """A new order; returns its encoded answer frames."""
        cdef char key[KEY_LEN]
        cdef char sym[SYMBOL_LEN]
        put_text(client_order_id, key, COID_LEN)
        put_text(account, key + COID_LEN, ACCOUNT_LEN)
        put_text(symbol, sym, SYMBOL_LEN)
        self.out.length = 0
        self.seq += 1
        self.last_flags = 0
        self._new_order(request_id, key, sym, side, order_type, time_in_force, order_flags, quantity, price)
        return self._answer(0, K_NEW_ORDER)

    @cython.binding(False)  # a plain C method: called without a bound-method object
    def submit_stop(self, uint64_t request_id, client_order_id, account, symbol, int side, int order_type,
                    int time_in_force, int order_flags, int64_t quantity, int64_t price, int64_t stop_price):
        """A new stop (``order_type`` MARKET) or stop-limit (LIMIT) order; returns its encoded answer."""
        cdef char key[KEY_LEN]
        cdef char sym[SYMBOL_LEN]
        put_text(client_order_id, key, COID_LEN)
        put_text(account, key + COID_LEN, ACCOUNT_LEN)
        put_text(symbol, sym, SYMBOL_LEN)
        self.out.length = 0
        self.seq += 1
        self.last_flags = 0
        self._new_stop_order(request_id, key, sym, side, order_type, time_in_force, order_flags, quantity, price,
                             stop_price)
        return self._answer(0, K_NEW_STOP_ORDER)

    @cython.binding(False)  # a plain C method: called without a bound-method object
    def cancel(self, uint64_t request_id, account, symbol, uint64_t order_id):
        """Cancel a live order; returns the encoded answer."""
        cdef char acct[ACCOUNT_LEN]
        cdef char sym[SYMBOL_LEN]
        put_text(account, acct, ACCOUNT_LEN)
        put_text(symbol, sym, SYMBOL_LEN)
        self.out.length = 0
        self.seq += 1
        self.last_flags = 0
        self._cancel(request_id, acct, sym, order_id)
        return self._answer(0, K_CANCEL)

    @cython.binding(False)  # a plain C method: called without a bound-method object
    def replace(self, uint64_t request_id, account, symbol, uint64_t order_id, int64_t quantity,
                int64_t price):
        """Change a live order's leaves quantity and price; returns the encoded answer."""
        cdef char acct[ACCOUNT_LEN]
        cdef char sym[SYMBOL_LEN]
        put_text(account, acct, ACCOUNT_LEN)
        put_text(symbol, sym, SYMBOL_LEN)
        self.out.length = 0
        self.seq += 1
        self.last_flags = 0
        self._replace(request_id, acct, sym, order_id, quantity, price)
        return self._answer(0, K_REPLACE)

    @cython.binding(False)  # a plain C method: called without a bound-method object
    def admin(self, uint64_t request_id, symbol, int action):
        """HALT, RESUME or END_OF_DAY a symbol ("" for the whole engine); returns the encoded answer."""
        cdef char sym[SYMBOL_LEN]
        put_text(symbol, sym, SYMBOL_LEN)
        self.out.length = 0
        self.seq += 1
        self.last_flags = 0
        self._admin(request_id, sym, action)
        return self._answer(0, K_ADMIN)

    def process(self, request):
        """Apply one request given as a protocol message tuple; return its answer as message tuples
        (the reference engine's API)."""
        cdef int kind = request_kind(request)
        if kind == K_NEW_ORDER:
            rid, coid, account, symbol, side, order_type, tif, flags, quantity, price = request
            answer = self.submit(rid, coid, account, symbol, byte(side), byte(order_type), byte(tif), byte(flags),
                                 quantity, price)
        elif kind == K_NEW_STOP_ORDER:
            rid, coid, account, symbol, side, order_type, tif, flags, quantity, price, stop_price = request
            answer = self.submit_stop(rid, coid, account, symbol, byte(side), byte(order_type), byte(tif),
                                      byte(flags), quantity, price, stop_price)
        elif kind == K_CANCEL:
            answer = self.cancel(*request)
        elif kind == K_REPLACE:
            answer = self.replace(*request)
        elif kind == K_ADMIN:
            rid, symbol, action = request
            answer = self.admin(rid, symbol, byte(action))
        else:  # not a state-changing request: answered, never raised
            request_id = getattr(request, "request_id", 0)
            return self._invalid(request_id if type(request_id) is int else 0)
        return [message for message, _ in decode_stream(answer)[0]]

    def _invalid(self, request_id):
        from meridian.protocol import Reject

        self.seq += 1
        self.last_flags = 0
        return [Reject(request_id, self.seq, 0, "", "", INVALID_ORDER)]

    # ---- queries ---------------------------------------------------------------------------------

    @property
    def last_was_duplicate(self):
        return bool(self.last_flags & FLAG_DUPLICATE)

    @property
    def last_was_replace(self):
        return bool(self.last_flags & FLAG_REPLACED)

    @property
    def live_order_count(self):
        return self.live_orders

    @property
    def client_order_ids(self):
        """Client order ids held for duplicate detection (the day's, plus the live orders')."""
        return self.dup_len

    cdef int _index_of(self, str symbol) except -1:
        cdef char sym[SYMBOL_LEN]
        cdef int b
        put_text(symbol, sym, SYMBOL_LEN)
        b = self._book_of(mn_load_u64(sym))
        if b < 0:
            raise KeyError(symbol)
        return b

    def top_of_book(self, str symbol):
        """(bid price, bid quantity, ask price, ask quantity); zeros for an empty side."""
        cdef Book *book = &self.books[self._index_of(symbol)]
        cdef SideBook *bids = &book.sides[0]
        cdef SideBook *asks = &book.sides[1]
        cdef int64_t bid_px = 0, bid_qty = 0, ask_px = 0, ask_qty = 0
        if bids.n:
            bid_px = bids.refs[bids.n - 1].key
            bid_qty = self.levels[bids.refs[bids.n - 1].level].total
        if asks.n:
            ask_px = -asks.refs[asks.n - 1].key
            ask_qty = self.levels[asks.refs[asks.n - 1].level].total
        return (bid_px, bid_qty, ask_px, ask_qty)

    def depth(self, str symbol, int levels):
        """The best ``levels`` levels of each side as (price, total quantity), best first."""
        cdef Book *book = &self.books[self._index_of(symbol)]
        cdef int k
        cdef uint32_t n, at
        cdef SideBook *s
        sides = []
        for k in range(2):
            s = &book.sides[k]
            found = []
            n = 0
            at = s.n
            while at > 0 and <int> n < levels:
                at -= 1
                found.append((self.levels[s.refs[at].level].price, self.levels[s.refs[at].level].total))
                n += 1
            sides.append(found)
        return sides[0], sides[1]

    def level_counts(self):
        """symbol -> (bid levels, ask levels)."""
        cdef int i
        return {self._symbols[i]: (self.books[i].sides[0].n, self.books[i].sides[1].n)
                for i in range(self.nbooks)}

    def trade_counts(self):
        """symbol -> trades since the engine started (or was restored)."""
        cdef int i
        return {self._symbols[i]: self.books[i].trades for i in range(self.nbooks)}

    def request_counts(self):
        """(request type, outcome) -> requests answered, for every pair that happened."""
        cdef int k, o
        return {
            (REQUEST_KINDS[k], OUTCOMES[o]): self.counts[k][o]
            for k in range(N_KINDS) for o in range(N_OUTCOMES) if self.counts[k][o]
        }

    cdef object _view(self, uint32_t slot):
        cdef Order *o = &self.orders[slot]
        return OrderView(
            o.order_id, text_of(o.key, COID_LEN), text_of(o.key + COID_LEN, ACCOUNT_LEN),
            self._symbols[o.book], o.side, o.order_type, o.tif, o.flags, o.price, o.quantity, o.leaves,
            o.filled, o.cancelled, order_status(o), stop_price_of(o) if o.level == STOP_WAITING else 0,
        )

    cdef object _record(self, uint32_t slot):
        cdef Order *o = &self.orders[slot]
        return OrderRecord(
            o.order_id, text_of(o.key, COID_LEN), text_of(o.key + COID_LEN, ACCOUNT_LEN),
            self._symbols[o.book], o.side, o.order_type, o.tif, o.flags, o.price, o.quantity, o.leaves,
            o.filled, o.cancelled,
        )

    def order_status(self, uint64_t order_id):
        """The live order ``order_id`` (None once it is finished: the engine keeps live orders only)."""
        cdef uint32_t slot = NIL
        if 0 < order_id <= self.order_count:
            slot = self._slot_of(order_id)
        return None if slot == NIL else self._view(slot)

    def find_client_order(self, str account, str client_order_id):
        """The order id held for (account, client order id) today, live or finished; else None."""
        cdef char key[KEY_LEN]
        cdef int64_t found
        cdef DupProbe pr
        if not client_order_id:
            return None
        put_text(client_order_id, key, COID_LEN)
        put_text(account, key + COID_LEN, ACCOUNT_LEN)
        found = self._dup_find(key, &pr)
        return None if found < 0 else self.dups[found].order_id

    cdef list _resting_slots(self, int b):
        """The resting orders of one book, bids then asks, each side in priority order."""
        cdef Book *book = &self.books[b]
        cdef int k
        cdef uint32_t at, cursor
        cdef SideBook *s
        slots = []
        for k in range(2):
            s = &book.sides[k]
            at = s.n
            while at > 0:
                at -= 1
                cursor = self.levels[s.refs[at].level].head
                while cursor != NIL:
                    slots.append(cursor)
                    cursor = self.orders[cursor].next
        return slots

    def resting_orders(self, str symbol):
        """Every resting order of ``symbol`` as an OrderView: bids then asks, in priority order."""
        cdef int b = self._index_of(symbol)
        return [self._view(slot) for slot in self._resting_slots(b)]

    cdef list _stop_slots(self, int b):
        """The waiting stop orders of one book in trigger order: buy stops, then sell stops."""
        cdef int k
        cdef uint32_t at
        cdef StopSide *s
        slots = []
        for k in range(2):
            s = &self.books[b].stops[k]
            at = s.n
            while at > 0:
                at -= 1
                slots.append(s.refs[at].slot)
        return slots

    def symbol_halted(self, str symbol):
        """Whether ``symbol`` is halted, by its own halt or the whole node's."""
        cdef int b = self._index_of(symbol)
        return bool(self.books[b].halted or self.global_halt)

    def waiting_stops(self, str symbol):
        """Every stop order of ``symbol`` not triggered yet, as an OrderView, in trigger order."""
        cdef int b = self._index_of(symbol)
        return [self._view(slot) for slot in self._stop_slots(b)]

    def book_checksums(self):
        cdef int b
        checksums = {}
        for b in self._books_by_symbol():
            checksums[self._symbols[b]] = book_checksum(
                self._symbols[b], bool(self.books[b].halted), self.books[b].last_price,
                [self._record(slot) for slot in self._resting_slots(b)],
                [(*self._record(slot), stop_price_of(&self.orders[slot])) for slot in self._stop_slots(b)],
            )
        return checksums

    def checksum(self):
        """u64 over every book's resting orders and trading state plus the engine's counters."""
        return engine_checksum(self.seq, self.order_count, self.trade_id, self.global_halt, self.book_checksums())

    # ---- snapshots -------------------------------------------------------------------------------

    def snapshot(self):
        """Canonical bytes of the whole state (live orders, the day's client order ids, counters);
        ``restore`` is its exact inverse."""
        cdef Buf b
        cdef int i, k
        cdef Book *book
        cdef char *p
        cdef size_t n, count_at
        cdef uint32_t slot, resting
        cdef Order *o
        cdef DupEntry *e
        memset(&b, 0, sizeof(Buf))
        try:
            header = struct.pack(
                SNAPSHOT_HEADER, SNAPSHOT_MAGIC, SNAPSHOT_VERSION, self.seq, self.trade_id, self.order_count,
                1 if self.global_halt else 0, self.journal_epoch,
            )
            instruments = b"".join(
                struct.pack("<I", len(encoded)) + encoded
                for encoded in (repr_instrument(self.instruments[s]) for s in self._symbols)
            )
            buf_reserve(&b, len(header) + 4 + len(instruments))
            memcpy(b.data, <const char *> header, len(header))
            b.length = len(header)
            mn_store_u32(b.data + b.length, <uint32_t> self.nbooks)
            b.length += 4
            memcpy(b.data + b.length, <const char *> instruments, len(instruments))
            b.length += len(instruments)
            for i in range(self.nbooks):
                book = &self.books[i]
                buf_reserve(&b, 8 + 1 + 8 + 8 + 4)
                p = b.data + b.length
                memcpy(p, book.symbol, SYMBOL_LEN)
                p[8] = 1 if book.halted else 0
                mn_store_i64(p + 9, book.last_price)
                mn_store_u64(p + 17, book.trades)
                b.length += 25
                count_at = b.length
                b.length += 4
                resting = 0
                for slot in self._resting_slots(i):
                    o = &self.orders[slot]
                    buf_reserve(&b, 88)
                    self._put_order(b.data + b.length, o)
                    b.length += 88
                    resting += 1
                mn_store_u32(b.data + count_at, resting)
                count_at = b.length
                buf_reserve(&b, 4)
                b.length += 4
                resting = 0
                for slot in self._stop_slots(i):
                    o = &self.orders[slot]
                    buf_reserve(&b, 96)
                    p = b.data + b.length
                    self._put_order(p, o)
                    mn_store_i64(p + 88, stop_price_of(o))
                    b.length += 96
                    resting += 1
                mn_store_u32(b.data + count_at, resting)
            # Every client order id of the day, in the table's order (live ones with status 0).
            count_at = b.length
            buf_reserve(&b, 8)
            b.length += 8
            n = 0
            for k in range(<int> self.dup_len):
                e = &self.dups[k]
                buf_reserve(&b, 72)
                p = b.data + b.length
                memcpy(p, e.key, KEY_LEN)
                mn_store_u64(p + 36, e.order_id)
                mn_store_u16(p + 44, e.book)
                p[46] = <char> e.side
                p[47] = <char> (0 if e.slot != NIL else e.status)
                mn_store_i64(p + 48, e.price)
                mn_store_i64(p + 56, e.quantity)
                mn_store_i64(p + 64, e.filled)
                b.length += 72
                n += 1
            mn_store_u64(b.data + count_at, n)
            body = PyBytes_FromStringAndSize(b.data, b.length)
        finally:
            free(b.data)
        return body + struct.pack("<Q", self.checksum())

    cdef void _put_order(self, char *p, Order *o) noexcept nogil:
        """An order as a snapshot holds it (88 bytes)."""
        mn_store_u64(p, o.order_id)
        memcpy(p + 8, o.key, KEY_LEN)
        p[44] = <char> o.side
        p[45] = <char> o.order_type
        p[46] = <char> o.tif
        p[47] = <char> o.flags
        mn_store_i64(p + 48, o.price)
        mn_store_i64(p + 56, o.quantity)
        mn_store_i64(p + 64, o.leaves)
        mn_store_i64(p + 72, o.filled)
        mn_store_i64(p + 80, o.cancelled)

    cdef uint32_t _load_order(self, const char *p, int b) except? 0xFFFFFFFF:
        """A new slot holding the order a snapshot wrote with ``_put_order``, mapped by its id."""
        cdef uint32_t slot = self._new_order_slot()
        cdef Order *o = &self.orders[slot]
        o.order_id = mn_load_u64(p)
        memcpy(o.key, p + 8, KEY_LEN)
        o.side = <unsigned char> p[44]
        o.order_type = <unsigned char> p[45]
        o.tif = <unsigned char> p[46]
        o.flags = <unsigned char> p[47]
        o.price = mn_load_i64(p + 48)
        o.quantity = mn_load_i64(p + 56)
        o.leaves = mn_load_i64(p + 64)
        o.filled = mn_load_i64(p + 72)
        o.cancelled = mn_load_i64(p + 80)
        o.book = <uint16_t> b
        o.dup = 0
        o.level = NIL
        self._check_loaded(slot, b)
        return slot

    @classmethod
    def restore(cls, data):
        """The engine ``snapshot`` described (this format, or the previous engine's JSON snapshot);
        ValueError if ``data`` is malformed or inconsistent."""
        raw = bytes(data)
        if raw[:1] == b"{":
            return cls._restore_json(raw)
        if raw[:8] != SNAPSHOT_MAGIC:
            raise ValueError("not a matching engine snapshot")
        try:
            return cls._restore_binary(raw)
        except (struct.error, IndexError, UnicodeDecodeError, ProtocolError) as exc:
            raise ValueError(f"malformed engine snapshot: {exc!r}") from None

    @classmethod
    def _restore_binary(cls, bytes raw):
        cdef MatchingEngine engine
        cdef const char *p = PyBytes_AS_STRING(raw)
        cdef Py_ssize_t size = PyBytes_GET_SIZE(raw), at
        cdef uint32_t nbooks, resting, stops, r, slot
        cdef int i, b
        cdef uint64_t n, k
        cdef int64_t stop
        cdef Order *o
        cdef DupEntry *e
        cdef uint64_t hash
        magic, version, seq, trade_id, order_count, halt, epoch = struct.unpack_from(SNAPSHOT_HEADER, raw, 0)
        if version not in SNAPSHOT_VERSIONS:
            raise ValueError(f"snapshot version {version} is not one of {SNAPSHOT_VERSIONS}")
        at = struct.calcsize(SNAPSHOT_HEADER)
        (nbooks,) = struct.unpack_from("<I", raw, at)
        at += 4
        instruments = []
        for i in range(nbooks):
            (length,) = struct.unpack_from("<I", raw, at)
            instruments.append(parse_instrument(raw[at + 4 : at + 4 + length]))
            at += 4 + length
        engine = cls(instruments)
        engine.seq, engine.trade_id, engine.order_count = seq, trade_id, order_count
        engine.global_halt = bool(halt)
        engine.journal_epoch = epoch
        loaded = []
        waiting = []
        for i in range(<int> nbooks):
            if at + 29 > size:
                raise ValueError("snapshot ends inside a book")
            b = engine._book_of(mn_load_u64(p + at))
            if b != i:
                raise ValueError("snapshot books are out of order")
            engine.books[b].halted = p[at + 8] != 0
            engine.books[b].trading = not (engine.books[b].halted or engine.global_halt)
            engine._set_last_price(&engine.books[b], mn_load_i64(p + at + 9))
            engine.books[b].trades = mn_load_u64(p + at + 17)
            resting = mn_load_u32(p + at + 25)
            at += 29
            if at + <Py_ssize_t> resting * 88 > size:
                raise ValueError("snapshot ends inside a book's orders")
            for r in range(resting):
                loaded.append(engine._load_order(p + at, b))
                at += 88
            if version < 3:  # version 2 knew no stop orders
                continue
            if at + 4 > size:
                raise ValueError("snapshot ends inside a book")
            stops = mn_load_u32(p + at)
            at += 4
            if at + <Py_ssize_t> stops * 96 > size:
                raise ValueError("snapshot ends inside a book's stop orders")
            for r in range(stops):
                slot = engine._load_order(p + at, b)
                stop = mn_load_i64(p + at + 88)
                o = &engine.orders[slot]
                if stop <= 0 or o.filled or o.order_type not in (LIMIT, MARKET):
                    raise ValueError(f"snapshot stop order {o.order_id} cannot wait in {engine._symbols[b]}")
                o.level = STOP_WAITING
                o.prev = <uint32_t> (<uint64_t> stop & LOW32)
                o.next = <uint32_t> (<uint64_t> stop >> 32)
                waiting.append(slot)
                at += 96
        if at + 8 > size:
            raise ValueError("snapshot ends before its client order ids")
        n = mn_load_u64(p + at)
        at += 8
        if at + <Py_ssize_t> (n * 72) + 8 != size:
            raise ValueError("snapshot size does not match its contents")
        for slot in loaded:
            engine._rest(slot)
        for slot in waiting:
            engine._add_stop(slot)
        for k in range(n):
            engine._dup_loaded(p + at, mn_load_u64(p + at + 36), mn_load_u16(p + at + 44),
                               <unsigned char> p[at + 46], <unsigned char> p[at + 47], mn_load_i64(p + at + 48),
                               mn_load_i64(p + at + 56), mn_load_i64(p + at + 64))
            at += 72
        engine._check_ids_complete()
        (checksum,) = struct.unpack_from("<Q", raw, at)
        if engine.checksum() != checksum:
            raise ValueError("snapshot state does not match its checksum")
        return engine

    cdef int _check_loaded(self, uint32_t slot, int b) except -1:
        cdef Order *o = &self.orders[slot]
        if not (0 < o.order_id <= self.order_count) or o.leaves <= 0 or o.side not in (BUY, SELL):
            raise ValueError(f"snapshot order {o.order_id} cannot rest in {self._symbols[b]}")
        if o.quantity != o.filled + o.leaves + o.cancelled:
            raise ValueError(f"snapshot order {o.order_id} does not add up")
        if self._slot_of(o.order_id) != NIL:
            raise ValueError(f"snapshot lists order {o.order_id} twice")
        self._map_id(o.order_id, slot)
        return 0

    cdef int _dup_loaded(self, const char *key, uint64_t order_id, uint16_t book, uint8_t side,
                         uint8_t status, int64_t price, int64_t quantity, int64_t filled) except -1:
        """One client order id of a snapshot: a live order's (status 0) or a finished one's."""
        cdef DupProbe pr
        cdef uint32_t slot = NIL
        cdef DupEntry *e
        if self._dup_find(key, &pr) >= 0 or book >= self.nbooks or not 0 < order_id <= self.order_count:
            raise ValueError("snapshot holds a bad client order id entry")
        if status == 0:
            slot = self._slot_of(order_id)
            if slot == NIL or memcmp(self.orders[slot].key, key, KEY_LEN) != 0 or self.orders[slot].dup:
                raise ValueError(f"snapshot client order id entry names order {order_id}, which is not live")
        elif status != STATUS_FILLED and status != STATUS_CANCELLED:
            raise ValueError("snapshot holds a bad client order id entry")
        index = self._dup_add(key, &pr, slot, order_id, book, side)
        if slot != NIL:
            self.orders[slot].dup = index
        else:
            e = &self.dups[index - 1]
            e.status = status
            e.price = price
            e.quantity = quantity
            e.filled = filled
        return 0

    cdef int _check_ids_complete(self) except -1:
        """Every live order with a client order id got its entry back."""
        cdef size_t p
        cdef int i
        cdef IdPage *page
        for p in range(self.page_start, self.page_start + self.page_len):
            page = self.pages[p]
            if page == NULL:
                continue
            for i in range(PAGE_SIZE):
                if page.slots[i] != NIL and not self.orders[page.slots[i]].dup:
                    if not is_blank(self.orders[page.slots[i]].key, COID_LEN):
                        raise ValueError("snapshot leaves a live order's client order id out")
        return 0

    @classmethod
    def _restore_json(cls, bytes raw):
        """The previous engine's snapshot (JSON, every order ever accepted)."""
        cdef MatchingEngine engine
        cdef uint32_t slot
        cdef Order *o
        cdef DupEntry *e
        cdef char key[KEY_LEN]
        state = decode_json_snapshot(raw)
        engine = cls(state.instruments)
        engine.seq, engine.trade_id, engine.order_count = state.seq, state.trade_id, len(state.orders)
        engine.global_halt = state.global_halt
        by_id = {}
        for expected_id, fields in enumerate(state.orders, 1):
            if fields.order_id != expected_id or fields.symbol not in engine.instruments:
                raise ValueError(f"snapshot order {fields.order_id} is out of place")
            by_id[fields.order_id] = fields
        listed = set()
        loaded = []
        for record in state.books:
            if record.symbol not in engine.instruments:
                raise ValueError(f"snapshot book {record.symbol!r} is not an instrument")
            b = engine._index_of(record.symbol)
            engine.books[b].halted = record.halted
            engine.books[b].trading = not (record.halted or engine.global_halt)
            engine._set_last_price(&engine.books[b], record.last_price)
            for side, order_ids in ((BUY, record.bids), (SELL, record.asks)):
                for order_id in order_ids:
                    fields = by_id.get(order_id)
                    if fields is None or order_id in listed or fields.symbol != record.symbol or fields.side != side:
                        raise ValueError(f"snapshot book {record.symbol} lists order {order_id} wrongly")
                    listed.add(order_id)
                    slot = engine._new_order_slot()
                    engine._fill_order(slot, fields, b)
                    engine._check_loaded(slot, b)
                    loaded.append(slot)
        if len(listed) != sum(1 for fields in state.orders if fields.leaves > 0):
            raise ValueError("snapshot leaves live orders out of the books")
        for slot in loaded:
            engine._rest(slot)
        for fields in state.orders:  # the previous engine kept every order's id: all of them, in id order
            if not fields.client_order_id:
                continue
            put_text(fields.client_order_id, key, COID_LEN)
            put_text(fields.account, key + COID_LEN, ACCOUNT_LEN)
            engine._dup_loaded(
                key, fields.order_id, engine._index_of(fields.symbol), fields.side,
                0 if fields.order_id in listed else (STATUS_CANCELLED if fields.cancelled > 0 else STATUS_FILLED),
                fields.price, fields.quantity, fields.filled,
            )
        if engine.checksum() != state.checksum:
            raise ValueError("snapshot state does not match its checksum")
        return engine

    cdef int _fill_order(self, uint32_t slot, object fields, int b) except -1:
        cdef Order *o = &self.orders[slot]
        put_text(fields.client_order_id, o.key, COID_LEN)
        put_text(fields.account, o.key + COID_LEN, ACCOUNT_LEN)
        o.order_id = fields.order_id
        o.side = fields.side
        o.order_type = fields.order_type
        o.tif = fields.time_in_force
        o.flags = fields.order_flags
        o.price = fields.price
        o.quantity = fields.quantity
        o.leaves = fields.leaves
        o.filled = fields.filled
        o.cancelled = fields.cancelled
        o.book = <uint16_t> b
        o.dup = 0
        o.level = NIL
        return 0

    def reserve(self, client_order_ids, live_orders):
        """Make room for a trading day's ``client_order_ids`` and ``live_orders`` now, and touch it,
        so the day's first orders find their memory mapped (the node calls this once at start)."""
        cdef size_t slots = 16, i
        cdef uint64_t *table
        cdef DupEntry *e
        while slots < 2 * client_order_ids:
            slots *= 2
        if slots > self.dup_mask + 1:  # a bigger index, built now (at start, not on the hot path)
            if self.dup_old != NULL:
                self._dup_migrate(self.dup_old_mask + 1)
            table = <uint64_t *> mn_table_alloc(sizeof(uint64_t) * slots)
            if table == NULL:
                raise MemoryError()
            for i in range(self.dup_len):
                e = &self.dups[i]
                if e.hashed:
                    self._dup_place(table, slots - 1, mn_hash_bytes(e.key, KEY_LEN), i)
            mn_table_free(self.dup_index, sizeof(uint64_t) * (self.dup_mask + 1))
            self.dup_index = table
            self.dup_mask = slots - 1
            self.dup_initial = slots
        self.dup_reserved = max(self.dup_reserved, client_order_ids)
        self._reserve_dups(client_order_ids)
        if live_orders > self.order_cap:
            self._grow_orders(live_orders)
        memset(&self.dups[self.dup_len], 0, sizeof(DupEntry) * (self.dup_cap - self.dup_len))
        mn_touch(self.dup_index, sizeof(uint64_t) * (self.dup_mask + 1))

    def memory_bytes(self):
        """Bytes the engine's C arrays hold (order pool, levels, id pages, client order ids, buffers)."""
        cdef size_t total = sizeof(Order) * self.order_cap + sizeof(Level) * self.level_cap
        cdef size_t p
        cdef int i
        total += sizeof(IdPage *) * self.page_cap
        for p in range(self.page_start, self.page_start + self.page_len):
            if self.pages[p] != NULL:
                total += sizeof(IdPage)
        total += sizeof(DupEntry) * self.dup_cap + sizeof(uint64_t) * (self.dup_mask + 1)
        if self.dup_old != NULL:
            total += sizeof(uint64_t) * (self.dup_old_mask + 1)
        if self.streams != NULL:
            total += sizeof(Stream) * (self.stream_mask + 1)
            for p in range(self.stream_mask + 1):
                total += sizeof(StreamRef) * self.streams[p].cap
        for i in range(self.nbooks):
            total += sizeof(LevelRef) * (self.books[i].sides[0].cap + self.books[i].sides[1].cap)
            total += sizeof(StopRef) * (self.books[i].stops[0].cap + self.books[i].stops[1].cap)
        total += sizeof(uint32_t) * self.fire_cap
        total += self.out.capacity + self.now.capacity + self.journal.capacity
        return total


# ---- helpers -----------------------------------------------------------------------------------------

cdef int frame_size(int mtype) noexcept nogil:
    if mtype == T_NEW_ORDER:
        return SZ_NEW_ORDER
    if mtype == T_CANCEL:
        return SZ_CANCEL
    if mtype == T_REPLACE:
        return SZ_REPLACE
    if mtype == T_HEARTBEAT:
        return SZ_HEARTBEAT
    if mtype == T_SNAPSHOT_REQUEST:
        return SZ_SNAPSHOT_REQUEST
    if mtype == T_BOOK_EXPORT:
        return SZ_BOOK_EXPORT
    if mtype == T_RESTING_ORDER:
        return SZ_RESTING_ORDER
    if mtype == T_BOOK_EXPORTED:
        return SZ_BOOK_EXPORTED
    if mtype == T_ADMIN:
        return SZ_ADMIN
    if mtype == T_NEW_STOP_ORDER:
        return SZ_NEW_STOP_ORDER
    if mtype == T_ACK:
        return SZ_ACK
    if mtype == T_REJECT:
        return SZ_REJECT
    if mtype == T_FILL:
        return SZ_FILL
    if mtype == T_CANCEL_ACK:
        return SZ_CANCEL_ACK
    if mtype == T_SNAPSHOT:
        return SZ_SNAPSHOT
    if mtype == T_ADMIN_ACK:
        return SZ_ADMIN_ACK
    if mtype == T_PROTOCOL_REJECT:
        return SZ_PROTOCOL_REJECT
    if mtype == T_LOGON:
        return SZ_LOGON
    if mtype == T_LOGON_CHALLENGE:
        return SZ_LOGON_CHALLENGE
    if mtype == T_LOGON_ACK:
        return SZ_LOGON_ACK
    return 0


cdef inline int order_fields(const char *o) noexcept nogil:
    """An order's client order id, account and symbol (from ``o``), then its side, type and time in
    force (from ``o + 44``), as NEW_ORDER, NEW_STOP_ORDER and RESTING_ORDER lay them out."""
    cdef int side = <unsigned char> o[44]
    if not (valid_text(o, COID_LEN) and valid_text(o + 20, ACCOUNT_LEN) and valid_text(o + 36, SYMBOL_LEN)):
        return PR_BAD_FIELD
    if side != BUY and side != SELL:
        return PR_BAD_FIELD
    if <unsigned char> o[45] != LIMIT and <unsigned char> o[45] != MARKET:
        return PR_BAD_FIELD
    if <unsigned char> o[46] < GTC or <unsigned char> o[46] > DAY:
        return PR_BAD_FIELD
    return 0


cdef int validate_frame(const char *f, int mtype) noexcept nogil:
    """The checks ``meridian.protocol.decode`` makes on a frame of known type and size: 0 or the
    ProtocolRejectCode it would answer (strings, then enums, in field order)."""
    cdef int action
    if mtype == T_NEW_ORDER or mtype == T_NEW_STOP_ORDER:
        return order_fields(f + 16)
    if mtype == T_CANCEL or mtype == T_REPLACE:
        if not (valid_text(f + 16, ACCOUNT_LEN) and valid_text(f + 32, SYMBOL_LEN)):
            return PR_BAD_FIELD
        return 0
    if mtype == T_SNAPSHOT_REQUEST or mtype == T_BOOK_EXPORT:
        return 0 if valid_text(f + 16, SYMBOL_LEN) else PR_BAD_FIELD
    if mtype == T_RESTING_ORDER:
        return order_fields(f + 32)
    if mtype == T_BOOK_EXPORTED:
        return 0 if valid_text(f + 24, SYMBOL_LEN) else PR_BAD_FIELD
    if mtype == T_ADMIN:
        if not valid_text(f + 16, SYMBOL_LEN):
            return PR_BAD_FIELD
        action = <unsigned char> f[24]
        if action < ADMIN_HALT or action > ADMIN_END_OF_DAY:
            return PR_BAD_FIELD
        return 0
    if mtype == T_ACK:
        if not (valid_text(f + 32, COID_LEN) and valid_text(f + 52, ACCOUNT_LEN) and valid_text(f + 68, SYMBOL_LEN)):
            return PR_BAD_FIELD
        if <unsigned char> f[76] not in (BUY, SELL) or <unsigned char> f[77] < 1 or <unsigned char> f[77] > 8:
            return PR_BAD_FIELD
        return 0
    if mtype == T_REJECT:
        if not (valid_text(f + 32, COID_LEN) and valid_text(f + 52, SYMBOL_LEN)):
            return PR_BAD_FIELD
        return 0 if valid_reject_reason(mn_load_u16(f + 60)) else PR_BAD_FIELD
    if mtype == T_FILL:
        if not (valid_text(f + 32, SYMBOL_LEN) and valid_text(f + 80, ACCOUNT_LEN) and valid_text(f + 96, ACCOUNT_LEN)
                and valid_text(f + 112, COID_LEN) and valid_text(f + 132, COID_LEN)):
            return PR_BAD_FIELD
        return 0 if <unsigned char> f[56] in (BUY, SELL) else PR_BAD_FIELD
    if mtype == T_CANCEL_ACK:
        if not (valid_text(f + 32, COID_LEN) and valid_text(f + 52, ACCOUNT_LEN) and valid_text(f + 68, SYMBOL_LEN)):
            return PR_BAD_FIELD
        return 0 if 1 <= <unsigned char> f[76] <= 7 else PR_BAD_FIELD
    if mtype == T_ADMIN_ACK:
        if not valid_text(f + 24, SYMBOL_LEN):
            return PR_BAD_FIELD
        return 0 if ADMIN_HALT <= <unsigned char> f[32] <= ADMIN_END_OF_DAY else PR_BAD_FIELD
    if mtype == T_PROTOCOL_REJECT:
        return 0 if 1 <= mn_load_u16(f + 16) <= PR_LAST_CODE else PR_BAD_FIELD
    if mtype == T_LOGON:
        return 0 if valid_text(f + 16, 32) and valid_text(f + 48, 64) else PR_BAD_FIELD
    if mtype == T_LOGON_CHALLENGE:
        return 0 if valid_text(f + 16, 64) else PR_BAD_FIELD
    if mtype == T_LOGON_ACK:
        if not valid_text(f + 24, ACCOUNT_LEN):
            return PR_BAD_FIELD
        return 0 if 1 <= <unsigned char> f[16] <= 3 else PR_BAD_FIELD
    return 0


cdef inline int session_check(const char *f, int mtype, int permissions, const char *account) noexcept nogil:
    """0, or the ProtocolRejectCode for a frame this session may not send (a heartbeat always may)."""
    if mtype == T_HEARTBEAT:
        return 0
    if mtype == T_ADMIN or mtype == T_SNAPSHOT_REQUEST or mtype == T_BOOK_EXPORT:
        return 0 if permissions & PERM_ADMIN else PR_NOT_PERMITTED
    if not (permissions & PERM_TRADE):
        return PR_NOT_PERMITTED
    if account != NULL:
        if mtype == T_NEW_ORDER or mtype == T_NEW_STOP_ORDER:
            if memcmp(f + 36, account, ACCOUNT_LEN) != 0:
                return PR_WRONG_ACCOUNT
        elif memcmp(f + 16, account, ACCOUNT_LEN) != 0:  # cancel, replace
            return PR_WRONG_ACCOUNT
    return 0


cdef bint valid_reject_reason(uint16_t reason) noexcept nogil:
    return (1 <= reason <= 13) or (20 <= reason <= 26)


cdef inline int byte(object value) except -1:
    """A field the wire carries in one byte; anything wider becomes 255 (never a valid value)."""
    return value if 0 <= value <= 255 else 255


cdef int request_kind(object request) except -2:
    from meridian.protocol import Admin, Cancel, NewOrder, NewStopOrder, Replace

    kind = type(request)
    if kind is NewOrder:
        return K_NEW_ORDER
    if kind is NewStopOrder:
        return K_NEW_STOP_ORDER
    if kind is Cancel:
        return K_CANCEL
    if kind is Replace:
        return K_REPLACE
    if kind is Admin:
        return K_ADMIN
    return -1


_INSTRUMENT = struct.Struct("<8sqqqqqq")


def repr_instrument(instrument):
    return _INSTRUMENT.pack(
        instrument.symbol.encode("ascii"), instrument.tick_size, instrument.lot_size, instrument.price_scale,
        instrument.reference_price, instrument.band_bps, instrument.max_order_quantity,
    )


def parse_instrument(data):
    symbol, tick, lot, scale, reference, band, maximum = _INSTRUMENT.unpack(data)
    return Instrument(symbol.rstrip(b"\0").decode("ascii"), tick, lot, scale, reference, band, maximum)
