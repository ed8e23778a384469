/* fuzz_gguf FILE...: opens each file with gguf_open_memory and prints "ok"
 * with its counts, or the error.  Built with -DPONDER_LIBFUZZER it is a
 * libFuzzer harness instead (LLVMFuzzerTestOneInput). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/gguf.h"

#ifdef PONDER_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gguf *g;
    char err[512];
    if (gguf_open_memory(data, size, "fuzz", &g, err, sizeof err) == 0) {
        for (int64_t i = 0; i < gguf_n_tensors(g); i++)
            (void)gguf_find_tensor(g, gguf_tensor(g, i)->name);
        gguf_close(g);
    }
    return 0;
}
#else
static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 1 << 16;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                fclose(f);
                errno = ENOMEM;
                return NULL;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        errno = EIO;
        return NULL;
    }
    *len = n;
    return buf;
}

int main(int argc, char **argv)
{
    int failed = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: fuzz_gguf FILE...\n");
        return 2;
    }
    for (int a = 1; a < argc; a++) {
        size_t len = 0;
        char *buf = read_all(argv[a], &len);
        if (!buf) {
            printf("%s: %s\n", argv[a], strerror(errno));
            failed = 1;
            continue;
        }
        struct gguf *g;
        char err[512];
        int rc = gguf_open_memory(buf, len, argv[a], &g, err, sizeof err);
        if (rc == 0) {
            printf("%s: ok, version %" PRIu32 ", %" PRId64 " keys, %" PRId64 " tensors\n", argv[a],
                   gguf_version(g), gguf_n_kv(g), gguf_n_tensors(g));
            gguf_close(g);
        } else {
            printf("%s (%s)\n", err, strerror(rc));
            failed = 1;
        }
        free(buf);
    }
    return failed;
}
#endif
