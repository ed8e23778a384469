/* The hardware advisor (advisor.h): model sizes from published shapes and
 * llama-quantize's type rules, the memory plan (infer/plan.c) for this
 * machine, and speeds from measured bandwidth and compute. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "app/advisor.h"
#include "app/config.h"
#include "history/store.h"
#include "infer/clock.h"
#include "infer/cpu/cpu.h"
#include "infer/cpu/membw.h"
#include "infer/err.h"
#include "infer/gguf.h"
#include "infer/model.h"
#include "infer/vulkan/membw_vk.h"
#include "infer/vulkan/vk.h"

#define ADV_MAX_LAYERS 256
#define ADV_N_BATCH 512
#define ADV_ALIGN 32
#define ADV_META_PER_TOKEN 40      /* GGUF metadata bytes per vocabulary entry (tokens,
                                      scores, types, merges): 5.95 MB for the 151,936 of
                                      the R1-Distill-Qwen files */
#define ADV_RECORD_KEY "advisor.measurements"
#define ADV_RECORD_MAX 64
#define ADV_CALIBRATION_MIN_BYTES ((json_int_t)64 << 20)
#define ADV_RUN_MODELS 8           /* model files whose replies calibrate: the latest used */
#define ADV_RUN_CTX 4096           /* the context their plan is made at */

/* ---- weight types, including the two ponder does not run ---- */

enum aq { AQ_F32, AQ_F16, AQ_Q8_0, AQ_Q5_0, AQ_Q5_1, AQ_IQ4_NL, AQ_Q2_K, AQ_Q3_K, AQ_Q4_K,
          AQ_Q5_K, AQ_Q6_K, AQ_IQ2_XXS, AQ_IQ1_S };

static const struct {
    int block;
    int bytes;
    int quant;      /* enum quant_type, -1 when ponder lacks it */
} aq_info[] = {
    [AQ_F32] = {1, 4, QUANT_TYPE_F32},         [AQ_F16] = {1, 2, QUANT_TYPE_F16},
    [AQ_Q8_0] = {32, 34, QUANT_TYPE_Q8_0},     [AQ_Q5_0] = {32, 22, QUANT_TYPE_Q5_0},
    [AQ_Q5_1] = {32, 24, QUANT_TYPE_Q5_1},     [AQ_IQ4_NL] = {32, 18, -1},
    [AQ_Q2_K] = {256, 84, QUANT_TYPE_Q2_K},    [AQ_Q3_K] = {256, 110, QUANT_TYPE_Q3_K},
    [AQ_Q4_K] = {256, 144, QUANT_TYPE_Q4_K},   [AQ_Q5_K] = {256, 176, QUANT_TYPE_Q5_K},
    [AQ_Q6_K] = {256, 210, QUANT_TYPE_Q6_K},   [AQ_IQ2_XXS] = {256, 66, -1},
    [AQ_IQ1_S] = {256, 50, -1},
};

/* The llama-quantize file types ("mixes"): a base type and the rules below. */
enum mix { MIX_F16, MIX_Q8_0, MIX_Q6_K, MIX_Q5_K_M, MIX_Q4_K_M, MIX_Q3_K_M, MIX_Q2_K,
           MIX_IQ2_XXS, MIX_IQ1_S };

static const struct {
    const char *name;
    enum aq base;
} mixes[] = {
    [MIX_F16] = {"F16", AQ_F16},          [MIX_Q8_0] = {"Q8_0", AQ_Q8_0},
    [MIX_Q6_K] = {"Q6_K", AQ_Q6_K},       [MIX_Q5_K_M] = {"Q5_K_M", AQ_Q5_K},
    [MIX_Q4_K_M] = {"Q4_K_M", AQ_Q4_K},   [MIX_Q3_K_M] = {"Q3_K_M", AQ_Q3_K},
    [MIX_Q2_K] = {"Q2_K", AQ_Q2_K},       [MIX_IQ2_XXS] = {"IQ2_XXS", AQ_IQ2_XXS},
    [MIX_IQ1_S] = {"IQ1_S", AQ_IQ1_S},
};
#define N_MIXES ((int)(sizeof mixes / sizeof mixes[0]))

/* ---- the published shapes ---- */

static const char *const dense_quants[] = {"Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K",
                                           "Q8_0", "F16", NULL};
static const char *const moe_quants[] = {"IQ1_S", "IQ2_XXS", "Q2_K", "Q3_K_M", "Q4_K_M",
                                         "Q5_K_M", "Q6_K", "Q8_0", "F16", NULL};

/* From each model's config.json (Hugging Face deepseek-ai/...). */
static const struct advisor_shape shapes[] = {
    {.name = "R1-Distill-Qwen-1.5B", .arch = "qwen2", .n_layer = 28, .n_embd = 1536,
     .n_head = 12, .n_head_kv = 2, .n_ff = 8960, .n_vocab = 151936, .quants = dense_quants},
    {.name = "R1-Distill-Qwen-7B", .arch = "qwen2", .n_layer = 28, .n_embd = 3584, .n_head = 28,
     .n_head_kv = 4, .n_ff = 18944, .n_vocab = 152064, .quants = dense_quants},
    {.name = "R1-Distill-Llama-8B", .arch = "llama", .n_layer = 32, .n_embd = 4096,
     .n_head = 32, .n_head_kv = 8, .n_ff = 14336, .n_vocab = 128256, .quants = dense_quants},
    {.name = "R1-Distill-Qwen-14B", .arch = "qwen2", .n_layer = 48, .n_embd = 5120,
     .n_head = 40, .n_head_kv = 8, .n_ff = 13824, .n_vocab = 152064, .quants = dense_quants},
    {.name = "R1-Distill-Qwen-32B", .arch = "qwen2", .n_layer = 64, .n_embd = 5120,
     .n_head = 40, .n_head_kv = 8, .n_ff = 27648, .n_vocab = 152064, .quants = dense_quants},
    {.name = "R1-Distill-Llama-70B", .arch = "llama", .n_layer = 80, .n_embd = 8192,
     .n_head = 64, .n_head_kv = 8, .n_ff = 28672, .n_vocab = 128256, .quants = dense_quants},
    {.name = "DeepSeek-R1-671B", .arch = "deepseek2", .n_layer = 61, .n_embd = 7168,
     .n_head = 128, .n_head_kv = 128, .n_ff = 18432, .n_vocab = 129280, .n_dense = 3,
     .q_lora = 1536, .kv_lora = 512, .qk_nope = 128, .qk_rope = 64, .v_head = 128,
     .n_expert = 256, .n_expert_shared = 1, .n_expert_used = 8, .expert_ff = 2048,
     .quants = moe_quants},
};

int advisor_n_shapes(void)
{
    return (int)(sizeof shapes / sizeof shapes[0]);
}

const struct advisor_shape *advisor_shape(int i)
{
    return i >= 0 && i < advisor_n_shapes() ? &shapes[i] : NULL;
}

/* ---- per-tensor types: llama.cpp's llama_tensor_get_type (src/llama-quant.cpp),
 * for the tensors these shapes have.  tools/genmodel.c applies the same rules
 * to the dense shapes when it writes files; this adds the deepseek2 tensors
 * and the IQ1_S / IQ2_XXS mixes.
 *   output: Q8_0 when ne0 % 256, Q5_K for the IQ mixes, else Q6_K (Q8_0 stays).
 *   token_embd: Q2_K for the IQ mixes, else the base.
 *   attn_v (counted i of n): Q2_K: Q4_K when n_head/n_head_kv >= 4 else Q3_K;
 *     Q3_K_M: Q5_K for the first two, else Q4_K; Q4_K_M, Q5_K_M: Q6_K where
 *     use_more_bits(i, n); 80 layers: Q3_K/Q4_K -> Q5_K; IQ mixes: Q4_K when
 *     gqa >= 4 or n_expert >= 4, else Q2_K.
 *   ffn_down (i, n over every tensor named ffn_down*; a MoE model takes i
 *     from the layer number): Q2_K: Q3_K; Q3_K_M: Q5_K where i < n/16 else
 *     Q4_K; Q4_K_M, Q5_K_M: Q6_K where use_more_bits(i, n); IQ mixes: Q2_K
 *     for the first n/8 tensors in file order.
 *   attn_output: Q2_K: Q3_K; Q3_K_M: Q4_K; IQ1_S: IQ2_XXS.
 *   ffn_gate_inp (the router) and 1-D tensors: F32.
 *   A row the block does not divide: Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0,
 *   the 2-3 bit types -> IQ4_NL, then F16. */

enum role { R_EMBD, R_OUTPUT, R_ATTN_V, R_ATTN_OUT, R_FFN_DOWN, R_ROUTER, R_NORM, R_OTHER };

struct qstate {
    enum mix mix;
    const struct advisor_shape *s;
    int i_attn_v, n_attn_v, i_ffn_down, n_ffn_down;
};

static bool use_more_bits(int i, int n)
{
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

static enum aq tensor_type(struct qstate *q, enum role role, int layer, int64_t ne0)
{
    enum mix mx = q->mix;
    enum aq t = mixes[mx].base;
    const struct advisor_shape *s = q->s;
    bool kq = mx == MIX_Q2_K || mx == MIX_Q3_K_M || mx == MIX_Q4_K_M || mx == MIX_Q5_K_M ||
              mx == MIX_Q6_K;
    bool iq = mx == MIX_IQ2_XXS || mx == MIX_IQ1_S;
    if (role == R_NORM || role == R_ROUTER)
        return AQ_F32;
    if (mx == MIX_F16)
        return AQ_F16;
    int gqa = s->n_head_kv > 0 ? s->n_head / s->n_head_kv : 1;
    switch (role) {
    case R_OUTPUT:
        if (ne0 % 256)
            t = AQ_Q8_0;
        else if (iq)
            t = AQ_Q5_K;
        else if (t != AQ_Q8_0)
            t = AQ_Q6_K;
        break;
    case R_EMBD:
        if (iq)
            t = AQ_Q2_K;
        break;
    case R_ATTN_V: {
        int i = q->i_attn_v++, n = q->n_attn_v;
        if (iq)
            t = gqa >= 4 || s->n_expert >= 4 ? AQ_Q4_K : AQ_Q2_K;
        else if (mx == MIX_Q2_K)
            t = gqa >= 4 ? AQ_Q4_K : AQ_Q3_K;
        else if (mx == MIX_Q3_K_M)
            t = i < 2 ? AQ_Q5_K : AQ_Q4_K;
        else if ((mx == MIX_Q4_K_M || mx == MIX_Q5_K_M) && use_more_bits(i, n))
            t = AQ_Q6_K;
        if (kq && s->n_layer == 80 && (t == AQ_Q3_K || t == AQ_Q4_K))
            t = AQ_Q5_K;
        break;
    }
    case R_FFN_DOWN: {
        int i = s->n_expert > 1 ? layer : q->i_ffn_down, n = q->n_ffn_down;
        if (iq) {
            if (q->i_ffn_down < n / 8)
                t = AQ_Q2_K;
        } else if (mx == MIX_Q2_K) {
            t = AQ_Q3_K;
        } else if (mx == MIX_Q3_K_M) {
            t = i < n / 16 ? AQ_Q5_K : AQ_Q4_K;
        } else if ((mx == MIX_Q4_K_M || mx == MIX_Q5_K_M) && use_more_bits(i, n)) {
            t = AQ_Q6_K;
        }
        q->i_ffn_down++;
        break;
    }
    case R_ATTN_OUT:
        if (mx == MIX_Q2_K)
            t = AQ_Q3_K;
        else if (mx == MIX_Q3_K_M)
            t = AQ_Q4_K;
        else if (mx == MIX_IQ1_S)
            t = AQ_IQ2_XXS;
        break;
    default:
        break;
    }
    if (ne0 % aq_info[t].block) {
        switch (t) {
        case AQ_Q4_K: t = AQ_Q5_0; break;
        case AQ_Q5_K: t = AQ_Q5_1; break;
        case AQ_Q6_K: t = AQ_Q8_0; break;
        case AQ_Q2_K: case AQ_Q3_K: case AQ_IQ2_XXS: case AQ_IQ1_S: t = AQ_IQ4_NL; break;
        default: break;
        }
        if (ne0 % aq_info[t].block)
            t = AQ_F16;
    }
    return t;
}

/* ---- the byte counts of a model, from a shape or a file ---- */

enum part { P_EMBD, P_OUTPUT, P_LAYER, P_EXPERT };

struct counts {
    int n_layer;
    uint64_t layer[ADV_MAX_LAYERS], expert[ADV_MAX_LAYERS];
    uint64_t embd, embd_row, output;
    uint64_t tensor_bytes;          /* aligned, as in the file */
    double params, dense_params, expert_params;     /* multiplied per token / all experts */
    int n_expert, n_expert_used;
    uint64_t type_bytes[QUANT_TYPE_COUNT + 1];      /* [QUANT_TYPE_COUNT]: types ponder lacks */
};

static void count_add(struct counts *c, enum part p, int layer, int quant, uint64_t bytes,
                      double n, int64_t ne0)
{
    c->tensor_bytes += (bytes + ADV_ALIGN - 1) / ADV_ALIGN * ADV_ALIGN;
    c->params += n;
    c->type_bytes[quant >= 0 && quant < QUANT_TYPE_COUNT ? quant : QUANT_TYPE_COUNT] += bytes;
    switch (p) {
    case P_EMBD:
        c->embd += bytes;
        c->embd_row = ne0 > 0 ? (uint64_t)((double)bytes * ne0 / n) : 0;
        break;
    case P_OUTPUT:
        c->output += bytes;
        c->dense_params += n;
        break;
    case P_LAYER:
        if (layer >= 0 && layer < ADV_MAX_LAYERS)
            c->layer[layer] += bytes;
        c->dense_params += n;
        break;
    case P_EXPERT:
        if (layer >= 0 && layer < ADV_MAX_LAYERS)
            c->expert[layer] += bytes;
        c->expert_params += n;
        break;
    }
}

static void shape_tensor(struct counts *c, struct qstate *q, enum part p, enum role role,
                         int layer, int64_t ne0, int64_t ne1, int64_t ne2)
{
    enum aq t = tensor_type(q, ne1 == 1 && ne2 == 1 && role != R_ROUTER ? R_NORM : role, layer,
                            ne0);
    double n = (double)ne0 * (double)ne1 * (double)ne2;
    uint64_t bytes = (uint64_t)(n / aq_info[t].block * aq_info[t].bytes);
    count_add(c, p, layer, aq_info[t].quant, bytes, n, p == P_EMBD ? ne0 : 0);
}

/* The engine's absorbed attention (infer/arch/deepseek2.c prepare_layer):
 * attn_kv_b unpacked per head into f16 k and v parts, kept in memory beside
 * the file and read by every token. */
static uint64_t absorbed_bytes(int64_t n_head, int64_t kv_lora, int64_t nope, int64_t v_head)
{
    return (uint64_t)n_head * (uint64_t)kv_lora * (uint64_t)(nope + v_head) * 2;
}

static void shape_counts(const struct advisor_shape *s, enum mix mx, struct counts *c)
{
    memset(c, 0, sizeof *c);
    c->n_layer = s->n_layer;
    bool moe = s->n_expert > 0;
    struct qstate q = {.mix = mx, .s = s, .n_attn_v = moe ? 0 : s->n_layer,
                       .n_ffn_down = moe ? s->n_dense + 2 * (s->n_layer - s->n_dense)
                                         : s->n_layer};
    int64_t e = s->n_embd;
    c->n_expert = s->n_expert;
    c->n_expert_used = s->n_expert_used;
    shape_tensor(c, &q, P_EMBD, R_EMBD, -1, e, s->n_vocab, 1);
    for (int l = 0; l < s->n_layer; l++) {
        shape_tensor(c, &q, P_LAYER, R_NORM, l, e, 1, 1);
        shape_tensor(c, &q, P_LAYER, R_NORM, l, e, 1, 1);
        if (moe) {
            int64_t hq = (int64_t)s->n_head * (s->qk_nope + s->qk_rope);
            shape_tensor(c, &q, P_LAYER, R_OTHER, l, e, s->q_lora, 1);          /* attn_q_a */
            shape_tensor(c, &q, P_LAYER, R_NORM, l, s->q_lora, 1, 1);
            shape_tensor(c, &q, P_LAYER, R_OTHER, l, s->q_lora, hq, 1);         /* attn_q_b */
            shape_tensor(c, &q, P_LAYER, R_OTHER, l, e, s->kv_lora + s->qk_rope, 1);
            shape_tensor(c, &q, P_LAYER, R_NORM, l, s->kv_lora, 1, 1);
            shape_tensor(c, &q, P_LAYER, R_OTHER, l, s->kv_lora,
                         (int64_t)s->n_head * (s->qk_nope + s->v_head), 1);     /* attn_kv_b */
            shape_tensor(c, &q, P_LAYER, R_ATTN_OUT, l, (int64_t)s->n_head * s->v_head, e, 1);
            c->layer[l] += absorbed_bytes(s->n_head, s->kv_lora, s->qk_nope, s->v_head);
        } else {
            int64_t hd = e / s->n_head, kv = (int64_t)s->n_head_kv * hd;
            bool bias = !strcmp(s->arch, "qwen2");
            shape_tensor(c, &q, P_LAYER, R_OTHER, l, e, e, 1);
            shape_tensor(c, &q, P_LAYER, R_OTHER, l, e, kv, 1);
            shape_tensor(c, &q, P_LAYER, R_ATTN_V, l, e, kv, 1);
            if (bias) {
                shape_tensor(c, &q, P_LAYER, R_NORM, l, e, 1, 1);
                shape_tensor(c, &q, P_LAYER, R_NORM, l, kv, 1, 1);
                shape_tensor(c, &q, P_LAYER, R_NORM, l, kv, 1, 1);
            }
            shape_tensor(c, &q, P_LAYER, R_ATTN_OUT, l, e, e, 1);
        }
        if (!moe || l < s->n_dense) {
            shape_tensor(c, &q, P_LAYER, R_OTHER, l, e, s->n_ff, 1);
            shape_tensor(c, &q, P_LAYER, R_OTHER, l, e, s->n_ff, 1);
            shape_tensor(c, &q, P_LAYER, R_FFN_DOWN, l, s->n_ff, e, 1);
        } else {
            int64_t ff = s->expert_ff;
            shape_tensor(c, &q, P_LAYER, R_ROUTER, l, e, s->n_expert, 1);
            shape_tensor(c, &q, P_LAYER, R_NORM, l, s->n_expert, 1, 1);        /* exp_probs_b */
            shape_tensor(c, &q, P_EXPERT, R_OTHER, l, e, ff, s->n_expert);
            shape_tensor(c, &q, P_EXPERT, R_OTHER, l, e, ff, s->n_expert);
            shape_tensor(c, &q, P_EXPERT, R_FFN_DOWN, l, ff, e, s->n_expert);
            shape_tensor(c, &q, P_LAYER, R_OTHER, l, e, ff * s->n_expert_shared, 1);
            shape_tensor(c, &q, P_LAYER, R_OTHER, l, e, ff * s->n_expert_shared, 1);
            shape_tensor(c, &q, P_LAYER, R_FFN_DOWN, l, ff * s->n_expert_shared, e, 1);
        }
    }
    shape_tensor(c, &q, P_OUTPUT, R_NORM, -1, e, 1, 1);
    shape_tensor(c, &q, P_OUTPUT, R_OUTPUT, -1, e, s->n_vocab, 1);
    if (!strcmp(s->arch, "llama"))
        shape_tensor(c, &q, P_OUTPUT, R_NORM, -1, e / s->n_head / 2, 1, 1);    /* rope_freqs */
}

/* ---- speeds ---- */

double advisor_tg_tps(const struct plan *p, const struct advisor_machine *mc)
{
    if (!p->fits || mc->host_gbs <= 0)
        return 0;
    double cpu_eff = mc->cpu_eff > 0 ? mc->cpu_eff : ADVISOR_DEFAULT_CPU_EFF;
    double dev_eff = mc->device_eff > 0 ? mc->device_eff : ADVISOR_DEFAULT_DEVICE_EFF;
    double dev_gbs = mc->device_gbs > 0 ? mc->device_gbs : mc->host_gbs;
    double t = (double)p->host_token_bytes / (mc->host_gbs * 1e9 * cpu_eff) +
               (double)p->gpu_token_bytes / (dev_gbs * 1e9 * dev_eff);
    return t > 0 ? 1.0 / t : 0;
}

double advisor_estimate_tg(const struct advisor_estimate *e, const struct advisor_machine *mc)
{
    double bw = advisor_tg_tps(&e->plan, mc);
    if (bw <= 0)
        return 0;
    /* the kernels overlap the memory stream only in part: between the sum
     * of the two times (no overlap) and the larger (full overlap), a
     * 1.5-norm, which fits this machine's measurements of Q8_0, Q4_K_M and
     * F16 (ponder fit --check) within 5-16 % where the sum was 3-26 % low */
    double tm = 1.0 / bw, tc = (double)e->plan.host_token_bytes * e->host_compute_s_per_byte;
    double t = pow(pow(tm, 1.5) + pow(tc, 1.5), 1 / 1.5);
    return t > 0 ? 1.0 / t : 0;
}

/* Kernel seconds per weight byte, averaged over the model's types by bytes. */
static double compute_s_per_byte(const struct advisor_machine *mc, const struct counts *c)
{
    double bytes = 0, secs = 0;
    double fallback = mc->cpu_stream_gbs[QUANT_TYPE_Q4_K];
    for (int t = 0; t < QUANT_TYPE_COUNT; t++) {
        if (!c->type_bytes[t] || t == QUANT_TYPE_F32)
            continue;
        double gbs = mc->cpu_stream_gbs[t] > 0 ? mc->cpu_stream_gbs[t] : fallback;
        if (gbs <= 0)
            return 0;
        bytes += (double)c->type_bytes[t];
        secs += (double)c->type_bytes[t] / (gbs * 1e9);
    }
    return bytes > 0 ? secs / bytes : 0;
}

/* The CPU rate for a model: its main weight type's measured rate. */
static double cpu_rate(const struct advisor_machine *mc, const struct counts *c)
{
    int best = -1;
    for (int t = 0; t < QUANT_TYPE_COUNT; t++)
        if (t != QUANT_TYPE_F32 && (best < 0 || c->type_bytes[t] > c->type_bytes[best]))
            best = t;
    if (best >= 0 && mc->cpu_gflops_type[best] > 0)
        return mc->cpu_gflops_type[best];
    return mc->cpu_gflops;
}

static double pp_tps(const struct plan *p, const struct advisor_machine *mc,
                     const struct counts *c, double flops)
{
    double rate = cpu_rate(mc, c);
    if (!p->fits || rate <= 0 || flops <= 0)
        return 0;
    double eff = mc->pp_eff > 0 ? mc->pp_eff : ADVISOR_DEFAULT_PP_EFF;
    double all = (double)p->host_token_bytes + (double)p->gpu_token_bytes;
    double f_gpu = all > 0 ? (double)p->gpu_token_bytes / all : 0;
    double dev = mc->device_gflops > 0 ? mc->device_gflops : rate;
    double t = flops * (1 - f_gpu) / (rate * 1e9 * eff) + flops * f_gpu / (dev * 1e9 * eff);
    return t > 0 ? 1.0 / t : 0;
}

/* ---- measurements kept in the store ---- */

static json_t *records_load(struct store *store)
{
    char *v = NULL, err[256];
    if (!store || store_setting_get(store, ADV_RECORD_KEY, &v, err, sizeof err) || !v)
        return json_array();
    json_t *a = json_loads(v, 0, NULL);
    free(v);
    if (!json_is_array(a)) {
        json_decref(a);
        return json_array();
    }
    return a;
}

/* The latest measurement of this file (fingerprint) or, when fp is NULL or
 * not found, of a file of the same shape and type; NULL when none. */
static json_t *records_find(json_t *a, const char *fp, const struct advisor_estimate *e)
{
    json_t *best = NULL, *same = NULL;
    size_t i;
    json_t *r;
    json_array_foreach(a, i, r) {
        const char *rfp = json_string_value(json_object_get(r, "fingerprint"));
        if (fp && rfp && !strcmp(fp, rfp)) {
            same = r;
            continue;
        }
        if (!strcmp(json_string_value(json_object_get(r, "arch")) ? json_string_value(
                        json_object_get(r, "arch")) : "", e->arch) &&
            json_integer_value(json_object_get(r, "n_layer")) == e->n_layer &&
            json_integer_value(json_object_get(r, "n_embd")) == e->n_embd &&
            json_string_value(json_object_get(r, "type")) &&
            !strcmp(json_string_value(json_object_get(r, "type")), e->type))
            best = r;
    }
    return same ? same : best;
}

/* Applies a measurement of the same file or shape made with the same
 * placement: tg and pp as measured. */
static void apply_measured(struct store *store, const char *fp, struct advisor_estimate *e)
{
    if (!store || !e->plan.fits)
        return;
    json_t *a = records_load(store);
    json_t *r = records_find(a, fp, e);
    if (r && json_integer_value(json_object_get(r, "n_gpu_layers")) == e->plan.n_gpu_layers) {
        double tg = json_real_value(json_object_get(r, "tg_tps"));
        double pp = json_real_value(json_object_get(r, "pp_tps"));
        if (tg > 0 || pp > 0) {
            e->measured = true;
            if (tg > 0)
                e->tg_tps = tg;
            if (pp > 0)
                e->pp_tps = pp;
        }
    }
    json_decref(a);
}

int advisor_record(struct store *store, const char *path, const struct advisor_estimate *e,
                   const struct advisor_machine *mc, double tg_tps, double pp_tps, char *err,
                   size_t errlen)
{
    char fp[STORE_FINGERPRINT_SIZE] = "";
    int rc = store_model_fingerprint(path, fp, err, errlen);
    if (rc)
        return rc;
    json_t *a = records_load(store);
    while (json_array_size(a) >= ADV_RECORD_MAX)
        json_array_remove(a, 0);
    /* the bound this run had, at full efficiency */
    struct advisor_machine full = *mc;
    full.cpu_eff = full.device_eff = 1;
    double bound = advisor_estimate_tg(e, &full);
    json_t *r = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:f, "
                          "s:f, s:I, s:I}",
                          "fingerprint", fp, "name", e->name, "arch", e->arch, "type", e->type,
                          "n_layer", e->n_layer, "n_embd", e->n_embd, "n_gpu_layers",
                          e->plan.n_gpu_layers, "n_threads", mc->n_threads, "tg_tps", tg_tps,
                          "pp_tps", pp_tps, "bound_tps", bound, "host_gbs", mc->host_gbs,
                          "device_gbs", mc->device_gbs, "flops_per_token", e->flops_per_token,
                          "token_bytes",
                          (json_int_t)(e->plan.host_token_bytes + e->plan.gpu_token_bytes),
                          "time", (json_int_t)time(NULL));
    json_array_append_new(a, r);
    char *s = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    if (!s)
        return err_set(err, errlen, ENOMEM, "out of memory");
    rc = store_setting_set(store, ADV_RECORD_KEY, s, err, errlen);
    free(s);
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The model files the store has seen used, latest first, as path and
 * fingerprint (their strings copied out of the store's callback). */
struct run_models {
    int n;
    char path[ADV_RUN_MODELS][1024];
    char fp[ADV_RUN_MODELS][STORE_FINGERPRINT_SIZE];
};

static int run_model_fn(void *ctx, const struct store_model *m)
{
    struct run_models *rm = ctx;
    if (rm->n < ADV_RUN_MODELS && strlen(m->path) < sizeof rm->path[0] &&
        strlen(m->fingerprint) < sizeof rm->fp[0]) {
        snprintf(rm->path[rm->n], sizeof rm->path[0], "%s", m->path);
        snprintf(rm->fp[rm->n], sizeof rm->fp[0], "%s", m->fingerprint);
        rm->n++;
    }
    return 0;
}

/* The fraction of its bound one model file reached in its replies here
 * (chat, run, serve: the store's runs of that file, by fingerprint, so the
 * quantizations that share a name stay apart), on the CPU (device false)
 * or with the layers this machine's plan puts on the device; 0 when the
 * file is gone or changed, reads too little a token to calibrate, or has no
 * such runs. */
static double run_fraction(const struct advisor_machine *mc, struct store *store,
                           const char *path, const char *fp, bool device)
{
    char now[STORE_FINGERPRINT_SIZE], err[256];
    if (store_model_fingerprint(path, now, err, sizeof err) || strcmp(now, fp))
        return 0;
    struct advisor_machine full = *mc;
    full.cpu_eff = full.device_eff = 1;
    if (!device)
        full.device_budget = 0, full.device_gbs = 0, full.device_gflops = 0;
    struct advisor_estimate e;
    if (advisor_file_estimate(path, ADV_RUN_CTX, &full, NULL, &e, err, sizeof err) ||
        !e.plan.fits || (device && e.plan.n_gpu_layers <= 0) ||
        (json_int_t)(e.plan.host_token_bytes + e.plan.gpu_token_bytes) <
            ADV_CALIBRATION_MIN_BYTES)
        return 0;
    double bound = advisor_estimate_tg(&e, &full);
    struct store_speed sp;
    if (bound <= 0 || store_model_speed(store, fp, device ? "vulkan" : "cpu",
                                        device ? e.plan.n_gpu_layers : 0, 0, &sp, err,
                                        sizeof err) ||
        sp.n_runs == 0)
        return 0;
    return sp.gen_tps_median / bound;
}

/* Efficiencies from the recorded measurements: the median fraction of the
 * bound reached, per place (CPU-only runs; runs with device layers): the
 * `fit --check` and `bench --record` measurements, and the replies of the
 * model files used latest (run_fraction), one value per file and place. */
void advisor_calibrate(struct advisor_machine *mc, struct store *store)
{
    enum { CAP = ADV_RECORD_MAX + ADV_RUN_MODELS };
    json_t *a = records_load(store);
    double cpu[CAP], dev[CAP], pp[CAP];
    int nc = 0, nd = 0, np = 0;
    size_t i;
    json_t *r;
    json_array_foreach(a, i, r) {
        double tg = json_real_value(json_object_get(r, "tg_tps"));
        double bound = json_real_value(json_object_get(r, "bound_tps"));
        double ppt = json_real_value(json_object_get(r, "pp_tps"));
        double fl = json_real_value(json_object_get(r, "flops_per_token"));
        bool on_dev = json_integer_value(json_object_get(r, "n_gpu_layers")) > 0;
        /* a model of a few megabytes measures call overhead, not bandwidth */
        if (json_integer_value(json_object_get(r, "token_bytes")) < ADV_CALIBRATION_MIN_BYTES)
            continue;
        if (tg > 0 && bound > 0 && nc < ADV_RECORD_MAX && nd < ADV_RECORD_MAX) {
            if (on_dev)
                dev[nd++] = tg / bound;
            else
                cpu[nc++] = tg / bound;
        }
        if (!on_dev && ppt > 0 && fl > 0 && mc->cpu_gflops > 0 && np < ADV_RECORD_MAX)
            pp[np++] = ppt * fl / 1e9 / mc->cpu_gflops;
    }
    json_decref(a);
    int n_records = nc + nd, n_files = 0;
    struct run_models *rm = store ? calloc(1, sizeof *rm) : NULL;
    char err[256];
    if (rm && !store_model_list(store, ADV_RUN_MODELS, run_model_fn, rm, err, sizeof err)) {
        for (int k = 0; k < rm->n; k++) {
            double fc = run_fraction(mc, store, rm->path[k], rm->fp[k], false);
            double fd = mc->device_budget > 0 && mc->device_gbs > 0
                            ? run_fraction(mc, store, rm->path[k], rm->fp[k], true) : 0;
            if (fc > 0)
                cpu[nc++] = fc;
            if (fd > 0)
                dev[nd++] = fd;
            n_files += fc > 0 || fd > 0;
        }
    }
    free(rm);
    if (nc) {
        qsort(cpu, (size_t)nc, sizeof *cpu, cmp_double);
        mc->cpu_eff = cpu[nc / 2];
    }
    if (nd) {
        qsort(dev, (size_t)nd, sizeof *dev, cmp_double);
        mc->device_eff = dev[nd / 2];
    }
    if (np) {
        qsort(pp, (size_t)np, sizeof *pp, cmp_double);
        mc->pp_eff = pp[np / 2];
    }
    if (n_records && n_files)
        snprintf(mc->eff_source, sizeof mc->eff_source,
                 "calibrated from %d measurement%s and the replies of %d model file%s here",
                 n_records, n_records == 1 ? "" : "s", n_files, n_files == 1 ? "" : "s");
    else if (n_files)
        snprintf(mc->eff_source, sizeof mc->eff_source,
                 "calibrated from the replies of %d model file%s here", n_files,
                 n_files == 1 ? "" : "s");
    else if (n_records)
        snprintf(mc->eff_source, sizeof mc->eff_source, "calibrated from %d measurement%s here",
                 n_records, n_records == 1 ? "" : "s");
}

/* ---- the machine ---- */

/* Single-thread rate of the CPU kernel for type t, GFLOP/s (0: no kernel),
 * over nc activation columns; *stream_gbs gets the weight bytes per second. */
static double kernel_gflops(const struct cpu_kernels *k, enum quant_type t, int nc, double seconds,
                            double *stream_gbs)
{
    *stream_gbs = 0;
    const struct quant_traits *tr = quant_traits(t);
    if (!tr || !k->gemm[t])
        return 0;
    enum quant_type vt = tr->vec_dot_type;
    if (!k->quantize[vt])
        return 0;
    const int64_t n = 2048;
    const int nr = 256;   /* 2048 x 256 weights stay in the L2 cache: compute, not memory */
    size_t wrow = quant_row_bytes(t, n), xrow = quant_row_bytes(vt, n);
    if (!wrow || !xrow)
        return 0;
    uint8_t *w = malloc(wrow * nr), *x = malloc(xrow * nc);
    float *src = malloc((size_t)n * sizeof *src), *y = malloc((size_t)nr * nc * sizeof *y);
    double gf = 0;
    if (w && x && src && y) {
        /* 0x11 bytes: small normal f16 scales, so no kernel meets NaN or Inf */
        memset(w, 0x11, wrow * nr);
        for (int64_t i = 0; i < n; i++)
            src[i] = (float)((i * 37 % 101) - 50) / 64.0f;
        for (int c = 0; c < nc; c++)
            k->quantize[vt](src, x + (size_t)c * xrow, n);
        long reps = 0;
        double t0 = clock_now_s(), dt;
        do {
            k->gemm[t](n, nr, nc, w, wrow, x, xrow, y, (size_t)nr);
            reps++;
            dt = clock_now_s() - t0;
        } while (dt < seconds);
        gf = 2.0 * (double)n * nr * nc * (double)reps / dt / 1e9;
        *stream_gbs = (double)wrow * nr * (double)reps / dt / 1e9;
    }
    free(w);
    free(x);
    free(src);
    free(y);
    return gf;
}

static void probe_device(struct advisor_machine *mc, unsigned flags)
{
    if (flags & ADVISOR_PROBE_NO_DEVICE) {
        snprintf(mc->device_note, sizeof mc->device_note, "CPU only (--backend cpu)");
        return;
    }
    struct vk_device_desc d[8];
    int n = 0;
    char err[256] = "";
    if (vk_list_devices(d, 8, &n, err, sizeof err) || n <= 0) {
        snprintf(mc->device_note, sizeof mc->device_note, "no Vulkan device");
        return;
    }
    int pick = vk_default_device(d, n < 8 ? n : 8);
    if (pick < 0) {
        snprintf(mc->device_note, sizeof mc->device_note, "no Vulkan device");
        return;
    }
    if (!strcmp(d[pick].type, "cpu")) {
        snprintf(mc->device_note, sizeof mc->device_note,
                 "only a software Vulkan device (%.60s): not used, not measured", d[pick].name);
        return;
    }
    double gbs = 0;
    int rc = membw_vk_read(d[pick].index, (flags & ADVISOR_PROBE_QUICK) ? (64u << 20) : 0, 0,
                           &gbs, err, sizeof err);
    snprintf(mc->device, sizeof mc->device, "%s", d[pick].name);
    mc->device_budget = vk_device_budget(&d[pick]);
    if (rc) {
        snprintf(mc->device_note, sizeof mc->device_note, "bandwidth not measured: %.120s", err);
        return;
    }
    mc->device_gbs = gbs;
    /* no compute probe on the device yet: a stated rate, FLOPs per byte of
     * bandwidth typical of GPUs (about 30 for fp16 shaders without matrix cores) */
    mc->device_gflops = gbs * 30;
}

int advisor_machine_probe(struct advisor_machine *mc, unsigned flags, int n_threads,
                          struct store *store, char *err, size_t errlen)
{
    memset(mc, 0, sizeof *mc);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    mc->n_threads = n_threads > 0 ? n_threads : cores > 0 ? (int)cores : 1;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0)
        mc->host_bytes = (uint64_t)pages * (uint64_t)page;
    mc->host_budget = mc->host_bytes / 10 * 9;
    bool quick = flags & ADVISOR_PROBE_QUICK;
    int rc = membw_read(mc->n_threads, quick ? (size_t)256 << 20 : 0, quick ? 2 : 3,
                        &mc->host_gbs, err, errlen);
    if (rc)
        return rc;
    struct cpu_kernels k;
    cpu_select(&k, CPU_ISA_COUNT);
    snprintf(mc->isa, sizeof mc->isa, "%s", k.isa_name);
    static const enum quant_type types[] = {QUANT_TYPE_Q4_K, QUANT_TYPE_Q8_0, QUANT_TYPE_F16,
                                            QUANT_TYPE_Q6_K, QUANT_TYPE_Q5_K, QUANT_TYPE_Q3_K,
                                            QUANT_TYPE_Q2_K};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        double gbs;
        mc->cpu_gflops_type[types[i]] =
            kernel_gflops(&k, types[i], 32, quick ? 0.005 : 0.02, &gbs) * mc->n_threads;
        kernel_gflops(&k, types[i], 1, quick ? 0.005 : 0.02, &gbs);
        mc->cpu_stream_gbs[types[i]] = gbs * mc->n_threads;
    }
    mc->cpu_gflops = mc->cpu_gflops_type[QUANT_TYPE_Q4_K];
    probe_device(mc, flags);
    mc->cpu_eff = ADVISOR_DEFAULT_CPU_EFF;
    mc->device_eff = ADVISOR_DEFAULT_DEVICE_EFF;
    mc->pp_eff = ADVISOR_DEFAULT_PP_EFF;
    snprintf(mc->eff_source, sizeof mc->eff_source, "default efficiency (no measurements here)");
    if (store && !(flags & ADVISOR_PROBE_NO_CALIBRATION))
        advisor_calibrate(mc, store);
    return 0;
}

/* ---- estimates ---- */

static void estimate_from_counts(const struct counts *c, uint64_t kv_per_token_layer,
                                 uint64_t floats_per_token, int n_head, int n_ctx,
                                 const struct advisor_machine *mc, struct advisor_estimate *e)
{
    struct plan_model pm = {
        .n_layer = c->n_layer, .layer_bytes = c->layer, .expert_bytes = c->expert,
        .n_expert = c->n_expert, .n_expert_used = c->n_expert_used,
        .kv_bytes_per_token = kv_per_token_layer, .embd_bytes = c->embd,
        .embd_row_bytes = c->embd_row, .output_bytes = c->output,
    };
    int batch = n_ctx < ADV_N_BATCH ? n_ctx : ADV_N_BATCH;
    /* activations of a batch, attention scores of 16 query rows, staging */
    pm.scratch_bytes = (uint64_t)batch * floats_per_token * 4 +
                       (uint64_t)n_head * (uint64_t)n_ctx * 4 * 16 + ((uint64_t)32 << 20);
    struct plan_request r = {.n_ctx = n_ctx, .device_budget = mc->device_budget,
                             .host_budget = mc->host_budget, .n_gpu_layers = -1};
    plan_make(&pm, &r, &e->plan);
    e->n_ctx = n_ctx;
    e->n_params = (uint64_t)c->params;
    e->kv_bytes_per_token = kv_per_token_layer * (uint64_t)c->n_layer;
    e->mem_bytes = e->plan.gpu_bytes + e->plan.host_bytes;
    double used = c->n_expert > 0 ? (double)c->n_expert_used / c->n_expert : 0;
    e->flops_per_token = 2 * (c->dense_params + c->expert_params * used);
    e->host_compute_s_per_byte = compute_s_per_byte(mc, c);
    e->tg_pred = e->tg_tps = advisor_estimate_tg(e, mc);
    e->pp_pred = e->pp_tps = pp_tps(&e->plan, mc, c, e->flops_per_token);
}

static enum mix mix_of(const char *quant)
{
    for (int i = 0; i < N_MIXES; i++)
        if (!strcmp(mixes[i].name, quant))
            return (enum mix)i;
    return (enum mix)-1;
}

int advisor_shape_estimate(const struct advisor_shape *s, const char *quant, int n_ctx,
                           const struct advisor_machine *mc, struct store *store,
                           struct advisor_estimate *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    bool listed = false;
    for (const char *const *q = s->quants; *q; q++)
        listed |= !strcmp(*q, quant);
    int mx = (int)mix_of(quant);
    if (!listed || mx < 0)
        return err_set(err, errlen, EINVAL, "%s does not come in %s", s->name, quant);
    if (s->n_layer > ADV_MAX_LAYERS || n_ctx < 1)
        return err_set(err, errlen, EINVAL, "%s: bad shape or context", s->name);
    struct counts *c = malloc(sizeof *c);
    if (!c)
        return err_set(err, errlen, ENOMEM, "out of memory");
    shape_counts(s, (enum mix)mx, c);
    snprintf(out->name, sizeof out->name, "%s", s->name);
    snprintf(out->arch, sizeof out->arch, "%s", s->arch);
    snprintf(out->type, sizeof out->type, "%s", quant);
    out->n_layer = s->n_layer;
    out->n_embd = s->n_embd;
    out->file_bytes = c->tensor_bytes + (uint64_t)s->n_vocab * ADV_META_PER_TOKEN;
    uint64_t kv, per_tok;
    if (s->n_expert > 0) {
        kv = (uint64_t)(s->kv_lora + s->qk_rope) * 2;   /* the latent cache, f16 */
        per_tok = 3 * (uint64_t)s->n_embd +
                  3 * (uint64_t)s->n_head * (uint64_t)(s->qk_nope + s->qk_rope) +
                  (uint64_t)s->kv_lora + 2 * (uint64_t)s->expert_ff * s->n_expert_used +
                  (uint64_t)s->n_expert + (uint64_t)s->n_vocab;
    } else {
        uint64_t hd = (uint64_t)s->n_embd / s->n_head;
        kv = 2 * (uint64_t)s->n_head_kv * hd * 2;
        per_tok = 3 * (uint64_t)s->n_embd + 3 * (uint64_t)s->n_head * hd +
                  2 * (uint64_t)s->n_head_kv * hd + 2 * (uint64_t)s->n_ff + (uint64_t)s->n_vocab;
    }
    estimate_from_counts(c, kv, per_tok, s->n_head, n_ctx, mc, out);
    free(c);
    apply_measured(store, NULL, out);
    return 0;
}

static int64_t kv_int(const struct gguf *g, const char *arch, const char *key, int64_t dflt)
{
    char k[128], err[128];
    int64_t v;
    snprintf(k, sizeof k, "%s.%s", arch, key);
    return gguf_get_int(g, k, &v, err, sizeof err) ? dflt : v;
}

/* The llama_ftype names general.file_type carries. */
static const char *ftype_name(int64_t ft)
{
    static const struct {
        int code;
        const char *name;
    } t[] = {{0, "F32"},     {1, "F16"},     {2, "Q4_0"},    {3, "Q4_1"},    {7, "Q8_0"},
             {8, "Q5_0"},    {9, "Q5_1"},    {10, "Q2_K"},   {11, "Q3_K_S"}, {12, "Q3_K_M"},
             {13, "Q3_K_L"}, {14, "Q4_K_S"}, {15, "Q4_K_M"}, {16, "Q5_K_S"}, {17, "Q5_K_M"},
             {18, "Q6_K"},   {19, "IQ2_XXS"}, {24, "IQ1_S"}, {32, "BF16"}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (t[i].code == ft)
            return t[i].name;
    return "?";
}

int advisor_file_estimate(const char *path, int n_ctx, const struct advisor_machine *mc,
                          struct store *store, struct advisor_estimate *out, char *err,
                          size_t errlen)
{
    memset(out, 0, sizeof *out);
    struct gguf *g = NULL;
    struct counts *c = NULL;
    int rc = gguf_open(path, &g, err, errlen);
    if (rc)
        return rc;
    struct gguf_str gs;
    char e2[128];
    if (gguf_get_str(g, "general.architecture", &gs, err, errlen)) {
        rc = EBADMSG;
        goto out;
    }
    snprintf(out->arch, sizeof out->arch, "%.*s", (int)(gs.len < 31 ? gs.len : 31), gs.ptr);
    if (!gguf_get_str(g, "general.name", &gs, e2, sizeof e2))
        snprintf(out->name, sizeof out->name, "%.*s", (int)(gs.len < 127 ? gs.len : 127),
                 gs.ptr);
    else {
        const char *b = strrchr(path, '/');
        snprintf(out->name, sizeof out->name, "%s", b ? b + 1 : path);
    }
    int64_t ft;
    snprintf(out->type, sizeof out->type, "%s",
             gguf_get_int(g, "general.file_type", &ft, e2, sizeof e2) ? "?" : ftype_name(ft));
    const char *a = out->arch;
    int64_t n_layer = kv_int(g, a, "block_count", 0), n_embd = kv_int(g, a, "embedding_length", 0);
    int64_t n_head = kv_int(g, a, "attention.head_count", 1);
    int64_t n_kv = kv_int(g, a, "attention.head_count_kv", n_head);
    int64_t n_ff = kv_int(g, a, "feed_forward_length", 0);
    if (n_layer < 1 || n_layer > ADV_MAX_LAYERS || n_embd < 1 || n_head < 1 || n_kv < 1) {
        rc = err_set(err, errlen, ENOTSUP, "%s: no layer count, width or heads the advisor knows",
                  path);
        goto out;
    }
    if (!(c = calloc(1, sizeof *c))) {
        rc = err_set(err, errlen, ENOMEM, "out of memory");
        goto out;
    }
    c->n_layer = (int)n_layer;
    c->n_expert = (int)kv_int(g, a, "expert_count", 0);
    c->n_expert_used = (int)kv_int(g, a, "expert_used_count", 0);
    int64_t n_vocab = 0;
    bool has_output = gguf_find_tensor(g, "output.weight") != NULL;
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const struct gguf_tensor *t = gguf_tensor(g, i);
        double n = (double)t->n_elements;
        int layer = -1;
        enum part p = P_OUTPUT;
        if (!strcmp(t->name, "token_embd.weight")) {
            p = P_EMBD;
            n_vocab = t->ne[1];
        } else if (sscanf(t->name, "blk.%d.", &layer) == 1) {
            p = strstr(t->name, "_exps") ? P_EXPERT : P_LAYER;
        }
        count_add(c, p, layer, (int)t->type, t->size, n, p == P_EMBD ? t->ne[0] : 0);
        if (p == P_EMBD && !has_output) {       /* tied: the head reads the embedding */
            c->output += t->size;
            c->dense_params += n;
        }
    }
    out->n_layer = (int)n_layer;
    out->n_embd = (int)n_embd;
    out->file_bytes = gguf_file_size(g);
    uint64_t kv, per_tok;
    int64_t kv_lora = kv_int(g, a, "attention.kv_lora_rank", 0);
    if (kv_lora > 0) {
        int64_t rope = kv_int(g, a, "rope.dimension_count", 64);
        kv = (uint64_t)(kv_lora + rope) * 2;
        int64_t dk = kv_int(g, a, "attention.key_length", 192);
        int64_t dv = kv_int(g, a, "attention.value_length", 128);
        for (int l = 0; dk > rope && dv > 0 && l < c->n_layer; l++)
            c->layer[l] += absorbed_bytes(n_head, kv_lora, dk - rope, dv);
        per_tok = 3 * (uint64_t)n_embd + 3 * (uint64_t)n_head * 192 + (uint64_t)kv_lora +
                  (uint64_t)n_vocab;
    } else {
        int64_t hd = kv_int(g, a, "attention.key_length", n_embd / n_head);
        kv = 2 * (uint64_t)n_kv * (uint64_t)hd * 2;
        per_tok = 3 * (uint64_t)n_embd + 3 * (uint64_t)(n_head * hd) + 2 * (uint64_t)(n_kv * hd) +
                  2 * (uint64_t)n_ff + (uint64_t)n_vocab;
    }
    estimate_from_counts(c, kv, per_tok, (int)n_head, n_ctx, mc, out);
    char fp[STORE_FINGERPRINT_SIZE];
    if (store && !store_model_fingerprint(path, fp, e2, sizeof e2))
        apply_measured(store, fp, out);
out:
    free(c);
    gguf_close(g);
    return rc;
}

/* ---- the bench loop `ponder bench` and `ponder fit --check` share ---- */

int advisor_bench_once(struct model *m, const int32_t *ids, int n, bool pp, double *tps,
                       char *err, size_t errlen)
{
    model_clear(m);
    int rc = 0;
    double t0 = clock_now_s();
    if (pp)
        rc = model_decode(m, ids, n, NULL, false, err, errlen);
    else
        for (int i = 0; i < n && !rc; i++)
            rc = model_decode(m, ids + i, 1, NULL, false, err, errlen);
    double dt = clock_now_s() - t0;
    *tps = n / (dt > 0 ? dt : 1e-9);
    return rc;
}

/* ---- the model files here ---- */

struct paths {
    char **v;
    size_t n, cap;
};

static int paths_add(struct paths *p, const char *path)
{
    for (size_t i = 0; i < p->n; i++)
        if (!strcmp(p->v[i], path))
            return 0;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        char **v = realloc(p->v, cap * sizeof *v);
        if (!v)
            return ENOMEM;
        p->v = v;
        p->cap = cap;
    }
    if (!(p->v[p->n] = strdup(path)))
        return ENOMEM;
    p->n++;
    return 0;
}

static int scan_dir(struct paths *p, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int rc = 0;
    struct dirent *de;
    while (!rc && (de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 6 || strcmp(de->d_name + len - 5, ".gguf") || de->d_name[0] == '.')
            continue;
        char path[4096];
        int n = snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (n > 0 && (size_t)n < sizeof path)
            rc = paths_add(p, path);
    }
    closedir(d);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int advisor_find_models(const char *model_dirs, char ***paths, size_t *n)
{
    struct paths p = {0};
    char dir[4096];
    const char *x = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    int rc = 0;
    if (x && *x)
        snprintf(dir, sizeof dir, "%s/ponder/models", x);
    else if (home && *home)
        snprintf(dir, sizeof dir, "%s/.local/share/ponder/models", home);
    else
        dir[0] = 0;
    if (dir[0])
        rc = scan_dir(&p, dir);
    for (const char *cur = model_dirs; !rc && cur && config_next_dir(&cur, dir, sizeof dir);)
        rc = scan_dir(&p, dir);
    if (rc) {
        advisor_models_free(p.v, p.n);
        *paths = NULL;
        *n = 0;
        return rc;
    }
    if (p.n)
        qsort(p.v, p.n, sizeof *p.v, cmp_str);
    *paths = p.v;
    *n = p.n;
    return 0;
}

void advisor_models_free(char **paths, size_t n)
{
    for (size_t i = 0; paths && i < n; i++)
        free(paths[i]);
    free(paths);
}

int advisor_open_store(const char *db, struct store **out, char *err, size_t errlen)
{
    char path[4096];
    *out = NULL;
    if (!db) {
        int rc = store_default_path(getenv("XDG_DATA_HOME"), getenv("HOME"), path, sizeof path,
                                    err, errlen);
        if (rc)
            return rc;
        db = path;
    }
    return store_open(db, STORE_CREATE, out, err, errlen);
}
