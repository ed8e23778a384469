/* deepseek2 (DeepSeek-R1 / V3, V2, V2-Lite): multi-head latent attention with
 * the absorbed multiplication (the KV cache holds only the normed latent and
 * the roped shared key), YaRN rope, and a mixture of experts routed on the
 * host (testdata README 2.3), as backend calls.
 *
 * Per layer and token, with H heads, c the latent (kv_lora) and DR rope dims:
 *   cache row   = [RMSNorm(c_kv) ; RoPE(k_pe)]                 kv_lora + DR values
 *   query row j = [W_kb_j^T q_nope_j ; RoPE(q_pe_j)]          (matmul_heads, copy_cols)
 *   o_j         = Attn over the cache rows, values = their first kv_lora entries
 *   v_j         = W_vb_j o_j, then attn_output over [v_0 .. v_H-1]
 * which equals llama.cpp's expanded k_j = [W_kb_j c_kv ; k_pe], v_j = W_vb_j c_kv. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/arch/dense.h"
#include "infer/ckd.h"
#include "infer/err.h"
#include "infer/gguf.h"
#include "infer/model_impl.h"

enum { GATE_SOFTMAX = 1, GATE_SIGMOID = 2 };

struct ds2_layer {
    struct weight attn_norm, q_a, q_a_norm, q_b, q, kv_a, kv_a_norm, kv_b, wo;
    struct weight ffn_norm, gate, up, down;                  /* dense layers */
    struct weight router, bias, gate_exps, up_exps, down_exps;
    struct weight gate_sh, up_sh, down_sh;                   /* shared experts (t NULL: none) */
    struct weight kb_t;   /* per head: kv_lora rows of DN (W_kb_j transposed), F32 or F16 */
    struct weight vb;     /* per head: DV rows of kv_lora (W_vb_j), kv_b's type */
};

struct ds2 {
    int q_lora, kv_lora, dn, dr, dv, dk;    /* DK = DN + DR */
    int n_dense, n_exp, n_used, n_shared, exp_ff;
    int n_group, topk_group;                /* group-limited routing; 1, 1: off */
    int gating;
    bool norm_w;
    float w_scale, kq_scale;
    struct ds2_layer *layers;
    void **prepared;                        /* per layer: kb_t and vb data */
    /* host routing scratch, grown to the batch */
    float *logits, *weights, *sel;
    int32_t *experts;
    int cap;
    bool round_latent;                      /* attn_kv_b is quantized (round_latent()) */
    float *lat;
    void *lat_q;
    size_t lat_cap;
};

static bool has_key(struct model *m, const char *key)
{
    char full[128];
    snprintf(full, sizeof full, "%s.%s", m->info.arch, key);
    return gguf_find(m->g, full) != NULL;
}

static int read_hparams(struct model *m, struct ds2 *d, char *err, size_t errlen)
{
    struct hparams *hp = &m->hp;
    const char *path = gguf_path(m->g);
    int rc, n_head_kv, n_rot, kl, vl, gating;
    if ((rc = model_hparam_int(m, "block_count", -1, 1, 4096, &hp->n_layer, err, errlen)) ||
        (rc = model_hparam_int(m, "embedding_length", -1, 1, 1 << 20, &hp->n_embd, err, errlen)) ||
        (rc = model_hparam_int(m, "feed_forward_length", -1, 1, 1 << 22, &hp->n_ff, err, errlen)) ||
        (rc = model_hparam_int(m, "attention.head_count", -1, 1, 4096, &hp->n_head, err, errlen)) ||
        (rc = model_hparam_int(m, "attention.head_count_kv", hp->n_head, 1, 4096, &n_head_kv, err,
                               errlen)) ||
        (rc = model_hparam_int(m, "context_length", 4096, 1, 1 << 30, &hp->n_ctx_train, err,
                               errlen)) ||
        (rc = model_hparam_float(m, "attention.layer_norm_rms_epsilon", 0, true, &hp->eps, err,
                                 errlen)) ||
        (rc = model_hparam_float(m, "rope.freq_base", 10000.0, false, &hp->rope.freq_base, err,
                                 errlen)) ||
        (rc = model_hparam_int(m, "leading_dense_block_count", 0, 0, hp->n_layer, &d->n_dense,
                               err, errlen)) ||
        (rc = model_hparam_int(m, "attention.kv_lora_rank", -1, 1, 1 << 16, &d->kv_lora, err,
                               errlen)) ||
        (rc = model_hparam_int(m, "attention.key_length", -1, 2, 1 << 16, &kl, err, errlen)) ||
        (rc = model_hparam_int(m, "attention.value_length", -1, 1, 1 << 16, &vl, err, errlen)) ||
        (rc = model_hparam_int(m, "rope.dimension_count", -1, 2, kl, &n_rot, err, errlen)) ||
        (rc = model_hparam_int(m, "expert_count", -1, 1, 1 << 16, &d->n_exp, err, errlen)) ||
        (rc = model_hparam_int(m, "expert_used_count", -1, 1, d->n_exp, &d->n_used, err, errlen)) ||
        (rc = model_hparam_int(m, "expert_shared_count", 0, 0, 1 << 10, &d->n_shared, err,
                               errlen)) ||
        (rc = model_hparam_int(m, "expert_feed_forward_length", -1, 1, 1 << 20, &d->exp_ff, err,
                               errlen)) ||
        (rc = model_hparam_float(m, "expert_weights_scale", 1.0, false, &d->w_scale, err,
                                 errlen)) ||
        (rc = model_hparam_int(m, "expert_gating_func", 0, 0, 2, &gating, err, errlen)))
        return rc;
    if (n_rot % 2 || n_rot >= kl)
        return err_set(err, errlen, EBADMSG,
                       "%s: rope.dimension_count %d does not fit key_length %d", path, n_rot, kl);
    if (n_head_kv != hp->n_head)
        return err_set(err, errlen, EBADMSG,
                       "%s: deepseek2 has %d KV heads for %d heads (MLA has no grouped heads)",
                       path, n_head_kv, hp->n_head);
    d->dk = kl;
    d->dr = n_rot;
    d->dn = kl - n_rot;
    d->dv = vl;
    d->gating = gating == GATE_SIGMOID ? GATE_SIGMOID : GATE_SOFTMAX;  /* 0/absent: softmax */
    char key[128];
    snprintf(key, sizeof key, "%s.expert_weights_norm", m->info.arch);
    bool norm = false;
    rc = gguf_get_bool(m->g, key, &norm, err, errlen);
    if (rc && rc != ENOENT)
        return rc;
    d->norm_w = norm;

    /* Group-limited routing (R1: 8 groups, the best 4 kept).  llama.cpp
     * c392e509 has no key for it; newer llama.cpp writes these two.  The test
     * models carry neither (one group), so their routing is exact without it. */
    if ((rc = model_hparam_int(m, "expert_group_count", 1, 1, d->n_exp < 256 ? d->n_exp : 256,
                               &d->n_group, err, errlen)) ||
        (rc = model_hparam_int(m, "expert_group_used_count", d->n_group, 1, d->n_group,
                               &d->topk_group, err, errlen)))
        return rc;
    if (d->n_exp % d->n_group)
        return err_set(err, errlen, EBADMSG, "%s: %d experts do not split into %d groups", path,
                       d->n_exp, d->n_group);
    if (d->topk_group * (d->n_exp / d->n_group) < d->n_used)
        return err_set(err, errlen, EBADMSG, "%s: %d groups of %d experts hold fewer than the %d used",
                       path, d->topk_group, d->n_exp / d->n_group, d->n_used);

    /* q-lora: decided by the key and the tensors, not by the layer count */
    d->q_lora = 0;
    if (has_key(m, "attention.q_lora_rank") && !gguf_find_tensor(m->g, "blk.0.attn_q.weight") &&
        (rc = model_hparam_int(m, "attention.q_lora_rank", -1, 1, 1 << 16, &d->q_lora, err,
                               errlen)))
        return rc;

    hp->n_head_kv = hp->n_head;
    hp->head_dim = kl;
    hp->rope.mode = ROPE_MODE_NORM;
    hp->rope.n_rot = n_rot;
    hp->rope.freq_scale = 1.0f;
    hp->rope.attn_factor = 1.0f;
    hp->rope.ext_factor = 0.0f;
    float log_mul = 0.0f, factor = 1.0f;
    if ((rc = model_hparam_float(m, "rope.scaling.yarn_log_multiplier", 0.0, false, &log_mul, err,
                                 errlen)))
        return rc;
    struct gguf_str st = {0};
    snprintf(key, sizeof key, "%s.rope.scaling.type", m->info.arch);
    bool yarn = gguf_get_str(m->g, key, &st, err, errlen) == 0 && st.len == 4 &&
                !memcmp(st.ptr, "yarn", 4);
    err[0] = 0;
    if (yarn) {
        int orig;
        if ((rc = model_hparam_float(m, "rope.scaling.factor", 1.0, false, &factor, err, errlen)) ||
            (rc = model_hparam_int(m, "rope.scaling.original_context_length", hp->n_ctx_train, 1,
                                   1 << 30, &orig, err, errlen)))
            return rc;
        if (!(factor >= 1.0f))
            return err_set(err, errlen, EBADMSG, "%s: rope.scaling.factor %g is below 1", path,
                           (double)factor);
        /* as llama.cpp's build_deepseek2 with the context defaults
         * (ext_factor 1, beta_fast 32, beta_slow 1): the rotation keeps its
         * magnitude, the attention scale takes mscale^2 */
        hp->rope.freq_scale = 1.0f / factor;
        hp->rope.ext_factor = 1.0f;
        hp->rope.beta_fast = 32.0f;
        hp->rope.beta_slow = 1.0f;
        hp->rope.n_ctx_orig = orig;
        hp->rope.attn_factor = 1.0f / (1.0f + 0.1f * logf(factor));
    }
    float mscale = 1.0f + log_mul * logf(1.0f / hp->rope.freq_scale);
    d->kq_scale = mscale * mscale / sqrtf((float)kl);

    hp->kv_k_width = (int64_t)d->kv_lora + d->dr;
    hp->kv_v_width = d->kv_lora;
    hp->kv_v_in_k = true;
    hp->n_expert = d->n_exp;
    hp->n_expert_used = d->n_used;
    return 0;
}

static int bind_layer(struct model *m, struct ds2 *d, int l, struct ds2_layer *L, char *err,
                      size_t errlen)
{
    const struct hparams *hp = &m->hp;
    int64_t E = hp->n_embd, H = hp->n_head;
    bool moe = l >= d->n_dense;
    int64_t sh = (int64_t)d->exp_ff * d->n_shared;
    struct {
        const char *name;
        int64_t n_in, n_out, n_exp;
        bool use, required;
        struct weight *w;
    } t[] = {
        {"attn_norm.weight", E, 0, 0, true, true, &L->attn_norm},
        {"attn_q_a.weight", E, d->q_lora, 0, d->q_lora > 0, true, &L->q_a},
        {"attn_q_a_norm.weight", d->q_lora, 0, 0, d->q_lora > 0, true, &L->q_a_norm},
        {"attn_q_b.weight", d->q_lora, H * d->dk, 0, d->q_lora > 0, true, &L->q_b},
        {"attn_q.weight", E, H * d->dk, 0, d->q_lora == 0, true, &L->q},
        {"attn_kv_a_mqa.weight", E, d->kv_lora + d->dr, 0, true, true, &L->kv_a},
        {"attn_kv_a_norm.weight", d->kv_lora, 0, 0, true, true, &L->kv_a_norm},
        {"attn_kv_b.weight", d->kv_lora, H * (d->dn + d->dv), 0, true, true, &L->kv_b},
        {"attn_output.weight", H * d->dv, E, 0, true, true, &L->wo},
        {"ffn_norm.weight", E, 0, 0, true, true, &L->ffn_norm},
        {"ffn_gate.weight", E, hp->n_ff, 0, !moe, true, &L->gate},
        {"ffn_up.weight", E, hp->n_ff, 0, !moe, true, &L->up},
        {"ffn_down.weight", hp->n_ff, E, 0, !moe, true, &L->down},
        {"ffn_gate_inp.weight", E, d->n_exp, 0, moe, true, &L->router},
        {"exp_probs_b.bias", d->n_exp, 0, 0, moe, false, &L->bias},
        {"ffn_gate_exps.weight", E, d->exp_ff, d->n_exp, moe, true, &L->gate_exps},
        {"ffn_up_exps.weight", E, d->exp_ff, d->n_exp, moe, true, &L->up_exps},
        {"ffn_down_exps.weight", d->exp_ff, E, d->n_exp, moe, true, &L->down_exps},
        {"ffn_gate_shexp.weight", E, sh, 0, moe && sh > 0, true, &L->gate_sh},
        {"ffn_up_shexp.weight", E, sh, 0, moe && sh > 0, true, &L->up_sh},
        {"ffn_down_shexp.weight", sh, E, 0, moe && sh > 0, true, &L->down_sh},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        if (!t[i].use)
            continue;
        char name[96];
        snprintf(name, sizeof name, "blk.%d.%s", l, t[i].name);
        int rc = t[i].n_exp ? model_bind_experts(m, name, t[i].n_in, t[i].n_out, t[i].n_exp,
                                                 t[i].required, t[i].w, err, errlen)
                            : model_bind(m, name, t[i].n_in, t[i].n_out, t[i].required, t[i].w,
                                         err, errlen);
        if (rc)
            return rc;
    }
    if (moe && L->bias.t && L->bias.type != QUANT_TYPE_F32)
        return err_set(err, errlen, EBADMSG, "%s: tensor 'blk.%d.exp_probs_b.bias' must be F32",
                       gguf_path(m->g), l);
    return 0;
}

/* Writes n floats as a row of type t (F32 or F16). */
static void put_row(enum quant_type t, const float *v, void *dst, int n)
{
    for (int i = 0; i < n; i++) {
        if (t == QUANT_TYPE_F32)
            ((float *)dst)[i] = v[i];
        else
            ((quant_f16 *)dst)[i] = quant_f32_to_f16(v[i]);
    }
}

/* The absorbed attention's weights, from attn_kv_b (rows j*(DN+DV) .. : DN
 * k_nope rows, then DV value rows, each of kv_lora values): kb_t holds per
 * head the kv_lora x DN transpose of the k_nope rows, vb the DV value rows
 * of every head, contiguous.  Both are F32 when kv_b is F32, else F16 (a
 * quantized vb would round the attention output a second time, which
 * llama.cpp's expanded form does not; the quantized td file then leaves
 * the reference's top-1). */
static int prepare_layer(struct model *m, struct ds2 *d, int l, char *err, size_t errlen)
{
    struct ds2_layer *L = &d->layers[l];
    const struct weight *kv = &L->kv_b;
    int H = m->hp.n_head, kl = d->kv_lora, dn = d->dn, dv = d->dv;
    const struct quant_traits *tr = quant_traits(kv->type);
    enum quant_type kt = kv->type == QUANT_TYPE_F32 ? QUANT_TYPE_F32 : QUANT_TYPE_F16;
    size_t el = kt == QUANT_TYPE_F32 ? 4 : 2;
    size_t kb_bytes, vb_bytes, total;
    if (!tr || !tr->dequantize ||
        ckd_mul_size(&kb_bytes, (size_t)H * (size_t)kl, (size_t)dn * el) ||
        ckd_mul_size(&vb_bytes, (size_t)H * (size_t)dv, (size_t)kl * el) ||
        ckd_add_size(&total, kb_bytes, vb_bytes))
        return err_set(err, errlen, ENOTSUP, "%s: cannot prepare blk.%d.attn_kv_b",
                       gguf_path(m->g), l);
    unsigned char *mem = malloc(total);
    float *rows = malloc((size_t)kl * (size_t)(dn > dv ? dn : dv) * sizeof(float));
    float *col = malloc((size_t)dn * sizeof(float));
    if (!mem || !rows || !col) {
        free(mem);
        free(rows);
        free(col);
        return err_set(err, errlen, ENOMEM, "out of memory preparing the attention weights");
    }
    d->prepared[l] = mem;
    unsigned char *kb = mem, *vb = mem + kb_bytes;
    const unsigned char *src = kv->data;
    for (int j = 0; j < H; j++) {
        size_t r0 = (size_t)j * (size_t)(dn + dv);
        for (int i = 0; i < dn; i++)   /* row i of W_kb_j: kv_lora values */
            tr->dequantize(src + (r0 + (size_t)i) * kv->row_bytes, rows + (size_t)i * (size_t)kl, kl);
        for (int c = 0; c < kl; c++) {
            for (int i = 0; i < dn; i++)
                col[i] = rows[(size_t)i * (size_t)kl + (size_t)c];
            put_row(kt, col, kb + ((size_t)j * (size_t)kl + (size_t)c) * (size_t)dn * el, dn);
        }
        for (int i = 0; i < dv; i++) {
            tr->dequantize(src + (r0 + (size_t)dn + (size_t)i) * kv->row_bytes, rows, kl);
            put_row(kt, rows, vb + ((size_t)j * (size_t)dv + (size_t)i) * (size_t)kl * el, kl);
        }
    }
    free(rows);
    free(col);
    L->kb_t = (struct weight){.t = kv->t, .type = kt, .n_in = dn, .n_out = (int64_t)H * kl,
                              .data = kb, .row_bytes = (size_t)dn * el};
    L->vb = (struct weight){.t = kv->t, .type = kt, .n_in = kl, .n_out = (int64_t)H * dv,
                            .data = vb, .row_bytes = (size_t)kl * el};
    return 0;
}

static void ds2_free(struct model *m)
{
    struct ds2 *d = m->layers;
    if (!d)
        return;
    for (int l = 0; d->prepared && l < m->hp.n_layer; l++)
        free(d->prepared[l]);
    free(d->prepared);
    free(d->layers);
    free(d->logits);
    free(d->weights);
    free(d->sel);
    free(d->experts);
    free(d->lat);
    free(d->lat_q);
    free(d);
    m->layers = NULL;
}

static int ds2_load(struct model *m, char *err, size_t errlen)
{
    struct hparams *hp = &m->hp;
    struct ds2 *d = calloc(1, sizeof *d);
    if (!d)
        return err_set(err, errlen, ENOMEM, "out of memory");
    m->layers = d;
    int rc = read_hparams(m, d, err, errlen);
    if (rc)
        return rc;
    if ((rc = dense_bind_ends(m, err, errlen)))
        return rc;
    d->layers = calloc((size_t)hp->n_layer, sizeof *d->layers);
    d->prepared = calloc((size_t)hp->n_layer, sizeof *d->prepared);
    if (!d->layers || !d->prepared)
        return err_set(err, errlen, ENOMEM, "out of memory");
    for (int l = 0; l < hp->n_layer; l++)
        if ((rc = bind_layer(m, d, l, &d->layers[l], err, errlen)) ||
            (rc = prepare_layer(m, d, l, err, errlen)))
            return rc;
    for (int l = 0; l < hp->n_layer; l++)
        d->round_latent |= d->layers[l].kv_b.type != QUANT_TYPE_F32;
    return 0;
}

/* ---- routing (host) ---- */

/* README 2.3: gating scores s, selection sel = s + bias, top-k of sel
 * (within the best groups when routing is group-limited), weights from s,
 * normalised when asked, times the scale.  sc: 2 * n_exp floats. */
static void route(const struct ds2 *d, const struct ds2_layer *L, const float *r, float *sc,
                  int32_t *ex, float *w)
{
    int n = d->n_exp;
    float *s = sc, *sel = sc + n;
    if (d->gating == GATE_SIGMOID) {
        for (int e = 0; e < n; e++)
            s[e] = 1.0f / (1.0f + expf(-r[e]));
    } else {
        float mx = -INFINITY;
        for (int e = 0; e < n; e++)
            mx = fmaxf(mx, r[e]);
        double sum = 0;
        for (int e = 0; e < n; e++)
            sum += (s[e] = expf(r[e] - mx));
        for (int e = 0; e < n; e++)
            s[e] = (float)(s[e] / sum);
    }
    const float *bias = L->bias.t ? L->bias.data : NULL;
    for (int e = 0; e < n; e++)
        sel[e] = bias ? s[e] + bias[e] : s[e];
    if (d->n_group > 1 && d->topk_group < d->n_group) {
        /* a group's score: the sum of its two best selection values; the
         * experts of all but the topk_group best groups are dropped */
        int gs = n / d->n_group;
        float gscore[256];
        int ng = d->n_group;   /* at most 256 (read_hparams) */
        for (int g = 0; g < ng; g++) {
            float b1 = -INFINITY, b2 = -INFINITY;
            for (int e = g * gs; e < (g + 1) * gs; e++) {
                if (sel[e] > b1) {
                    b2 = b1;
                    b1 = sel[e];
                } else if (sel[e] > b2) {
                    b2 = sel[e];
                }
            }
            gscore[g] = gs > 1 ? b1 + b2 : b1;
        }
        bool kept[256] = {false};
        for (int keep = 0; keep < d->topk_group && keep < ng; keep++) {
            int best = -1;
            for (int g = 0; g < ng; g++)
                if (!kept[g] && (best < 0 || gscore[g] > gscore[best]))
                    best = g;
            kept[best] = true;
        }
        for (int g = 0; g < ng; g++)
            if (!kept[g])
                for (int e = g * gs; e < (g + 1) * gs; e++)
                    sel[e] = -INFINITY;
    }
    double wsum = 0;
    for (int k = 0; k < d->n_used; k++) {
        int best = 0;
        for (int e = 1; e < n; e++)
            if (sel[e] > sel[best])
                best = e;
        sel[best] = -INFINITY;
        ex[k] = best;
        w[k] = s[best];
        wsum += w[k];
    }
    for (int k = 0; k < d->n_used; k++) {
        if (d->norm_w)
            w[k] = (float)(w[k] / wsum);
        w[k] *= d->w_scale;
    }
}

static int grow(struct ds2 *d, int n, char *err, size_t errlen)
{
    if (n <= d->cap)
        return 0;
    free(d->logits);
    free(d->weights);
    free(d->sel);
    free(d->experts);
    d->logits = malloc((size_t)n * (size_t)d->n_exp * sizeof(float));
    d->sel = malloc(2 * (size_t)d->n_exp * sizeof(float));
    d->weights = malloc((size_t)n * (size_t)d->n_used * sizeof(float));
    d->experts = malloc((size_t)n * (size_t)d->n_used * sizeof(int32_t));
    d->cap = d->logits && d->sel && d->weights && d->experts ? n : 0;
    if (!d->cap)
        return err_set(err, errlen, ENOMEM, "out of memory for routing");
    return 0;
}

/* ---- forward ---- */

#define CHECK_ON(bk, call)                                                           \
    do {                                                                             \
        if ((call)) {                                                                \
            snprintf(err, errlen, "%s", (bk)->ops->error(bk));                       \
            return EIO;                                                              \
        }                                                                            \
    } while (0)
#define CHECK(call) CHECK_ON(be, call)
#define ALLOC_ON(bk, t, ne0, ne1)                                                    \
    do {                                                                             \
        if (!((t) = (bk)->ops->alloc((bk), (ne0), (ne1))))                           \
            return err_set(err, errlen, ENOMEM, "out of memory for activations");    \
    } while (0)
#define ALLOC(t, ne0, ne1) ALLOC_ON(be, t, ne0, ne1)

/* llama.cpp multiplies attn_kv_b with the latent rounded to the weight's
 * activation type (testdata README 3.5) and caches the expanded keys and
 * values; the absorbed form never multiplies the latent by attn_kv_b, so the
 * latent is rounded the same way before it is cached (quantized kv_b only):
 * the scores and values are then llama.cpp's up to float ordering. */
static int round_latent(struct ds2 *d, struct backend *be, struct btensor *ckv,
                        enum quant_type wtype, int n, char *err, size_t errlen)
{
    const struct quant_traits *w = quant_traits(wtype);
    const struct quant_traits *a = w ? quant_traits(w->vec_dot_type) : NULL;
    size_t rb = a ? quant_row_bytes(w->vec_dot_type, d->kv_lora) : 0;
    if (!a || !a->quantize || !a->dequantize || w->vec_dot_type == QUANT_TYPE_F32 || !rb)
        return 0;
    size_t nf = (size_t)n * (size_t)d->kv_lora;
    if (nf > d->lat_cap) {
        free(d->lat);
        free(d->lat_q);
        d->lat = malloc(nf * sizeof(float));
        d->lat_q = malloc(rb > 1024 ? rb : 1024);
        d->lat_cap = d->lat && d->lat_q ? nf : 0;
        if (!d->lat_cap)
            return err_set(err, errlen, ENOMEM, "out of memory for the latent");
    }
    if (be->ops->sync)
        CHECK(be->ops->sync(be));
    CHECK(be->ops->read(be, ckv, 0, n, d->lat));
    for (int t = 0; t < n; t++) {
        float *row = d->lat + (size_t)t * (size_t)d->kv_lora;
        a->quantize(row, d->lat_q, d->kv_lora);
        a->dequantize(d->lat_q, row, d->kv_lora);
    }
    CHECK(be->ops->write(be, ckv, 0, n, d->lat));
    return 0;
}

/* The routed experts of one layer, added to x: on be itself, or, with the
 * experts kept in host memory, on the CPU backend over a host copy of h. */
static int run_experts(struct model *m, struct backend *be, const struct ds2_layer *L,
                       struct btensor *x, const struct btensor *h, struct btensor *hx,
                       struct btensor *hy, struct btensor *cur, int n, char *err, size_t errlen)
{
    struct ds2 *d = m->layers;
    if (be == m->be || !m->experts_on_cpu) {
        CHECK(be->ops->moe(be, x, &L->gate_exps, &L->up_exps, &L->down_exps, h, d->experts,
                           d->weights, d->n_used));
        return 0;
    }
    struct backend *cpu = m->be;
    CHECK(be->ops->sync ? be->ops->sync(be) : 0);
    CHECK(be->ops->read(be, h, 0, n, hx->data));
    memset(hy->data, 0, (size_t)n * (size_t)hy->ne0 * sizeof(float));
    CHECK_ON(cpu, cpu->ops->moe(cpu, hy, &L->gate_exps, &L->up_exps, &L->down_exps, hx,
                                d->experts, d->weights, d->n_used));
    CHECK(be->ops->write(be, cur, 0, n, hy->data));
    CHECK(be->ops->add(be, x, cur));
    return 0;
}

/* Layers l0 .. l1-1 on backend be, whose KV cache holds them from kv0. */
static int run_layers(struct model *m, struct backend *be, struct btensor *x, int l0, int l1,
                      int kv0, int n, int pos0, char *err, size_t errlen)
{
    const struct hparams *hp = &m->hp;
    struct ds2 *d = m->layers;
    int H = hp->n_head, kl = d->kv_lora, dr = d->dr, dk = d->dk, dv = d->dv;
    int64_t lat = (int64_t)kl + dr;
    int ff = hp->n_ff > d->exp_ff * d->n_shared ? hp->n_ff : d->exp_ff * d->n_shared;
    struct btensor *h, *cur, *qa = NULL, *q, *c, *ckv, *qf, *att, *vo, *g, *u, *rl = NULL;
    struct btensor *hx = NULL, *hy = NULL, *gs, *us;
    ALLOC(h, hp->n_embd, n);
    ALLOC(cur, hp->n_embd, n);
    if (d->q_lora)
        ALLOC(qa, d->q_lora, n);
    ALLOC(q, (int64_t)H * dk, n);
    ALLOC(c, lat, n);
    ALLOC(ckv, kl, n);
    ALLOC(qf, H * lat, n);
    ALLOC(att, (int64_t)H * kl, n);
    ALLOC(vo, (int64_t)H * dv, n);
    ALLOC(g, hp->n_ff, n);
    ALLOC(u, hp->n_ff, n);
    if (d->exp_ff * d->n_shared > 0) {
        ALLOC(gs, (int64_t)d->exp_ff * d->n_shared, n);
        ALLOC(us, (int64_t)d->exp_ff * d->n_shared, n);
    } else {
        gs = us = NULL;
    }
    (void)ff;
    if (l1 > d->n_dense)
        ALLOC(rl, d->n_exp, n);
    if (be != m->be && m->experts_on_cpu) {
        ALLOC_ON(m->be, hx, hp->n_embd, n);
        ALLOC_ON(m->be, hy, hp->n_embd, n);
    }
    struct rope_params rq = hp->rope, rk = hp->rope;
    rq.dim_off = d->dn;
    rk.dim_off = kl;
    int rc;
    for (int l = l0; l < l1; l++) {
        const struct ds2_layer *L = &d->layers[l];
        CHECK(be->ops->rms_norm(be, h, x, &L->attn_norm, hp->eps));
        if (d->q_lora) {
            CHECK(be->ops->matmul(be, qa, &L->q_a, NULL, h));
            CHECK(be->ops->rms_norm(be, qa, qa, &L->q_a_norm, hp->eps));
            CHECK(be->ops->matmul(be, q, &L->q_b, NULL, qa));
        } else {
            CHECK(be->ops->matmul(be, q, &L->q, NULL, h));
        }
        /* the cache row: [c_kv normed ; k_pe roped] */
        CHECK(be->ops->matmul(be, c, &L->kv_a, NULL, h));
        CHECK(be->ops->copy_cols(be, ckv, 0, 0, c, 0, 0, kl, 1));
        CHECK(be->ops->rms_norm(be, ckv, ckv, &L->kv_a_norm, hp->eps));
        if (d->round_latent && (rc = round_latent(d, be, ckv, L->kv_b.type, n, err, errlen)))
            return rc;
        CHECK(be->ops->copy_cols(be, c, 0, 0, ckv, 0, 0, kl, 1));
        CHECK(be->ops->rope(be, c, (int)lat, &rk, m->pos));
        CHECK(be->ops->kv_store(be, l - kv0, c, NULL, pos0));
        /* the query per head: [W_kb_j^T q_nope_j ; roped q_pe_j] */
        CHECK(be->ops->rope(be, q, dk, &rq, m->pos));
        CHECK(be->ops->matmul_heads(be, qf, lat, &L->kb_t, H, q, dk));
        CHECK(be->ops->copy_cols(be, qf, kl, lat, q, d->dn, dk, dr, H));
        CHECK(be->ops->attention(be, att, qf, l - kv0, H, 1, (int)lat, kl, pos0, d->kq_scale));
        CHECK(be->ops->matmul_heads(be, vo, dv, &L->vb, H, att, kl));
        CHECK(be->ops->matmul(be, cur, &L->wo, NULL, vo));
        CHECK(be->ops->add(be, x, cur));

        CHECK(be->ops->rms_norm(be, h, x, &L->ffn_norm, hp->eps));
        if (l < d->n_dense) {
            CHECK(be->ops->matmul(be, g, &L->gate, NULL, h));
            CHECK(be->ops->matmul(be, u, &L->up, NULL, h));
            CHECK(be->ops->swiglu(be, g, g, u));
            CHECK(be->ops->matmul(be, cur, &L->down, NULL, g));
            CHECK(be->ops->add(be, x, cur));
            continue;
        }
        CHECK(be->ops->matmul(be, rl, &L->router, NULL, h));
        if (be->ops->sync)
            CHECK(be->ops->sync(be));
        CHECK(be->ops->read(be, rl, 0, n, d->logits));
        for (int t = 0; t < n; t++)
            route(d, L, d->logits + (size_t)t * (size_t)d->n_exp, d->sel,
                  d->experts + (size_t)t * (size_t)d->n_used,
                  d->weights + (size_t)t * (size_t)d->n_used);
        rc = run_experts(m, be, L, x, h, hx, hy, cur, n, err, errlen);
        if (rc)
            return rc;
        if (gs) {
            CHECK(be->ops->matmul(be, gs, &L->gate_sh, NULL, h));
            CHECK(be->ops->matmul(be, us, &L->up_sh, NULL, h));
            CHECK(be->ops->swiglu(be, gs, gs, us));
            CHECK(be->ops->matmul(be, cur, &L->down_sh, NULL, gs));
            CHECK(be->ops->add(be, x, cur));
        }
    }
    return 0;
}

/* The first n_gpu_layers layers run on the device backend (with their
 * routed experts on the CPU when experts_on_cpu), the rest on the CPU. */
static int ds2_forward(struct model *m, const int32_t *ids, int n, int pos0, float *logits,
                       bool all, char *err, size_t errlen)
{
    int rc = grow(m->layers, n, err, errlen);
    if (rc)
        return rc;
    return dense_run(m, run_layers, ids, n, pos0, logits, all, err, errlen);
}

static int ds2_prepared(const struct model *m, int l, const struct weight **out, int max)
{
    const struct ds2 *d = m->layers;
    if (!d || l < 0 || l >= m->hp.n_layer || max < 2)
        return 0;
    out[0] = &d->layers[l].kb_t;
    out[1] = &d->layers[l].vb;
    return 2;
}

const struct arch arch_deepseek2 = {
    .name = "deepseek2",
    .load = ds2_load,
    .forward = ds2_forward,
    .free = ds2_free,
    .prepared = ds2_prepared,
};
