/* The shared decoder-only transformer of qwen2 and llama: hyperparameters,
 * weight binding and the forward pass as backend calls. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/err.h"
#include "infer/arch/dense.h"
#include "infer/gguf.h"


struct dense_layer {
    struct weight attn_norm, wq, bq, wk, bk, wv, bv, wo;
    struct weight ffn_norm, gate, up, down;
};

static int bind_layer(struct model *m, int l, const struct dense_variant *v, struct dense_layer *L,
                      char *err, size_t errlen)
{
    const struct hparams *hp = &m->hp;
    int64_t q_w = (int64_t)hp->n_head * hp->head_dim, kv_w = (int64_t)hp->n_head_kv * hp->head_dim;
    struct {
        const char *name;
        int64_t n_in, n_out;
        bool required;
        struct weight *w;
    } t[] = {
        {"attn_norm.weight", hp->n_embd, 0, true, &L->attn_norm},
        {"attn_q.weight", hp->n_embd, q_w, true, &L->wq},
        {"attn_k.weight", hp->n_embd, kv_w, true, &L->wk},
        {"attn_v.weight", hp->n_embd, kv_w, true, &L->wv},
        {"attn_q.bias", q_w, 0, v->qkv_bias, &L->bq},
        {"attn_k.bias", kv_w, 0, v->qkv_bias, &L->bk},
        {"attn_v.bias", kv_w, 0, v->qkv_bias, &L->bv},
        {"attn_output.weight", q_w, hp->n_embd, true, &L->wo},
        {"ffn_norm.weight", hp->n_embd, 0, true, &L->ffn_norm},
        {"ffn_gate.weight", hp->n_embd, hp->n_ff, true, &L->gate},
        {"ffn_up.weight", hp->n_embd, hp->n_ff, true, &L->up},
        {"ffn_down.weight", hp->n_ff, hp->n_embd, true, &L->down},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char name[96];
        snprintf(name, sizeof name, "blk.%d.%s", l, t[i].name);
        int rc = model_bind(m, name, t[i].n_in, t[i].n_out, t[i].required, t[i].w, err, errlen);
        if (rc)
            return rc;
    }
    return 0;
}

int dense_bind_ends(struct model *m, char *err, size_t errlen)
{
    struct hparams *hp = &m->hp;
    const struct gguf_tensor *te = gguf_find_tensor(m->g, "token_embd.weight");
    if (!te)
        return err_set(err, errlen, EBADMSG, "%s: missing tensor 'token_embd.weight'", gguf_path(m->g));
    if (te->ne[1] < 1 || te->ne[1] > (1 << 24))
        return err_set(err, errlen, EBADMSG, "%s: tensor 'token_embd.weight' has %lld rows",
                    gguf_path(m->g), (long long)te->ne[1]);
    hp->n_vocab = (int)te->ne[1];
    int rc;
    if ((rc = model_bind(m, "token_embd.weight", hp->n_embd, hp->n_vocab, true, &m->tok_embd, err,
                         errlen)) ||
        (rc = model_bind(m, "output_norm.weight", hp->n_embd, 0, true, &m->output_norm, err,
                         errlen)) ||
        (rc = model_bind(m, "output.weight", hp->n_embd, hp->n_vocab, false, &m->output, err,
                         errlen)))
        return rc;
    if (!m->output.t)
        m->output = m->tok_embd;   /* tied embeddings */
    return 0;
}

int dense_load(struct model *m, const struct dense_variant *v, char *err, size_t errlen)
{
    struct hparams *hp = &m->hp;
    int rc;
    if ((rc = model_hparam_int(m, "block_count", -1, 1, 4096, &hp->n_layer, err, errlen)) ||
        (rc = model_hparam_int(m, "embedding_length", -1, 1, 1 << 20, &hp->n_embd, err, errlen)) ||
        (rc = model_hparam_int(m, "feed_forward_length", -1, 1, 1 << 22, &hp->n_ff, err, errlen)) ||
        (rc = model_hparam_int(m, "attention.head_count", -1, 1, 4096, &hp->n_head, err, errlen)) ||
        (rc = model_hparam_int(m, "attention.head_count_kv", hp->n_head, 1, hp->n_head,
                               &hp->n_head_kv, err, errlen)) ||
        (rc = model_hparam_int(m, "context_length", 4096, 1, 1 << 30, &hp->n_ctx_train, err,
                               errlen)) ||
        (rc = model_hparam_float(m, "attention.layer_norm_rms_epsilon", 0, true, &hp->eps, err,
                                 errlen)) ||
        (rc = model_hparam_float(m, "rope.freq_base", 10000.0, false, &hp->rope.freq_base, err,
                                 errlen)))
        return rc;
    if (hp->n_head % hp->n_head_kv || hp->n_embd % hp->n_head)
        return err_set(err, errlen, EBADMSG,
                    "%s: %d attention heads do not fit %d KV heads and width %d", gguf_path(m->g),
                    hp->n_head, hp->n_head_kv, hp->n_embd);
    int key_length;
    if ((rc = model_hparam_int(m, "attention.key_length", hp->n_embd / hp->n_head, 1, 1 << 16,
                               &key_length, err, errlen)))
        return rc;
    hp->head_dim = key_length;
    int n_rot;
    if ((rc = model_hparam_int(m, "rope.dimension_count", hp->head_dim, 2, hp->head_dim, &n_rot,
                               err, errlen)))
        return rc;
    if (n_rot % 2)
        return err_set(err, errlen, EBADMSG, "%s: rope.dimension_count %d is odd", gguf_path(m->g),
                    n_rot);
    hp->rope.mode = v->rope_mode;
    hp->rope.n_rot = n_rot;
    hp->rope.freq_scale = 1.0f;
    hp->rope.attn_factor = 1.0f;

    if ((rc = dense_bind_ends(m, err, errlen)))
        return rc;

    if (v->rope_freqs) {
        struct weight f;
        if ((rc = model_bind(m, "rope_freqs.weight", n_rot / 2, 0, false, &f, err, errlen)))
            return rc;
        if (f.t && f.type != QUANT_TYPE_F32)
            return err_set(err, errlen, EBADMSG, "%s: tensor 'rope_freqs.weight' must be F32",
                        gguf_path(m->g));
        hp->rope.freq_factors = f.t ? f.data : NULL;
    }

    struct dense_layer *layers = calloc((size_t)hp->n_layer, sizeof *layers);
    if (!layers)
        return err_set(err, errlen, ENOMEM, "out of memory");
    m->layers = layers;
    for (int l = 0; l < hp->n_layer; l++)
        if ((rc = bind_layer(m, l, v, &layers[l], err, errlen)))
            return rc;
    return 0;
}

void dense_free(struct model *m)
{
    free(m->layers);
    m->layers = NULL;
}

#define CHECK(call)                                                                  \
    do {                                                                             \
        if ((call)) {                                                                \
            snprintf(err, errlen, "%s", be->ops->error(be));                         \
            return EIO;                                                              \
        }                                                                            \
    } while (0)
#define ALLOC(t, ne0, ne1)                                                           \
    do {                                                                             \
        if (!((t) = be->ops->alloc(be, (ne0), (ne1))))                               \
            return err_set(err, errlen, ENOMEM, "out of memory for activations");      \
    } while (0)

/* Layers l0 .. l1-1 on backend be, whose KV cache holds them from kv0. */
static int run_layers(struct model *m, struct backend *be, struct btensor *x, int l0, int l1,
                      int kv0, int n, int pos0, char *err, size_t errlen)
{
    const struct hparams *hp = &m->hp;
    const struct dense_layer *layers = m->layers;
    int64_t q_w = (int64_t)hp->n_head * hp->head_dim, kv_w = (int64_t)hp->n_head_kv * hp->head_dim;
    struct btensor *cur, *q, *k, *v, *att, *g, *u;
    ALLOC(cur, hp->n_embd, n);
    ALLOC(q, q_w, n);
    ALLOC(k, kv_w, n);
    ALLOC(v, kv_w, n);
    ALLOC(att, q_w, n);
    ALLOC(g, hp->n_ff, n);
    ALLOC(u, hp->n_ff, n);
    float scale = 1.0f / sqrtf((float)hp->head_dim);
    for (int l = l0; l < l1; l++) {
        const struct dense_layer *L = &layers[l];
        CHECK(be->ops->rms_norm(be, cur, x, &L->attn_norm, hp->eps));
        CHECK(be->ops->matmul(be, q, &L->wq, &L->bq, cur));
        CHECK(be->ops->matmul(be, k, &L->wk, &L->bk, cur));
        CHECK(be->ops->matmul(be, v, &L->wv, &L->bv, cur));
        CHECK(be->ops->rope(be, q, hp->head_dim, &hp->rope, m->pos));
        CHECK(be->ops->rope(be, k, hp->head_dim, &hp->rope, m->pos));
        CHECK(be->ops->kv_store(be, l - kv0, k, v, pos0));
        CHECK(be->ops->attention(be, att, q, l - kv0, hp->n_head, hp->n_head_kv, hp->head_dim,
                                 hp->head_dim, pos0, scale));
        CHECK(be->ops->matmul(be, cur, &L->wo, NULL, att));
        CHECK(be->ops->add(be, x, cur));
        CHECK(be->ops->rms_norm(be, cur, x, &L->ffn_norm, hp->eps));
        CHECK(be->ops->matmul(be, g, &L->gate, NULL, cur));
        CHECK(be->ops->matmul(be, u, &L->up, NULL, cur));
        CHECK(be->ops->swiglu(be, g, g, u));
        CHECK(be->ops->matmul(be, cur, &L->down, NULL, g));
        CHECK(be->ops->add(be, x, cur));
    }
    return 0;
}

/* The first n_gpu_layers layers run on the device backend, the rest on the
 * CPU; the residual stream crosses once, device to host. */
int dense_run(struct model *m, dense_layers_fn *run, const int32_t *ids, int n, int pos0,
              float *logits, bool all, char *err, size_t errlen)
{
    const struct hparams *hp = &m->hp;
    int ngl = m->gpu ? m->n_gpu_layers : 0;
    struct backend *be = ngl > 0 ? m->gpu : m->be;
    struct btensor *x;

    m->be->ops->reset(m->be);
    if (m->gpu)
        m->gpu->ops->reset(m->gpu);
    ALLOC(x, hp->n_embd, n);
    for (int i = 0; i < n; i++)
        m->pos[i] = pos0 + i;

    CHECK(be->ops->get_rows(be, x, &m->tok_embd, ids, n));
    int rc;
    if (ngl > 0 && (rc = run(m, m->gpu, x, 0, ngl, 0, n, pos0, err, errlen)))
        return rc;
    if (ngl < hp->n_layer) {
        if (ngl > 0) {   /* cross to the CPU: its tensors are host memory */
            struct btensor *hx;
            be = m->be;
            ALLOC(hx, hp->n_embd, n);
            if ((m->gpu->ops->sync && m->gpu->ops->sync(m->gpu)) ||
                m->gpu->ops->read(m->gpu, x, 0, n, hx->data)) {
                snprintf(err, errlen, "%s", m->gpu->ops->error(m->gpu));
                return EIO;
            }
            x = hx;
        }
        if ((rc = run(m, m->be, x, ngl, hp->n_layer, ngl, n, pos0, err, errlen)))
            return rc;
    }
    if (!logits) {
        if (be->ops->sync)
            CHECK(be->ops->sync(be));
        return 0;
    }
    struct btensor *last = all ? x : be->ops->rows(be, x, n - 1, 1), *out;
    if (!last)
        return err_set(err, errlen, ENOMEM, "out of memory for activations");
    ALLOC(out, hp->n_vocab, last->ne1);
    CHECK(be->ops->rms_norm(be, last, last, &m->output_norm, hp->eps));
    CHECK(be->ops->matmul(be, out, &m->output, NULL, last));
    CHECK(be->ops->read(be, out, 0, out->ne1, logits));
    return 0;
}

int dense_forward(struct model *m, const int32_t *ids, int n, int pos0, float *logits, bool all,
                  char *err, size_t errlen)
{
    return dense_run(m, run_layers, ids, n, pos0, logits, all, err, errlen);
}
