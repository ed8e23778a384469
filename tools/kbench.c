/* kbench: times the selected CPU gemm kernels on a matrix of the 1.5B model's
 * shapes, for one column (token generation: GB/s of weights streamed, beside
 * the machine's plain read bandwidth) and 64 columns (prompt processing:
 * integer/float ops per second), on one thread and on T threads.  The one-
 * thread generation rate is also given per CPU second, with a plain sweep
 * timed the same way: on a busy machine those two still compare. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "infer/cpu/cpu.h"
#include "infer/cpu/membw.h"
#include "infer/quant.h"

#define ROW_CHUNK 64    /* rows per kernel call, as the matmul driver hands out */
#define PP_COLS 64
#define MAX_THREADS 64

static const enum quant_type all_types[] = {
    QUANT_TYPE_Q8_0, QUANT_TYPE_Q4_K, QUANT_TYPE_Q6_K, QUANT_TYPE_F16,  QUANT_TYPE_BF16,
    QUANT_TYPE_F32,  QUANT_TYPE_Q4_0, QUANT_TYPE_Q4_1, QUANT_TYPE_Q5_0, QUANT_TYPE_Q5_1,
    QUANT_TYPE_Q2_K, QUANT_TYPE_Q3_K, QUANT_TYPE_Q5_K,
};

struct bench {
    cpu_gemm_fn gemm;
    int64_t n;             /* values per row */
    int64_t rows;          /* rows per matrix */
    size_t ws;             /* row bytes */
    int layers;            /* matrices cycled through, so the weights miss the caches */
    unsigned char *w;      /* layers * rows * ws */
    const unsigned char *x;
    size_t xs;
    int nc;
    int reps;
    int nth;
    pthread_barrier_t bar;
    double seconds;        /* best wall time of a pass, thread 0 */
    double cpu_seconds;    /* best CPU time of a pass, thread 0 */
};

struct worker {
    struct bench *b;
    int ith;
    float *y;      /* ROW_CHUNK x nc outputs */
    pthread_t tid;
};

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double now(void) { return clock_s(CLOCK_MONOTONIC); }

/* Read bandwidth of one thread summing `bytes`, per CPU second (best of 3). */
static double sweep_cpu(size_t bytes)
{
    uint64_t *v = malloc(bytes);
    if (!v)
        return 0;
    size_t n = bytes / sizeof *v;
    for (size_t i = 0; i < n; i++)
        v[i] = i;
    double best = 1e30;
    volatile uint64_t sink = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
        uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (size_t i = 0; i + 4 <= n; i += 4) {
            s0 += v[i];
            s1 += v[i + 1];
            s2 += v[i + 2];
            s3 += v[i + 3];
        }
        sink += s0 + s1 + s2 + s3;
        double t = clock_s(CLOCK_THREAD_CPUTIME_ID) - t0;
        if (t < best)
            best = t;
    }
    free(v);
    return (double)bytes / best / 1e9;
}

static void run_share(struct bench *b, int ith, float *y)
{
    int64_t r0 = b->rows * ith / b->nth, r1 = b->rows * (ith + 1) / b->nth;
    for (int l = 0; l < b->layers; l++) {
        const unsigned char *w = b->w + (size_t)l * (size_t)b->rows * b->ws;
        for (int64_t r = r0; r < r1; r += ROW_CHUNK) {
            int nr = (int)(r1 - r < ROW_CHUNK ? r1 - r : ROW_CHUNK);
            b->gemm(b->n, nr, b->nc, w + (size_t)r * b->ws, b->ws, b->x, b->xs, y, ROW_CHUNK);
        }
    }
}

static void *worker_main(void *arg)
{
    struct worker *wk = arg;
    struct bench *b = wk->b;
    float *y = wk->y;
    run_share(b, wk->ith, y);   /* warm-up: pages, caches of x, frequency */
    double best = 1e30, best_cpu = 1e30;
    for (int rep = 0; rep < b->reps; rep++) {
        pthread_barrier_wait(&b->bar);
        double t0 = now(), c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
        run_share(b, wk->ith, y);
        double c = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
        pthread_barrier_wait(&b->bar);
        double t = now() - t0;
        if (t < best)
            best = t;
        if (c < best_cpu)
            best_cpu = c;
    }
    if (wk->ith == 0) {
        b->seconds = best;
        b->cpu_seconds = best_cpu;
    }
    return NULL;
}

static void run_threads(struct bench *b)
{
    struct worker wk[MAX_THREADS];
    if (pthread_barrier_init(&b->bar, NULL, (unsigned)b->nth)) {
        fprintf(stderr, "kbench: pthread_barrier_init failed\n");
        exit(1);
    }
    for (int i = 0; i < b->nth; i++) {
        wk[i].b = b;
        wk[i].ith = i;
        wk[i].y = malloc(sizeof(float) * ROW_CHUNK * (size_t)b->nc);
        if (!wk[i].y) {
            fprintf(stderr, "kbench: out of memory\n");
            exit(1);
        }
    }
    for (int i = 0; i < b->nth; i++) {
        if (i > 0 && pthread_create(&wk[i].tid, NULL, worker_main, &wk[i])) {
            fprintf(stderr, "kbench: pthread_create failed\n");
            exit(1);
        }
    }
    worker_main(&wk[0]);
    for (int i = 1; i < b->nth; i++)
        pthread_join(wk[i].tid, NULL);
    for (int i = 0; i < b->nth; i++)
        free(wk[i].y);
    pthread_barrier_destroy(&b->bar);
}

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static float rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)(rng_state >> 40) / (float)(1 << 24) - 0.5f;
}

static void usage(void)
{
    fprintf(stderr, "usage: kbench [--type T] [--rows R] [--cols C] [-t THREADS] [--mb MB] [--reps N]\n"
                    "              [--isa portable|avx2|avx512] [--no-sweep]\n"
                    "  R x C weights (default 8960 x 1536, the 1.5B ffn), cycled over copies\n"
                    "  totalling MB megabytes (default 512) so the weights come from memory;\n"
                    "  --isa caps the kernels (default: the best this CPU runs); --no-sweep\n"
                    "  skips the plain memory-read sweep\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *type_name = NULL;
    int64_t rows = 8960, cols = 1536;
    long nth = sysconf(_SC_NPROCESSORS_ONLN);
    double mb = 512;
    int reps = 3;
    enum cpu_isa isa = CPU_ISA_COUNT;
    int sweep = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-sweep")) {
            sweep = 0;
            continue;
        }
        if (!v)
            usage();
        if (!strcmp(a, "--type"))
            type_name = v;
        else if (!strcmp(a, "--rows"))
            rows = atoll(v);
        else if (!strcmp(a, "--cols"))
            cols = atoll(v);
        else if (!strcmp(a, "-t"))
            nth = atol(v);
        else if (!strcmp(a, "--mb"))
            mb = atof(v);
        else if (!strcmp(a, "--reps"))
            reps = atoi(v);
        else if (!strcmp(a, "--isa"))
            isa = !strcmp(v, "portable") ? CPU_ISA_PORTABLE : !strcmp(v, "avx2") ? CPU_ISA_AVX2 : CPU_ISA_COUNT;
        else
            usage();
        i++;
    }
    if (rows < 1 || cols < 1 || nth < 1 || nth > MAX_THREADS || mb <= 0 || reps < 1)
        usage();

    struct cpu_kernels k;
    cpu_select(&k, isa);
    printf("kernels: %s; weights %lld x %lld; threads 1 and %ld\n", k.isa_name, (long long)rows,
           (long long)cols, nth);

    char err[256];
    double bw1 = 0, bwt = 0;
    if (sweep && (membw_read(1, 0, 3, &bw1, err, sizeof err) || membw_read((int)nth, 0, 3, &bwt, err, sizeof err)))
        fprintf(stderr, "kbench: %s\n", err);
    double swc = sweep_cpu((size_t)(mb * 1e6) < ((size_t)256 << 20) ? ((size_t)256 << 20) : (size_t)(mb * 1e6));
    printf("memory read bandwidth: %.1f GB/s (1 thread), %.1f GB/s (%ld threads); "
           "one thread per CPU second: %.1f GB/s\n", bw1, bwt, nth, swc);
    printf("%-5s %7s | %-16s | %-17s | %-16s | %s\n", "type", "MB/mat", "tg 1t GB/s (%bw)",
           "tg 1t GB/s per cpu", "tg Tt GB/s (%bw)", "pp64 GOP/s 1t, Tt");

    float *f = malloc(sizeof(float) * (size_t)cols * PP_COLS);
    if (!f)
        return 1;
    for (int64_t i = 0; i < cols * PP_COLS; i++)
        f[i] = rnd();

    for (size_t ti = 0; ti < sizeof all_types / sizeof all_types[0]; ti++) {
        enum quant_type t = all_types[ti];
        const struct quant_traits *tr = quant_traits(t);
        if (!tr || (type_name && strcmp(type_name, tr->name)))
            continue;
        size_t ws = quant_row_bytes(t, cols), xs = quant_row_bytes(tr->vec_dot_type, cols);
        if (!ws || !k.gemm[t] || !k.quantize[tr->vec_dot_type]) {
            printf("%-5s skipped (cols not a multiple of %d, or no kernel)\n", tr->name, tr->block_size);
            continue;
        }
        size_t mat = ws * (size_t)rows;
        int layers = (int)(mb * 1e6 / (double)mat) + 1;
        unsigned char *w = malloc(mat * (size_t)layers);
        unsigned char *x = malloc(xs * PP_COLS);
        if (!w || !x) {
            fprintf(stderr, "kbench: out of memory\n");
            return 1;
        }
        /* 64 quantized rows, repeated: the values do not change the timing */
        int64_t seed_rows = rows < 64 ? rows : 64;
        for (int64_t r = 0; r < seed_rows; r++)
            tr->quantize(f + (r % PP_COLS) * cols, w + (size_t)r * ws, cols);
        for (size_t off = (size_t)seed_rows * ws; off < mat * (size_t)layers; off += (size_t)seed_rows * ws) {
            size_t len = mat * (size_t)layers - off;
            memcpy(w + off, w, len < (size_t)seed_rows * ws ? len : (size_t)seed_rows * ws);
        }
        for (int c = 0; c < PP_COLS; c++)
            k.quantize[tr->vec_dot_type](f + (size_t)c * cols, x + (size_t)c * xs, cols);

        struct bench b = { .gemm = k.gemm[t], .n = cols, .rows = rows, .ws = ws, .w = w, .x = x,
                           .xs = xs, .reps = reps };
        double tg[2], pp[2], tg_cpu = 0;
        for (int pass = 0; pass < 2; pass++) {
            b.nth = pass ? (int)nth : 1;
            b.nc = 1;
            b.layers = layers;
            run_threads(&b);
            tg[pass] = (double)mat * layers / b.seconds / 1e9;
            if (pass == 0)
                tg_cpu = (double)mat * layers / b.cpu_seconds / 1e9;
            b.nc = PP_COLS;
            b.layers = 1;
            run_threads(&b);
            pp[pass] = 2.0 * (double)rows * (double)cols * PP_COLS / b.seconds / 1e9;
        }
        printf("%-5s %7.1f | %5.1f (%5.1f %%)  | %5.1f (%5.1f %%)   | %5.1f (%5.1f %%)  | %6.1f, %6.1f\n",
               tr->name, (double)mat / 1e6, tg[0], bw1 > 0 ? 100 * tg[0] / bw1 : 0, tg_cpu,
               swc > 0 ? 100 * tg_cpu / swc : 0, tg[1], bwt > 0 ? 100 * tg[1] / bwt : 0, pp[0], pp[1]);
        fflush(stdout);
        free(w);
        free(x);
    }
    free(f);
    return 0;
}
