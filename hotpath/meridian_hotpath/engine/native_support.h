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

/* google_crc32c.extend(crc, data): crc 0 starts a new checksum. */
static inline uint32_t mn_crc32c(uint32_t crc, const char *buf, size_t len) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (mn_crc_hardware) return mn_crc32c_sse42(crc, buf, len);
#endif
    return mn_crc32c_table(crc, buf, len);
}

static inline int mn_crc32c_is_hardware(void) { return mn_crc_hardware; }

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
