/* Loading a model: open the GGUF, pick the architecture, bind the weights to
 * the backend, size the KV cache; decoding in batches with prefix reuse. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "infer/ckd.h"
#include "infer/err.h"
#include "infer/cpu/backend_cpu.h"
#include "infer/gguf.h"
#include "infer/model_impl.h"
#include "infer/plan.h"
#include "infer/tokenizer.h"
#include "infer/vulkan/vk.h"

static const struct arch *const arches[] = {&arch_qwen2, &arch_llama, &arch_deepseek2};


/* llama.cpp's general.file_type names */
static const char *ftype_name(int64_t ft)
{
    static const struct { int id; const char *name; } names[] = {
        {0, "F32"}, {1, "F16"}, {2, "Q4_0"}, {3, "Q4_1"}, {7, "Q8_0"}, {8, "Q5_0"},
        {9, "Q5_1"}, {10, "Q2_K"}, {11, "Q3_K_S"}, {12, "Q3_K_M"}, {13, "Q3_K_L"},
        {14, "Q4_K_S"}, {15, "Q4_K_M"}, {16, "Q5_K_S"}, {17, "Q5_K_M"}, {18, "Q6_K"},
        {19, "IQ2_XXS"}, {20, "IQ2_XS"}, {21, "Q2_K_S"}, {22, "IQ3_XS"}, {23, "IQ3_XXS"},
        {24, "IQ1_S"}, {25, "IQ4_NL"}, {26, "IQ3_S"}, {27, "IQ3_M"}, {28, "IQ2_S"},
        {29, "IQ2_M"}, {30, "IQ4_XS"}, {31, "IQ1_M"}, {32, "BF16"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].id == ft)
            return names[i].name;
    return "?";
}

int model_hparam_int(struct model *m, const char *key, int64_t dflt, int64_t lo, int64_t hi, int *out,
                     char *err, size_t errlen)
{
    char full[128];
    snprintf(full, sizeof full, "%s.%s", m->info.arch, key);
    int64_t v;
    int rc = gguf_get_int(m->g, full, &v, err, errlen);
    if (rc == ENOENT && dflt >= 0) {
        v = dflt;
    } else if (rc == ENOENT) {
        return err_set(err, errlen, EBADMSG, "%s: missing key '%s'", gguf_path(m->g), full);
    } else if (rc) {
        return rc;
    }
    if (v < lo || v > hi)
        return err_set(err, errlen, EBADMSG, "%s: key '%s' = %lld is out of range [%lld, %lld]",
                    gguf_path(m->g), full, (long long)v, (long long)lo, (long long)hi);
    *out = (int)v;
    return 0;
}

int model_hparam_float(struct model *m, const char *key, double dflt, bool required, float *out,
                       char *err, size_t errlen)
{
    char full[128];
    snprintf(full, sizeof full, "%s.%s", m->info.arch, key);
    double v;
    int rc = gguf_get_float(m->g, full, &v, err, errlen);
    if (rc == ENOENT && !required)
        v = dflt;
    else if (rc == ENOENT)
        return err_set(err, errlen, EBADMSG, "%s: missing key '%s'", gguf_path(m->g), full);
    else if (rc)
        return rc;
    if (!(v == v) || v > 1e30 || v < -1e30)
        return err_set(err, errlen, EBADMSG, "%s: key '%s' is not a finite number", gguf_path(m->g),
                    full);
    *out = (float)v;
    return 0;
}

int model_bind(struct model *m, const char *name, int64_t n_in, int64_t n_out, bool required,
               struct weight *w, char *err, size_t errlen)
{
    memset(w, 0, sizeof *w);
    const struct gguf_tensor *t = gguf_find_tensor(m->g, name);
    if (!t) {
        if (!required)
            return 0;
        return err_set(err, errlen, EBADMSG, "%s: missing tensor '%s'", gguf_path(m->g), name);
    }
    bool vector = n_out == 0;
    int64_t want1 = vector ? 1 : n_out;
    if (t->ne[0] != n_in || t->ne[1] != want1 || t->ne[2] != 1 || t->ne[3] != 1) {
        if (vector)
            return err_set(err, errlen, EBADMSG,
                        "%s: tensor '%s' has shape [%lld, %lld], expected [%lld] from the "
                        "hyperparameters",
                        gguf_path(m->g), name, (long long)t->ne[0], (long long)t->ne[1],
                        (long long)n_in);
        return err_set(err, errlen, EBADMSG,
                    "%s: tensor '%s' has shape [%lld, %lld], expected [%lld, %lld] from the "
                    "hyperparameters",
                    gguf_path(m->g), name, (long long)t->ne[0], (long long)t->ne[1],
                    (long long)n_in, (long long)n_out);
    }
    const struct cpu_kernels *k = cpu_backend_kernels(m->be);
    if (vector ? (t->type != QUANT_TYPE_F32 && t->type != QUANT_TYPE_F16)
               : (!quant_traits(t->type) || !k->gemm[t->type]))
        return err_set(err, errlen, ENOTSUP, "%s: tensor '%s' has type %s, which ponder cannot run yet",
                    gguf_path(m->g), name, quant_type_name(t->type));
    w->t = t;
    w->type = t->type;
    w->n_in = n_in;
    w->n_out = vector ? 1 : n_out;
    w->data = t->data;
    w->row_bytes = quant_row_bytes(t->type, n_in);
    return 0;
}

int model_bind_experts(struct model *m, const char *name, int64_t n_in, int64_t n_out,
                       int64_t n_exp, bool required, struct weight *w, char *err, size_t errlen)
{
    memset(w, 0, sizeof *w);
    const struct gguf_tensor *t = gguf_find_tensor(m->g, name);
    if (!t) {
        if (!required)
            return 0;
        return err_set(err, errlen, EBADMSG, "%s: missing tensor '%s'", gguf_path(m->g), name);
    }
    if (t->ne[0] != n_in || t->ne[1] != n_out || t->ne[2] != n_exp || t->ne[3] != 1)
        return err_set(err, errlen, EBADMSG,
                       "%s: tensor '%s' has shape [%lld, %lld, %lld], expected [%lld, %lld, %lld] "
                       "from the hyperparameters",
                       gguf_path(m->g), name, (long long)t->ne[0], (long long)t->ne[1],
                       (long long)t->ne[2], (long long)n_in, (long long)n_out, (long long)n_exp);
    const struct cpu_kernels *k = cpu_backend_kernels(m->be);
    size_t row = quant_row_bytes(t->type, n_in), exp;
    if (!quant_traits(t->type) || !k->gemm[t->type] || !row)
        return err_set(err, errlen, ENOTSUP, "%s: tensor '%s' has type %s, which ponder cannot run yet",
                       gguf_path(m->g), name, quant_type_name(t->type));
    if (ckd_mul_size(&exp, row, (size_t)n_out))
        return err_set(err, errlen, EBADMSG, "%s: tensor '%s' is too large", gguf_path(m->g), name);
    *w = (struct weight){.t = t, .type = t->type, .n_in = n_in, .n_out = n_out, .data = t->data,
                         .row_bytes = row, .n_exp = n_exp, .exp_bytes = exp};
    return 0;
}

static int load_common(struct model *m, const struct model_params *p, char *err, size_t errlen)
{
    struct gguf_str s;
    int rc = gguf_get_str(m->g, "general.architecture", &s, err, errlen);
    if (rc == ENOENT)
        return err_set(err, errlen, EBADMSG, "%s: missing key 'general.architecture'",
                    gguf_path(m->g));
    if (rc)
        return rc;
    snprintf(m->info.arch, sizeof m->info.arch, "%.*s", (int)(s.len < 31 ? s.len : 31), s.ptr);
    for (size_t i = 0; i < sizeof arches / sizeof arches[0]; i++)
        if (strlen(arches[i]->name) == s.len && !memcmp(arches[i]->name, s.ptr, s.len))
            m->arch = arches[i];
    if (!m->arch)
        return err_set(err, errlen, ENOTSUP, "%s: architecture '%.*s' is not supported (ponder runs "
                    "qwen2, llama and deepseek2)", gguf_path(m->g), (int)(s.len > 64 ? 64 : s.len), s.ptr);
    if (gguf_get_str(m->g, "general.name", &s, err, errlen) == 0)
        snprintf(m->info.name, sizeof m->info.name, "%.*s", (int)(s.len < 127 ? s.len : 127), s.ptr);
    int64_t ft;
    snprintf(m->info.ftype, sizeof m->info.ftype, "%s",
             gguf_get_int(m->g, "general.file_type", &ft, err, errlen) ? "?" : ftype_name(ft));
    err[0] = 0;

    rc = tokenizer_load(m->g, &m->tok, err, errlen);
    if (rc)
        return rc;
    rc = cpu_backend_create(p->n_threads, p->max_isa, &m->be, err, errlen);
    if (rc)
        return rc;
    return 0;
}

/* A routed-expert tensor (blk.N.ffn_*_exps.weight). */
static bool is_expert_tensor(const struct gguf_tensor *t)
{
    return t->n_dims == 3 && strstr(t->name, "_exps.") != NULL;
}

/* deepseek2's attn_kv_b is never multiplied on the device: the arch's
 * prepared per-head views of it (as many values, F32 or F16) are. */
static bool is_mla_kv_b(const struct model *m, const struct gguf_tensor *t)
{
    return m->hp.kv_v_in_k && strstr(t->name, ".attn_kv_b.") != NULL;
}

static void fill_info(struct model *m)
{
    struct model_info *in = &m->info;
    const struct hparams *hp = &m->hp;
    for (int64_t i = 0; i < gguf_n_tensors(m->g); i++) {
        const struct gguf_tensor *t = gguf_tensor(m->g, i);
        in->n_params += t->n_elements;
        in->weight_bytes += t->size;
    }
    in->token_bytes = in->weight_bytes - (m->tok_embd.t ? m->tok_embd.t->size : 0);
    if (m->output.t == m->tok_embd.t)
        in->token_bytes = in->weight_bytes;
    in->file_size = gguf_file_size(m->g);
    in->n_layer = hp->n_layer;
    in->n_embd = hp->n_embd;
    in->n_head = hp->n_head;
    in->n_head_kv = hp->n_head_kv;
    in->head_dim = hp->head_dim;
    in->n_ff = hp->n_ff;
    in->n_vocab = hp->n_vocab;
    in->n_ctx_train = hp->n_ctx_train;
    in->n_ctx = m->n_ctx;
    in->backend = m->gpu ? m->gpu->ops->name : m->be->ops->name;
    in->device = m->gpu ? m->gpu->ops->device_name(m->gpu) : m->be->ops->device_name(m->be);
    in->cpu_device = m->be->ops->device_name(m->be);
    in->n_threads = cpu_backend_threads(m->be);
    in->n_gpu_layers = m->gpu ? m->n_gpu_layers : 0;
    in->experts_on_cpu = m->gpu && m->experts_on_cpu;
    /* a mixture of experts reads n_expert_used of n_expert routed experts per token */
    if (hp->n_expert > 0) {
        uint64_t exp = 0;
        for (int64_t i = 0; i < gguf_n_tensors(m->g); i++) {
            const struct gguf_tensor *t = gguf_tensor(m->g, i);
            if (is_expert_tensor(t))
                exp += t->size;
        }
        uint64_t unused = (uint64_t)((long double)exp * (hp->n_expert - hp->n_expert_used) /
                                     hp->n_expert);
        in->token_bytes = in->token_bytes > unused ? in->token_bytes - unused : 0;
    }
}

/* Device bytes of the weights of layer l (all tensors named blk.<l>.*),
 * the routed experts apart. */
static void layer_gpu_bytes(const struct model *m, int l, uint64_t *layer, uint64_t *experts)
{
    char prefix[32];
    int len = snprintf(prefix, sizeof prefix, "blk.%d.", l);
    *layer = *experts = 0;
    for (int64_t i = 0; i < gguf_n_tensors(m->g); i++) {
        const struct gguf_tensor *t = gguf_tensor(m->g, i);
        if (strncmp(t->name, prefix, (size_t)len))
            continue;
        if (is_expert_tensor(t))
            *experts += vk_weight_bytes(t->type, t->n_elements, false);
        else if (is_mla_kv_b(m, t))
            *layer += vk_weight_bytes(t->type == QUANT_TYPE_F32 ? QUANT_TYPE_F32 : QUANT_TYPE_F16,
                                      t->n_elements, false);
        else
            *layer += vk_weight_bytes(t->type, t->n_elements, t->n_dims == 1);
    }
}

/* The caller's progress callback, fed by the file read and the upload. */
struct load_progress {
    const struct model_params *p;
    uint64_t total;     /* upload: device bytes of every weight uploaded */
};

static void read_progress(void *ctx, uint64_t done, uint64_t total)
{
    const struct load_progress *lp = ctx;
    lp->p->progress(lp->p->progress_ctx, total ? (float)((double)done / (double)total) : 1.0f,
                    "reading");
}

static void upload_progress(void *ctx, uint64_t uploaded)
{
    const struct load_progress *lp = ctx;
    double f = lp->total ? (double)uploaded / (double)lp->total : 1.0;
    lp->p->progress(lp->p->progress_ctx, (float)(f < 1.0 ? f : 1.0), "uploading");
}

/* Device bytes of w as the backend reports its upload progress. */
static uint64_t weight_device_bytes(const struct weight *w)
{
    if (w->n_out == 1 && (!w->t || w->t->n_dims == 1))
        return vk_weight_bytes(w->type, w->n_in, true);
    return vk_weight_bytes(w->type, w->n_in, false) * (uint64_t)w->n_out *
           (uint64_t)(w->n_exp > 0 ? w->n_exp : 1);
}

/* Uploads w, or only adds its size to *total when total is not NULL. */
static int upload_one(struct model *m, const struct weight *w, uint64_t *total, char *err,
                      size_t errlen)
{
    if (total) {
        *total += weight_device_bytes(w);
        return 0;
    }
    return vk_backend_upload(m->gpu, w, err, errlen);
}

/* Uploads the weights the device will use (with the arch's prepared
 * views), so that loading pays for it rather than the first reply; with
 * total, counts their device bytes instead. */
static int upload_weights(struct model *m, uint64_t *total, char *err, size_t errlen)
{
    char prefix[32];
    for (int l = 0; l < m->n_gpu_layers; l++) {
        int len = snprintf(prefix, sizeof prefix, "blk.%d.", l);
        for (int64_t i = 0; i < gguf_n_tensors(m->g); i++) {
            const struct gguf_tensor *t = gguf_tensor(m->g, i);
            if (strncmp(t->name, prefix, (size_t)len) || is_mla_kv_b(m, t) ||
                (m->experts_on_cpu && is_expert_tensor(t)))
                continue;
            struct weight w = {.t = t, .type = t->type, .n_in = t->ne[0],
                               .n_out = t->n_dims == 1 ? 1 : t->ne[1], .data = t->data,
                               .row_bytes = quant_row_bytes(t->type, t->ne[0])};
            if (is_expert_tensor(t)) {
                w.n_exp = t->ne[2];
                w.exp_bytes = w.row_bytes * (size_t)t->ne[1];
            }
            int rc = upload_one(m, &w, total, err, errlen);
            if (rc)
                return rc;
        }
        const struct weight *prep[8];
        int np = m->arch->prepared ? m->arch->prepared(m, l, prep, 8) : 0;
        for (int i = 0; i < np; i++) {
            int rc = upload_one(m, prep[i], total, err, errlen);
            if (rc)
                return rc;
        }
    }
    if (m->info.output_on_gpu) {
        int rc = upload_one(m, &m->output_norm, total, err, errlen);
        if (!rc)
            rc = upload_one(m, &m->output, total, err, errlen);
        return rc;
    }
    return 0;
}

/* The model as plan.h counts it: per-layer device bytes with the routed
 * experts apart, the KV cache of one layer and token, the embedding, the
 * output head and the scratch of a batch.  The arrays are the caller's
 * (n_layer entries each). */
static void plan_model_of(const struct model *m, const struct kv_shape *kv, uint64_t *layer,
                          uint64_t *experts, struct plan_model *pm)
{
    const struct hparams *hp = &m->hp;
    bool any_experts = false;
    for (int l = 0; l < hp->n_layer; l++) {
        layer_gpu_bytes(m, l, &layer[l], &experts[l]);
        any_experts |= experts[l] > 0;
    }
    int64_t per_tok = 3 * (int64_t)hp->n_embd + 3 * (int64_t)hp->n_head * hp->head_dim +
                      2 * (kv->k_width + kv->v_width) + 2 * (int64_t)hp->n_ff + hp->n_vocab;
    *pm = (struct plan_model){
        .n_layer = hp->n_layer,
        .layer_bytes = layer,
        .expert_bytes = any_experts ? experts : NULL,
        .n_expert = any_experts ? hp->n_expert : 0,
        .n_expert_used = any_experts ? hp->n_expert_used : 0,
        .kv_bytes_per_token = (uint64_t)(kv->k_width + (kv->v_in_k ? 0 : kv->v_width)) *
                              (kv->type == KV_TYPE_F16 ? 2u : 4u),
        .embd_bytes = m->tok_embd.t ? m->tok_embd.t->size : 0,
        .embd_row_bytes = m->tok_embd.row_bytes,
        .output_bytes = vk_weight_bytes(m->output.type, (int64_t)hp->n_vocab * hp->n_embd, false) +
                        (uint64_t)hp->n_embd * 4,
        .scratch_bytes = vk_scratch_bytes(m->n_batch, per_tok),
    };
}

/* The memory plan (plan_make(), the rules `ponder fit` shows): how many
 * layers go to the device (the first ones), whether their routed experts
 * stay in host memory, and the device backend.  AUTO falls back to the CPU
 * with a note. */
static int plan_gpu(struct model *m, const struct model_params *p, const struct kv_shape *kv,
                    struct load_progress *lp, char *err, size_t errlen)
{
    struct model_info *in = &m->info;
    if (p->backend == MODEL_BACKEND_CPU)
        return 0;
    struct vk_options vo = {.device = p->device, .validation = p->gpu_validation,
                            .lose_after = p->gpu_lose_after > 0 ? (uint64_t)p->gpu_lose_after : 0,
                            .cache_dir = p->cache_dir, .no_replay = p->gpu_no_replay,
                            .force_int_dot = p->gpu_int_dot > 0, .no_int_dot = p->gpu_int_dot < 0};
    char verr[256] = "";
    int rc;
    if (p->backend == MODEL_BACKEND_AUTO && p->device < 0) {
        /* a software device (lavapipe) is far slower than the CPU backend:
         * auto uses it only when asked for by --device */
        struct vk_device_desc d[8];
        int n = 0;
        rc = vk_list_devices(d, 8, &n, verr, sizeof verr);
        int pick = rc ? -1 : vk_default_device(d, n < 8 ? n : 8);
        if (pick < 0 || !strcmp(d[pick].type, "cpu")) {
            snprintf(in->gpu_note, sizeof in->gpu_note, "%s",
                     pick < 0 ? "no Vulkan GPU found"
                              : "only a software Vulkan device: --backend vulkan uses it");
            return 0;
        }
    }
    rc = vk_backend_create(&vo, &m->gpu, verr, sizeof verr);
    if (rc) {
        if (p->backend == MODEL_BACKEND_VULKAN)
            return err_set(err, errlen, rc, "--backend vulkan: %s", verr);
        snprintf(in->gpu_note, sizeof in->gpu_note, "no GPU: %.140s", verr);
        return 0;
    }
    const struct hparams *hp = &m->hp;
    const struct vk_device_desc *d = vk_backend_desc(m->gpu);
    uint64_t budget = vk_device_budget(d);
    uint64_t *layer = calloc(2 * (size_t)hp->n_layer, sizeof *layer);
    if (!layer)
        return err_set(err, errlen, ENOMEM, "out of memory");
    struct plan_model pm;
    plan_model_of(m, kv, layer, layer + hp->n_layer, &pm);
    struct plan_request rq = {.n_ctx = kv->n_ctx, .device_budget = budget ? budget : UINT64_MAX,
                              .n_gpu_layers = p->n_gpu_layers, .placement = p->placement};
    struct plan pl;
    rc = plan_make(&pm, &rq, &pl);
    free(layer);
    if (rc)
        return err_set(err, errlen, rc, "%s: no layers to place", gguf_path(m->g));
    int ngl = pl.n_gpu_layers;
    in->output_on_gpu = pl.output_on_gpu;
    in->gpu_bytes = pl.gpu_bytes;
    in->gpu_budget = budget;
    if (ngl == 0) {
        snprintf(in->gpu_note, sizeof in->gpu_note, "%.60s: no layer fits in %.1f GB", d->name,
                 (double)budget / 1e9);
        m->gpu->ops->free(m->gpu);
        m->gpu = NULL;
        in->output_on_gpu = false;
        return 0;
    }
    m->n_gpu_layers = ngl;
    m->experts_on_cpu = pl.experts_on_cpu;
    struct kv_shape gkv = *kv;
    gkv.n_layer = ngl;
    if (p->progress) {
        lp->total = 0;
        upload_weights(m, &lp->total, err, errlen);
        vk_backend_set_progress(m->gpu, upload_progress, lp);
    }
    int failed = m->gpu->ops->kv_init(m->gpu, &gkv) || upload_weights(m, NULL, err, errlen);
    vk_backend_set_progress(m->gpu, NULL, NULL);    /* lp lives only during the load */
    if (failed) {
        if (!err[0] || m->gpu->ops->error(m->gpu)[0])
            snprintf(err, errlen, "%s", m->gpu->ops->error(m->gpu));
        rc = ENOMEM;
        if (p->backend == MODEL_BACKEND_VULKAN)
            return rc;
        snprintf(in->gpu_note, sizeof in->gpu_note, "%.50s: %.80s; running on the CPU", d->name, err);
        err[0] = 0;
        m->gpu->ops->free(m->gpu);
        m->gpu = NULL;
        m->n_gpu_layers = 0;
        m->experts_on_cpu = false;
        in->output_on_gpu = false;
    }
    return 0;
}

int model_load(const char *path, const struct model_params *p, struct model **out, char *err,
               size_t errlen)
{
    *out = NULL;
    struct model *m = calloc(1, sizeof *m);
    if (!m)
        return err_set(err, errlen, ENOMEM, "out of memory");
    unsigned flags = 0;
    struct stat st;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (!p->mmap_only && stat(path, &st) == 0 && pages > 0 && page > 0 &&
        (uint64_t)st.st_size <= (uint64_t)pages * (uint64_t)page / 2)
        flags = GGUF_OPEN_READ;
    struct load_progress lp = {p, 0};
    int rc = gguf_open_progress(path, flags, p->progress ? read_progress : NULL, &lp, &m->g, err,
                                errlen);
    if (rc)
        goto out;
    rc = load_common(m, p, err, errlen);
    if (rc)
        goto out;
    rc = m->arch->load(m, err, errlen);
    if (rc)
        goto out;
    if (m->hp.n_vocab != tokenizer_n_vocab(m->tok)) {
        rc = err_set(err, errlen, EBADMSG, "%s: the vocabulary has %d tokens but the output has %d rows",
                  path, tokenizer_n_vocab(m->tok), m->hp.n_vocab);
        goto out;
    }
    int n_ctx = p->n_ctx > 0 ? p->n_ctx : (m->hp.n_ctx_train < 4096 ? m->hp.n_ctx_train : 4096);
    if (n_ctx < 1)
        n_ctx = 4096;
    m->n_ctx = n_ctx;
    m->n_batch = p->n_batch > 0 ? p->n_batch : 512;
    if (m->n_batch > n_ctx)
        m->n_batch = n_ctx;
    m->cache_ids = malloc((size_t)n_ctx * sizeof(int32_t));
    m->pos = malloc((size_t)m->n_batch * sizeof(int32_t));
    if (!m->cache_ids || !m->pos) {
        rc = err_set(err, errlen, ENOMEM, "out of memory");
        goto out;
    }
    struct kv_shape kv = {
        .n_layer = m->hp.n_layer,
        .n_ctx = n_ctx,
        .k_width = m->hp.kv_k_width ? m->hp.kv_k_width : (int64_t)m->hp.n_head_kv * m->hp.head_dim,
        .v_width = m->hp.kv_v_width ? m->hp.kv_v_width : (int64_t)m->hp.n_head_kv * m->hp.head_dim,
        .type = p->kv_type,
        .v_in_k = m->hp.kv_v_in_k,
    };
    err[0] = 0;
    rc = plan_gpu(m, p, &kv, &lp, err, errlen);
    if (rc)
        goto out;
    kv.n_layer = m->hp.n_layer - m->n_gpu_layers;  /* the CPU's share */
    rc = kv.n_layer > 0 ? m->be->ops->kv_init(m->be, &kv) : 0;
    if (rc) {
        snprintf(err, errlen, "%s", m->be->ops->error(m->be));
        goto out;
    }
    m->info.kv_type = p->kv_type;
    m->info.kv_bytes_per_token = (uint64_t)m->hp.n_layer *
                                 (uint64_t)(kv.k_width + (kv.v_in_k ? 0 : kv.v_width)) *
                                 (p->kv_type == KV_TYPE_F16 ? 2u : 4u);
    m->info.kv_bytes = (uint64_t)n_ctx * m->info.kv_bytes_per_token;
    fill_info(m);
out:
    if (rc) {
        model_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

void model_free(struct model *m)
{
    if (!m)
        return;
    if (m->arch && m->arch->free)
        m->arch->free(m);
    if (m->gpu)
        m->gpu->ops->free(m->gpu);
    if (m->be)
        m->be->ops->free(m->be);
    tokenizer_free(m->tok);
    gguf_close(m->g);
    free(m->cache_ids);
    free(m->pos);
    free(m);
}

const struct model_info *model_info(const struct model *m) { return &m->info; }
const struct tokenizer *model_tokenizer(const struct model *m) { return m->tok; }
const struct gguf *model_gguf(const struct model *m) { return m->g; }
bool model_device_lost(const struct model *m)
{
    return m->gpu && vk_backend_lost(m->gpu);
}

const struct backend *model_device(const struct model *m) { return m->gpu; }

int model_n_past(const struct model *m) { return m->n_past; }
void model_clear(struct model *m) { m->n_past = 0; }

int model_keep_prefix(struct model *m, const int32_t *ids, int n)
{
    int k = 0;
    while (k < m->n_past && k < n - 1 && m->cache_ids[k] == ids[k])
        k++;
    m->n_past = k;
    return k;
}

int model_decode(struct model *m, const int32_t *ids, int n, float *logits, bool all, char *err,
                 size_t errlen)
{
    if (n <= 0)
        return err_set(err, errlen, EINVAL, "nothing to decode");
    if (n > m->n_ctx - m->n_past)
        return err_set(err, errlen, ENOSPC, "the context is full: %d + %d tokens exceed %d",
                    m->n_past, n, m->n_ctx);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= m->hp.n_vocab)
            return err_set(err, errlen, EINVAL, "token id %d is out of range (n_vocab %d)", ids[i],
                        m->hp.n_vocab);
    for (int done = 0; done < n;) {
        int chunk = n - done < m->n_batch ? n - done : m->n_batch;
        bool last = done + chunk == n;
        float *lg = NULL;
        if (logits && all)
            lg = logits + (size_t)done * (size_t)m->hp.n_vocab;
        else if (logits && last)
            lg = logits;
        int rc = m->arch->forward(m, ids + done, chunk, m->n_past, lg, all, err, errlen);
        if (rc)
            return rc;
        memcpy(m->cache_ids + m->n_past, ids + done, (size_t)chunk * sizeof(int32_t));
        m->n_past += chunk;
        done += chunk;
    }
    return 0;
}
