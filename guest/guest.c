/*
 * The wpsnap test guest: runs at ring 3 in long mode (boot.S gets it there), stores 8 bytes at a
 * time into a region of its memory following a pattern, times every store with rdtsc, and
 * prints one stats line per period over the serial port. It also keeps self-checking state
 * (checksummed records, one per page, whose balances have a conserved total) and verifies it
 * when the VMM asks through the mailbox page, when `check_every=1`, and once at start.
 *
 * Serial lines (one per vCPU per period, fields `key=value` separated by spaces; each vCPU
 * writes whole lines, and the VMM assembles lines per vCPU):
 *   WPREADY cpu=C pattern=P region_bytes=N pages=N tsc_khz=N cpus=N mem_bytes=N
 *   WPSTAT cpu=C seq=N tsc=T period_ns=N stores=N stall_ns=N ge1ms=N ge16ms=N max_ns=N hist=b:n,b:n,...
 *       hist lists the non-empty buckets of HIST_BUCKETS ("-" if none): bucket b holds stores
 *       that took [2^b, 2^(b+1)) ns
 *       (bucket 0 also holds 0 and 1 ns); a store's time runs from the previous store's
 *       completion to its own (see run()); stall_ns sums the stores that took >= STALL_NS.
 *       period_ns is the time spent storing since the previous line was printed (the time
 *       spent printing lines is in no period).
 *   WPCHECK cpu=C ok=0|1 records=N bad=N total=N expected=N transfers=N versions=N
 *   WPERROR reason
 *
 * Command line (multiboot; tokens without '=' are skipped, e.g. QEMU's kernel path):
 *   pattern=uniform|zipf|sequential|burst region_mb=N seed=N tsc_khz=N report_ms=N cpus=N
 *   check_every=0|1 burst_on_ms=N burst_off_ms=N fault_after_ms=N exit_after_ms=N
 */
#include "layout.h"

typedef unsigned long u64;
typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;

#define PAGE_BYTES 4096UL
#define HIST_BUCKETS 40
#define STALL_NS 2000
#define TRANSFER_EVERY_STORES 64
#define INITIAL_BALANCE 1000000UL
#define MAILBOX_MAGIC 0x58424c49414d5057UL /* "WPMAILBX" */
#define LINE_BYTES_MAX 1024

enum pattern { UNIFORM, ZIPF, SEQUENTIAL, BURST };
static const char *const pattern_names[] = {"uniform", "zipf", "sequential", "burst"};

/* Written by the VMM only; the guest reads it once per period. */
struct mailbox {
    volatile u64 magic;
    volatile u64 verify_seq;
};

/* One per check page, at the start of the page. */
struct record {
    u64 balance;
    u64 version;
    u64 index;
    u64 check;
};

struct config {
    enum pattern pattern;
    u64 region_bytes;
    u64 seed;
    u64 tsc_khz;
    u64 report_ms;
    u64 cpus;
    u64 check_every;
    u64 burst_on_ms;
    u64 burst_off_ms;
    u64 fault_after_ms;
    u64 exit_after_ms;
    u64 mem_bytes;
};

struct cpu {
    u64 rng;
    u64 first_record;
    u64 records;
    u64 transfers;
    u64 seen_verify_seq;
    u64 report_seq;
    /* this period */
    u64 stores;
    u64 stall_ns;
    u64 ge1ms;
    u64 ge16ms;
    u64 max_ns;
    u64 hist[HIST_BUCKETS];
};

static struct config cfg;
static struct cpu cpus[CPUS_MAX];
static volatile u32 init_done;
static u64 ns_mul; /* ns = (cycles * ns_mul) >> 32 */

/* gcc may emit calls to these even in freestanding code. */
void *memset(void *d, int c, u64 n) {
    u8 *p = d;
    while (n--) *p++ = (u8)c;
    return d;
}
void *memcpy(void *d, const void *s, u64 n) {
    u8 *p = d;
    const u8 *q = s;
    while (n--) *p++ = *q++;
    return d;
}

static inline u64 rdtsc(void) {
    u32 lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi)::"memory");
    return ((u64)hi << 32) | lo;
}

static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }

/* One `rep outsb`: a single exit for the whole line in KVM and QEMU. */
static void serial_write(const char *s, u64 n) {
    __asm__ volatile("rep outsb" : "+S"(s), "+c"(n) : "d"((u16)SERIAL_PORT) : "memory");
}

static inline u64 cycles_to_ns(u64 cycles) { return (u64)(((unsigned __int128)cycles * ns_mul) >> 32); }
static inline u64 ms_to_cycles(u64 ms) { return ms * cfg.tsc_khz; }

static u64 next_random(u64 *state) {
    /* xorshift64* */
    u64 x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DUL;
}

/* Uniform in [0, n) for n < 2^32, without a division. */
static inline u64 below(u64 r, u64 n) { return ((r >> 32) * n) >> 32; }

/* ---- output lines ---- */

struct line {
    char buf[LINE_BYTES_MAX];
    u64 len;
};

static void put_str(struct line *l, const char *s) {
    while (*s && l->len < LINE_BYTES_MAX - 1) l->buf[l->len++] = *s++;
}

static void put_u64(struct line *l, u64 v) {
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n && l->len < LINE_BYTES_MAX - 1) l->buf[l->len++] = tmp[--n];
}

static void put_kv(struct line *l, const char *key, u64 v) {
    put_str(l, " ");
    put_str(l, key);
    put_str(l, "=");
    put_u64(l, v);
}

static void line_send(struct line *l) {
    l->buf[l->len++] = '\n';
    serial_write(l->buf, l->len);
    l->len = 0;
}

static void guest_exit(u8 code) {
    outb(EXIT_PORT, code);
    for (;;) __asm__ volatile("pause");
}

static void fail(const char *reason) {
    struct line l = {.len = 0};
    put_str(&l, "WPERROR ");
    put_str(&l, reason);
    line_send(&l);
    guest_exit(2);
}

/* ---- configuration ---- */

static int str_eq(const char *a, u64 alen, const char *b) {
    u64 i = 0;
    for (; i < alen; i++)
        if (b[i] != a[i]) return 0;
    return b[i] == 0;
}

static u64 parse_u64(const char *s, u64 n) {
    u64 v = 0;
    if (n == 0 || n > 19) fail("bad number on the command line");
    for (u64 i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') fail("bad number on the command line");
        v = v * 10 + (u64)(s[i] - '0');
    }
    return v;
}

static void set_option(const char *key, u64 klen, const char *val, u64 vlen) {
    if (str_eq(key, klen, "pattern")) {
        for (u32 p = 0; p < 4; p++)
            if (str_eq(val, vlen, pattern_names[p])) {
                cfg.pattern = (enum pattern)p;
                return;
            }
        fail("unknown pattern (uniform, zipf, sequential, burst)");
    }
    u64 v = parse_u64(val, vlen);
    if (str_eq(key, klen, "region_mb")) cfg.region_bytes = v << 20;
    else if (str_eq(key, klen, "seed")) cfg.seed = v;
    else if (str_eq(key, klen, "tsc_khz")) cfg.tsc_khz = v;
    else if (str_eq(key, klen, "report_ms")) cfg.report_ms = v;
    else if (str_eq(key, klen, "cpus")) cfg.cpus = v;
    else if (str_eq(key, klen, "check_every")) cfg.check_every = v;
    else if (str_eq(key, klen, "burst_on_ms")) cfg.burst_on_ms = v;
    else if (str_eq(key, klen, "burst_off_ms")) cfg.burst_off_ms = v;
    else if (str_eq(key, klen, "fault_after_ms")) cfg.fault_after_ms = v;
    else if (str_eq(key, klen, "exit_after_ms")) cfg.exit_after_ms = v;
    else fail("unknown command-line option");
}

static void parse_cmdline(const char *s) {
    u64 i = 0;
    while (s[i] && i < CMDLINE_BYTES_MAX) {
        while (s[i] == ' ') i++;
        u64 start = i, eq = 0;
        while (s[i] && s[i] != ' ' && i < CMDLINE_BYTES_MAX) {
            if (s[i] == '=' && !eq) eq = i;
            i++;
        }
        if (eq) set_option(s + start, eq - start, s + eq + 1, i - eq - 1);
    }
}

static void configure(u32 mbi_addr) {
    const u32 *mbi = (const u32 *)(u64)mbi_addr;
    cfg.pattern = UNIFORM;
    cfg.seed = 1;
    cfg.tsc_khz = 2000000;
    cfg.report_ms = 500;
    cfg.cpus = 1;
    cfg.burst_on_ms = 100;
    cfg.burst_off_ms = 100;
    if (!mbi) fail("no multiboot information");
    u32 flags = mbi[0];
    if (!(flags & 1)) fail("the loader did not pass the memory size");
    cfg.mem_bytes = ((u64)mbi[2] + 1024) << 10;
    if (flags & 4) parse_cmdline((const char *)(u64)mbi[4]);
    if (cfg.mem_bytes > ((u64)MAPPED_GIB << 30)) cfg.mem_bytes = (u64)MAPPED_GIB << 30;
    if (cfg.mem_bytes <= REGION_ADDR + PAGE_BYTES) fail("guest memory too small for the region");
    if (cfg.region_bytes == 0) cfg.region_bytes = cfg.mem_bytes - REGION_ADDR;
    if (REGION_ADDR + cfg.region_bytes > cfg.mem_bytes) fail("region_mb does not fit in guest memory");
    if (cfg.region_bytes / PAGE_BYTES >= (1UL << 32)) fail("region too large");
    if (cfg.tsc_khz < 1000) fail("tsc_khz too small");
    if (cfg.cpus == 0 || cfg.cpus > CPUS_MAX) fail("cpus must be 1..8");
    if (cfg.report_ms == 0) fail("report_ms must be positive");
    ns_mul = (u64)((((unsigned __int128)1000000) << 32) / cfg.tsc_khz);
}

/* ---- self-check records ---- */

static inline struct record *record_at(u64 i) { return (struct record *)(CHECK_ADDR + i * PAGE_BYTES); }

static u64 record_check(const struct record *r) {
    u64 x = r->balance ^ (r->version * 0x9E3779B97F4A7C15UL) ^ (r->index * 0xC2B2AE3D27D4EB4FUL) ^ cfg.seed;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9UL;
    x ^= x >> 29;
    return x;
}

static void records_init(void) {
    for (u64 i = 0; i < CHECK_PAGES; i++) {
        struct record *r = record_at(i);
        r->balance = INITIAL_BALANCE;
        r->version = 0;
        r->index = i;
        r->check = record_check(r);
    }
}

/* Moves a random amount between two of this vCPU's records: the slice's total is conserved,
 * and each transfer bumps two versions, so versions sum to 2 * transfers. */
static void transfer(struct cpu *c) {
    u64 r = next_random(&c->rng);
    struct record *a = record_at(c->first_record + below(r, c->records));
    struct record *b = record_at(c->first_record + below(r << 32, c->records));
    u64 amount = (r >> 8) & 1023;
    a->balance -= amount;
    a->version++;
    a->check = record_check(a);
    b->balance += amount;
    b->version++;
    b->check = record_check(b);
    c->transfers++;
}

static void verify(u32 cpu_index, struct cpu *c) {
    u64 total = 0, versions = 0, bad = 0;
    for (u64 i = c->first_record; i < c->first_record + c->records; i++) {
        const struct record *r = record_at(i);
        if (r->index != i || r->check != record_check(r)) bad++;
        total += r->balance;
        versions += r->version;
    }
    u64 expected = c->records * INITIAL_BALANCE;
    int ok = bad == 0 && total == expected && versions == 2 * c->transfers;
    struct line l = {.len = 0};
    put_str(&l, "WPCHECK");
    put_kv(&l, "cpu", cpu_index);
    put_kv(&l, "ok", (u64)ok);
    put_kv(&l, "records", c->records);
    put_kv(&l, "bad", bad);
    put_kv(&l, "total", total);
    put_kv(&l, "expected", expected);
    put_kv(&l, "transfers", c->transfers);
    put_kv(&l, "versions", versions);
    line_send(&l);
}

/* ---- reporting ---- */

static void report(u32 cpu_index, struct cpu *c, u64 now, u64 period_cycles) {
    struct line l = {.len = 0};
    put_str(&l, "WPSTAT");
    put_kv(&l, "cpu", cpu_index);
    put_kv(&l, "seq", c->report_seq++);
    put_kv(&l, "tsc", now);
    put_kv(&l, "period_ns", cycles_to_ns(period_cycles));
    put_kv(&l, "stores", c->stores);
    put_kv(&l, "stall_ns", c->stall_ns);
    put_kv(&l, "ge1ms", c->ge1ms);
    put_kv(&l, "ge16ms", c->ge16ms);
    put_kv(&l, "max_ns", c->max_ns);
    /* Sparse: only non-empty buckets, as bucket:count (KVM under PVM exits once per serial
     * byte, ~0.1 ms each, so every byte saved counts). */
    put_str(&l, " hist=");
    int first = 1;
    for (u32 b = 0; b < HIST_BUCKETS; b++) {
        if (!c->hist[b]) continue;
        if (!first) put_str(&l, ",");
        first = 0;
        put_u64(&l, b);
        put_str(&l, ":");
        put_u64(&l, c->hist[b]);
        c->hist[b] = 0;
    }
    if (first) put_str(&l, "-");
    line_send(&l);
    c->stores = c->stall_ns = c->ge1ms = c->ge16ms = c->max_ns = 0;
}

static void ready(u32 cpu_index) {
    struct line l = {.len = 0};
    put_str(&l, "WPREADY");
    put_kv(&l, "cpu", cpu_index);
    put_str(&l, " pattern=");
    put_str(&l, pattern_names[cfg.pattern]);
    put_kv(&l, "region_bytes", cfg.region_bytes);
    put_kv(&l, "pages", cfg.region_bytes / PAGE_BYTES);
    put_kv(&l, "tsc_khz", cfg.tsc_khz);
    put_kv(&l, "cpus", cfg.cpus);
    put_kv(&l, "mem_bytes", cfg.mem_bytes);
    line_send(&l);
}

/* ---- the store loop ---- */

static inline void record_latency(struct cpu *c, u64 ns) {
    u32 b = 63 - (u32)__builtin_clzl(ns | 1);
    if (b >= HIST_BUCKETS) b = HIST_BUCKETS - 1;
    c->hist[b]++;
    c->stores++;
    if (ns >= STALL_NS) {
        c->stall_ns += ns;
        if (ns >= 1000000) c->ge1ms++;
        if (ns >= 16000000) c->ge16ms++;
    }
    if (ns > c->max_ns) c->max_ns = ns;
}

static inline u64 next_page(struct cpu *c, u64 pages, u64 *seq_page) {
    u64 r = next_random(&c->rng);
    switch (cfg.pattern) {
    case ZIPF: {
        /* Log-uniform rank (zipf with theta ~ 1, one octave at a time), scattered by a hash. */
        u32 bits = 64 - (u32)__builtin_clzl(pages);
        u32 octave = (u32)below(r, bits);
        u64 rank = ((1UL << octave) | (r & ((1UL << octave) - 1))) - 1;
        u64 h = (rank + 1) * 0x9E3779B97F4A7C15UL;
        return below(h, pages);
    }
    case SEQUENTIAL:
        *seq_page = *seq_page + 1 == pages ? 0 : *seq_page + 1;
        return *seq_page;
    default:
        return below(r, pages);
    }
}

static void run(u32 cpu_index, struct cpu *c) {
    struct mailbox *mb = (struct mailbox *)MAILBOX_ADDR;
    const u64 pages = cfg.region_bytes / PAGE_BYTES;
    const u64 period = ms_to_cycles(cfg.report_ms);
    const u64 start = rdtsc();
    u64 period_start = start, next_report = start + period;
    u64 burst_switch = start + ms_to_cycles(cfg.burst_on_ms);
    int idle = 0;
    u64 seq_page = below(next_random(&c->rng), pages);
    u64 count = 0;
    volatile u64 *const region = (volatile u64 *)REGION_ADDR;
    /* A store's latency is the time since the previous store completed: the store itself plus
     * the loop around it (~50 ns), so a stall anywhere in the loop (a fault on a record page in
     * transfer(), the vCPU descheduled) is counted, not only one inside the store. */
    u64 prev = start;
    for (;;) {
        u64 now;
        if (!idle) {
            u64 page = next_page(c, pages, &seq_page);
            region[page * (PAGE_BYTES / 8) + (count & 511)] = count;
            now = rdtsc();
            record_latency(c, cycles_to_ns(now - prev));
            prev = now;
            if ((++count & (TRANSFER_EVERY_STORES - 1)) == 0) transfer(c);
        } else {
            now = prev = rdtsc();
        }
        if (cfg.pattern == BURST && now >= burst_switch) {
            idle = !idle;
            burst_switch = now + ms_to_cycles(idle ? cfg.burst_off_ms : cfg.burst_on_ms);
        }
        if (now < next_report) continue;
        report(cpu_index, c, now, now - period_start);
        u64 elapsed_ms = (now - start) / cfg.tsc_khz;
        if (cfg.fault_after_ms && elapsed_ms >= cfg.fault_after_ms) __asm__ volatile("ud2");
        if (cfg.exit_after_ms && elapsed_ms >= cfg.exit_after_ms) guest_exit(1);
        int asked = mb->magic == MAILBOX_MAGIC && mb->verify_seq != c->seen_verify_seq;
        if (asked) c->seen_verify_seq = mb->verify_seq;
        if (asked || cfg.check_every) verify(cpu_index, c);
        /* The report's own time (serial output: ~0.1 ms per byte under PVM, far more on a
         * loaded host) is neither a store's nor a period's, and the next period is a full one
         * after it: a slow report must not crowd the stores out. */
        prev = period_start = rdtsc();
        next_report = prev + period;
    }
}

void guest_main(u32 mbi_addr, u32 cpu_index) {
    struct mailbox *mb = (struct mailbox *)MAILBOX_ADDR;
    if (cpu_index == 0) {
        configure(mbi_addr);
        records_init();
        __atomic_store_n(&init_done, 1, __ATOMIC_RELEASE);
    } else {
        while (!__atomic_load_n(&init_done, __ATOMIC_ACQUIRE)) __asm__ volatile("pause");
    }
    if (cpu_index >= cfg.cpus) fail("more vCPUs than cpus= on the command line");
    struct cpu *c = &cpus[cpu_index];
    c->rng = (cfg.seed + 1) * 0x9E3779B97F4A7C15UL ^ ((u64)(cpu_index + 1) << 32);
    c->records = CHECK_PAGES / cfg.cpus;
    c->first_record = cpu_index * c->records;
    c->seen_verify_seq = mb->magic == MAILBOX_MAGIC ? mb->verify_seq : 0;
    ready(cpu_index);
    verify(cpu_index, c);
    run(cpu_index, c);
}
