/* C helpers for the native matching core (native.pyx): CRC32C, a key hash, little-endian access.
 *
 * CRC32C (Castagnoli, the polynomial of the journal and snapshot checksums) uses the SSE4.2 crc32
 * instruction when the CPU has it (checked once at run time, so the same build runs anywhere) and a
 * slicing-by-8 table otherwise. Both give google_crc32c.value()'s result; the tests hold them equal.
 */
#ifndef MERIDIAN_NATIVE_SUPPORT_H
#define MERIDIAN_NATIVE_SUPPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the wire protocol is little-endian and this core reads it in place: build on a little-endian host"
#endif

static inline uint64_t mn_load_u64(const char *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline int64_t mn_load_i64(const char *p) { int64_t v; memcpy(&v, p, 8); return v; }
static inline uint32_t mn_load_u32(const char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint16_t mn_load_u16(const char *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline void mn_store_u64(char *p, uint64_t v) { memcpy(p, &v, 8); }
static inline void mn_store_i64(char *p, int64_t v) { memcpy(p, &v, 8); }
static inline void mn_store_u32(char *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void mn_store_u16(char *p, uint16_t v) { memcpy(p, &v, 2); }

static inline uint64_t mn_nonzero_bytes(uint64_t w) {  /* 0x80 in each byte of w that is not 0 */
    const uint64_t low7 = 0x7F7F7F7F7F7F7F7FULL;
    return (((w & low7) + low7) | w) & ~low7;
}

/* Zero ``size`` bytes (a multiple of 4) of an answer frame about to be filled in: plain 8-byte
 * stores that gcc unrolls for the constant sizes, where a memset of 100-odd bytes would become a
 * `rep stos` with a start-up cost larger than the stores themselves. */
static inline void mn_zero(char *p, size_t size) {
    size_t i = 0;
    for (; i + 8 <= size; i += 8) {
        mn_store_u64(p + i, 0);
#if defined(__GNUC__)
        __asm__("" : "+r"(p));  /* keeps gcc from turning the loop back into a memset */
#endif
    }
    if (i < size) mn_store_u32(p + i, 0);
}

/* ---- CRC32C ---------------------------------------------------------------------------------- */

static uint32_t mn_crc_table[8][256];
static int mn_crc_ready = 0;
static int mn_crc_hardware = 0;

static void mn_crc_init(void) {
    if (mn_crc_ready) return;
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        mn_crc_table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = mn_crc_table[0][n];
        for (int t = 1; t < 8; t++) {
            c = mn_crc_table[0][c & 0xFF] ^ (c >> 8);
            mn_crc_table[t][n] = c;
        }
    }
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    mn_crc_hardware = __builtin_cpu_supports("sse4.2");
#endif
    mn_crc_ready = 1;
}

static uint32_t mn_crc32c_table(uint32_t crc, const char *buf, size_t len) {
    const unsigned char *p = (const unsigned char *)buf;
    crc = ~crc;
    while (len && ((uintptr_t)p & 7)) { crc = mn_crc_table[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8); len--; }
    while (len >= 8) {
        uint64_t word; memcpy(&word, p, 8);
        word ^= crc;
        crc = mn_crc_table[7][word & 0xFF] ^ mn_crc_table[6][(word >> 8) & 0xFF] ^
              mn_crc_table[5][(word >> 16) & 0xFF] ^ mn_crc_table[4][(word >> 24) & 0xFF] ^
              mn_crc_table[3][(word >> 32) & 0xFF] ^ mn_crc_table[2][(word >> 40) & 0xFF] ^
              mn_crc_table[1][(word >> 48) & 0xFF] ^ mn_crc_table[0][word >> 56];
        p += 8; len -= 8;
    }
    while (len--) crc = mn_crc_table[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("sse4.2")))
static uint32_t mn_crc32c_sse42(uint32_t crc, const char *buf, size_t len) {
    const unsigned char *p = (const unsigned char *)buf;
    uint64_t c = ~crc & 0xFFFFFFFFu;
    while (len >= 8) { uint64_t word; memcpy(&word, p, 8); c = __builtin_ia32_crc32di(c, word); p += 8; len -= 8; }
    uint32_t c32 = (uint32_t)c;
    while (len--) c32 = __builtin_ia32_crc32qi(c32, *p++);
    return ~c32;
}
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* A journal record's CRC32C: its 12-byte header (u32 length word, u64 seq) taken from registers,
 * then its frame read where it arrived (not from the record just copied: loads of freshly stored
 * bytes that straddle the stores would stall the chain on store forwarding). */
__attribute__((target("sse4.2")))
static uint32_t mn_crc32c_record_sse42(uint32_t word, uint64_t seq, const char *frame, size_t len) {
    const unsigned char *p = (const unsigned char *)frame;
    uint64_t c = __builtin_ia32_crc32si(0xFFFFFFFFu, word);
    c = __builtin_ia32_crc32di(c, seq);
    while (len >= 8) { uint64_t w; memcpy(&w, p, 8); c = __builtin_ia32_crc32di(c, w); p += 8; len -= 8; }
    uint32_t c32 = (uint32_t)c;
    while (len--) c32 = __builtin_ia32_crc32qi(c32, *p++);
    return ~c32;
}
#endif

/* google_crc32c.extend(crc, data): crc 0 starts a new checksum. */
static inline uint32_t mn_crc32c(uint32_t crc, const char *buf, size_t len) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (mn_crc_hardware) return mn_crc32c_sse42(crc, buf, len);
#endif
    return mn_crc32c_table(crc, buf, len);
}

static inline int mn_crc32c_is_hardware(void) { return mn_crc_hardware; }

/* The CRC32C of a journal record's header (``word``, ``seq``, little-endian) followed by ``frame``:
 * mn_crc32c(0, record, 12 + len) without reading the record back. */
static inline uint32_t mn_crc32c_record(uint32_t word, uint64_t seq, const char *frame, size_t len) {
    char header[12];
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (mn_crc_hardware) return mn_crc32c_record_sse42(word, seq, frame, len);
#endif
    memcpy(header, &word, 4);
    memcpy(header + 4, &seq, 8);
    return mn_crc32c_table(mn_crc32c_table(0, header, 12), frame, len);
}

/* ---- wire text fields ------------------------------------------------------------------------- */

/* A string field as the protocol decodes it: ASCII, no NUL before its NUL padding (``width`` a
 * multiple of 4), checked a word at a time. */
static inline int mn_valid_text(const char *p, int width) {
    const uint64_t high = 0x8080808080808080ULL;
    int i, padding = 0;
    for (i = 0; i < width; i += 8) {
        uint64_t w = width - i >= 8 ? mn_load_u64(p + i) : (uint64_t)mn_load_u32(p + i);
        uint64_t nonzero, zero;
        if (w & high) return 0;
        if (padding) {
            if (w) return 0;
            continue;
        }
        nonzero = mn_nonzero_bytes(w);
        zero = ~nonzero & high;
        if (zero) {
            if (nonzero & ~((zero & (0 - zero)) - 1)) return 0;  /* a character after the first NUL */
            padding = 1;
        }
    }
    return 1;
}

/* ---- a 64-bit hash of a byte string (for the client-order-id table) --------------------------- */

static inline uint64_t mn_mix(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static inline uint64_t mn_hash_bytes(const char *p, size_t len) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)len;
    while (len >= 8) { h = mn_mix(h ^ mn_load_u64(p)); p += 8; len -= 8; }
    uint64_t tail = 0;
    memcpy(&tail, p, len);
    return mn_mix(h ^ tail ^ 0x2545F4914F6CDD1DULL);
}

/* ---- client order ids as numbered streams ------------------------------------------------------

 * Most clients number their orders as FIX sessions do: a fixed prefix and a rising counter ("C1",
 * "C2", ... or "ORD-000017" style without the zeros). mn_coid_split splits a client order id (20
 * bytes, NUL padded) into that prefix and the number its canonical decimal suffix spells: 1 to 18
 * digits, no leading zero, after a non-NUL byte or at the start, and a prefix of at most
 * MN_STREAM_PREFIX bytes (random ids, whose last characters are digits by chance, keep to the hash
 * table instead of opening a stream each). Every id has at most one such split and (prefix,
 * number) gives the id back, so the split is exact. Returns where the digits start, or -1 for an id
 * without such a suffix. */

#define MN_STREAM_PREFIX 12

static inline int mn_coid_split(const char *coid, uint64_t *number) {
    uint64_t w0 = mn_load_u64(coid), w1 = mn_load_u64(coid + 8), w2 = mn_load_u32(coid + 16);
    uint64_t m;
    int end, start, i;
    uint64_t n = 0;
    if ((m = mn_nonzero_bytes(w2)) != 0) end = 16 + ((63 - __builtin_clzll(m)) >> 3) + 1;
    else if ((m = mn_nonzero_bytes(w1)) != 0) end = 8 + ((63 - __builtin_clzll(m)) >> 3) + 1;
    else if ((m = mn_nonzero_bytes(w0)) != 0) end = ((63 - __builtin_clzll(m)) >> 3) + 1;
    else return -1;
    start = end;
    while (start > 0 && (unsigned char)(coid[start - 1] - '0') < 10) start--;
    if (start == end || end - start > 18 || coid[start] == '0' || start > MN_STREAM_PREFIX) return -1;
    if (start > 0 && coid[start - 1] == 0) return -1;
    for (i = start; i < end; i++) n = n * 10 + (uint64_t)(coid[i] - '0');
    *number = n;
    return start;
}

static inline uint64_t mn_low_bytes(int n) {  /* a mask of a word's first n bytes (n may be out of 0..8) */
    return n <= 0 ? 0 : n >= 8 ? ~0ULL : (1ULL << (8 * n)) - 1;
}

/* A stream's key, as five words: the client order id with its digits (from ``start``) cleared, then
 * the account; computed in registers (no byte stores read back as words). */
static inline void mn_stream_key(uint64_t *w, const char *key, int start) {
    w[0] = mn_load_u64(key) & mn_low_bytes(start);
    w[1] = mn_load_u64(key + 8) & mn_low_bytes(start - 8);
    w[2] = (uint64_t)mn_load_u32(key + 16) & mn_low_bytes(start - 16);
    w[3] = mn_load_u64(key + 20);
    w[4] = mn_load_u64(key + 28);
}

/* A hash of a stream key for the small stream table: the words multiplied in parallel. */
static inline uint64_t mn_stream_hash(const uint64_t *w) {
    uint64_t h = w[0] * 0x9E3779B97F4A7C15ULL + w[1] * 0xC2B2AE3D27D4EB4FULL + w[2] * 0x165667B19E3779F9ULL +
                 w[3] * 0xD6E8FEB86659FD93ULL + w[4] * 0xFF51AFD7ED558CCDULL;
    h ^= h >> 33; h *= 0xC4CEB9FE1A85EC53ULL; h ^= h >> 33;  /* a byte that differs reaches the low bits */
    return h;
}

static inline int mn_stream_key_equal(const uint64_t *a, const uint64_t *b) {
    return ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3]) | (a[4] ^ b[4])) == 0;
}

/* ---- big zeroed tables: their own mapping, on huge pages where the kernel allows it ------------- */

#define MN_HUGE (2u << 20)

/* Zeroed memory for a hash table: a table probed at random pays a TLB miss per probe on 4 KiB pages;
 * on 2 MiB pages (MADV_HUGEPAGE) it mostly does not. Small tables come from calloc. */
static void *mn_table_alloc(size_t bytes) {
    if (bytes < MN_HUGE) return calloc(1, bytes);
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}

/* Fault every page of a buffer in (writing each page's first byte back), keeping its contents. */
static void mn_touch(void *p, size_t bytes) {
    volatile char *c = (volatile char *)p;
    for (size_t i = 0; i < bytes; i += 4096) c[i] = c[i];
}

static void mn_table_free(void *p, size_t bytes) {
    if (p == NULL) return;
    if (bytes < MN_HUGE) free(p); else munmap(p, bytes);
}

#endif
