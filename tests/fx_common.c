/* Shared test fixtures: reference data paths, files, JSON, pseudo-random floats. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/fixture.h"

const char *fx_testdata(void)
{
    const char *d = getenv("PONDER_TESTDATA");
    return d && *d ? d : "../shared/testdata";
}

const char *fx_path(const char *rel)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", fx_testdata(), rel);
    return buf;
}

char *fx_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap)
            break;
        char *bigger = realloc(buf, 2 * cap + 1);
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    fclose(f);
    if (buf) {
        buf[n] = 0;
        if (len)
            *len = n;
    }
    return buf;
}

json_t *fx_load_json(const char *path)
{
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);
    if (!j)
        fprintf(stderr, "%s:%d: %s\n", path, e.line, e.text);
    return j;
}

json_t *fx_load_jsonl(const char *path)
{
    size_t len;
    char *text = fx_read_file(path, &len);
    if (!text) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return NULL;
    }
    json_t *all = json_array();
    char *line = text;
    int lineno = 0;
    while (line < text + len) {
        char *end = memchr(line, '\n', (size_t)(text + len - line));
        if (!end)
            end = text + len;
        lineno++;
        if (end > line) {
            json_error_t e;
            json_t *j = json_loadb(line, (size_t)(end - line), JSON_ALLOW_NUL, &e);
            if (!j) {
                fprintf(stderr, "%s:%d: %s\n", path, lineno, e.text);
                json_decref(all);
                free(text);
                return NULL;
            }
            json_array_append_new(all, j);
        }
        line = end + 1;
    }
    free(text);
    return all;
}

char *fx_write_temp(const void *buf, size_t len)
{
    char tmpl[] = "/tmp/ponder-test-XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd < 0)
        return NULL;
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w <= 0) {
            close(fd);
            unlink(tmpl);
            return NULL;
        }
        p += w;
        len -= (size_t)w;
    }
    close(fd);
    return strdup(tmpl);
}

float fx_frand(uint32_t *state)
{
    *state = *state * 1664525u + 1013904223u;
    return (float)((*state >> 8) & 0xffff) / 32768.0f - 1.0f;
}

void fx_fill(float *v, size_t n, uint32_t *state)
{
    for (size_t i = 0; i < n; i++)
        v[i] = fx_frand(state);
}
