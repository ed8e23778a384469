/* Model fixtures shared by the forward-pass tests (fx_model.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/fixture.h"
#include "tests/fx_conformance.h"
#include "tests/fx_model.h"

int fx_model_check(const char *name, const struct model_params *p, char *msg, size_t cap)
{
    char rel[256], err[512] = "";
    snprintf(rel, sizeof rel, "models/%s.gguf", name);
    struct model *m = NULL;
    if (model_load(fx_path(rel), p, &m, err, sizeof err)) {
        snprintf(msg, cap, "%s: %s", name, err);
        return 1;
    }
    struct fx_conformance c;
    int rc = fx_check_reference(m, name, &c, msg, cap);
    printf("  %-16s %-8s max |diff| %.3g (tolerance %g), top-1 checked at %d of %d steps\n", name,
           model_info(m)->device, c.worst, c.tolerance, c.top1_checked, c.steps);
    model_free(m);
    return rc;
}

int fx_model_copy_kv(struct fx_gguf *w, const char *key, const struct gguf_value *v)
{
    switch (v->type) {
    case GGUF_TYPE_STRING: {
        char *s = strndup(v->v.s.ptr, (size_t)v->v.s.len);
        int rc = s ? fx_gguf_kv_str(w, key, s) : ENOMEM;
        free(s);
        return rc;
    }
    case GGUF_TYPE_UINT32: return fx_gguf_kv_u32(w, key, (uint32_t)v->v.u);
    case GGUF_TYPE_INT32: return fx_gguf_kv_i32(w, key, (int32_t)v->v.i);
    case GGUF_TYPE_UINT64: return fx_gguf_kv_u64(w, key, v->v.u);
    case GGUF_TYPE_UINT8: return fx_gguf_kv_u8(w, key, (uint8_t)v->v.u);
    case GGUF_TYPE_FLOAT32: return fx_gguf_kv_f32(w, key, (float)v->v.f);
    case GGUF_TYPE_BOOL: return fx_gguf_kv_bool(w, key, v->v.u != 0);
    case GGUF_TYPE_ARRAY:
        if (v->v.arr.type == GGUF_TYPE_STRING) {
            const struct gguf_str *ss = v->v.arr.data;
            char **strs = calloc((size_t)v->v.arr.n + 1, sizeof *strs);
            int rc = strs ? 0 : ENOMEM;
            for (uint64_t i = 0; !rc && i < v->v.arr.n; i++)
                if (!(strs[i] = strndup(ss[i].ptr, (size_t)ss[i].len)))
                    rc = ENOMEM;
            if (!rc)
                rc = fx_gguf_kv_arr_str(w, key, (const char *const *)strs, (size_t)v->v.arr.n);
            for (uint64_t i = 0; strs && i < v->v.arr.n; i++)
                free(strs[i]);
            free(strs);
            return rc;
        }
        return fx_gguf_kv_arr_raw(w, key, v->v.arr.type, v->v.arr.data, (size_t)v->v.arr.n);
    default:
        return EINVAL;
    }
}

int fx_model_write_temp(struct fx_gguf *w, char *path)
{
    int fd = mkstemp(path), rc = fd < 0 ? errno : 0;
    if (fd >= 0) {
        close(fd);
        rc = fx_gguf_write_file(w, path);
    }
    fx_gguf_free(w);
    return rc;
}
