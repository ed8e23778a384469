/* plan: the memory plan places layers, experts and the output head by the
 * rules plan.h states, and counts the bytes each place holds and reads. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "tests/fixture.h"
#include "infer/plan.h"

#define NL 4

/* A dense model: 4 layers of 100 bytes, KV 1 byte per token per layer,
 * embedding 50 (row 5), output 40, scratch 10. */
static const uint64_t dense_layers[NL] = {100, 100, 100, 100};
static const struct plan_model dense = {
    .n_layer = NL, .layer_bytes = dense_layers, .kv_bytes_per_token = 1,
    .embd_bytes = 50, .embd_row_bytes = 5, .output_bytes = 40, .scratch_bytes = 10,
};

/* A mixture of experts: layer 0 dense (100), layers 1-3 with 100 of
 * attention and 800 of routed experts, 8 experts, 2 used per token. */
static const uint64_t moe_layers[NL] = {100, 100, 100, 100};
static const uint64_t moe_experts[NL] = {0, 800, 800, 800};
static const struct plan_model moe = {
    .n_layer = NL, .layer_bytes = moe_layers, .expert_bytes = moe_experts, .n_expert = 8,
    .n_expert_used = 2, .kv_bytes_per_token = 1, .embd_bytes = 50, .embd_row_bytes = 5,
    .output_bytes = 40, .scratch_bytes = 10,
};

static void plan_places_by_the_rules(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        const struct plan_model *m;
        struct plan_request r;
        int ngl;
        bool output_on_gpu, experts_on_cpu, fits;
        uint64_t gpu_bytes, host_bytes, gpu_token, host_token;
        const char *where;
    } cases[] = {
        /* no device: everything on the host: 50 + 4*(100+10) + 40 + 10 */
        {"no device", &dense, {.n_ctx = 10, .n_gpu_layers = -1}, 0, false, false, true, 0, 540, 0,
         5 + 400 + 40, "CPU only"},
        /* 10 + 4*110 + 40 = 490 fits 500 */
        {"all fits", &dense, {.n_ctx = 10, .device_budget = 500, .n_gpu_layers = -1}, 4, true,
         false, true, 490, 60, 440, 5, "all on the device"},
        /* 10 + 2*110 = 230 <= 300 < 340 */
        {"partial layers", &dense, {.n_ctx = 10, .device_budget = 300, .n_gpu_layers = -1}, 2,
         false, false, true, 230, 50 + 10 + 220 + 40, 200, 5 + 200 + 40,
         "2 of 4 layers on the device"},
        /* every layer fits (450) but not the head (490): the last layer stays */
        {"output left on the CPU", &dense,
         {.n_ctx = 10, .device_budget = 470, .n_gpu_layers = -1}, 3, false, false, true, 340,
         50 + 10 + 110 + 40, 300, 5 + 100 + 40, "3 of 4 layers on the device"},
        /* forced 3 layers on a device too small for one */
        {"forced --ngl", &dense, {.n_ctx = 10, .device_budget = 20, .n_gpu_layers = 3}, 3, false,
         false, true, 340, 50 + 10 + 110 + 40, 300, 145, "3 of 4 layers on the device"},
        {"--ngl 0", &dense, {.n_ctx = 10, .device_budget = 5000, .n_gpu_layers = 0}, 0, false,
         false, true, 0, 540, 0, 445, "CPU only"},
        {"no layer fits", &dense, {.n_ctx = 10, .device_budget = 100, .n_gpu_layers = -1}, 0,
         false, false, true, 0, 540, 0, 445, "CPU only"},
        {"host budget too small", &dense,
         {.n_ctx = 10, .host_budget = 539, .n_gpu_layers = -1}, 0, false, false, false, 0, 540, 0,
         445, "does not fit"},
        {"host budget just enough", &dense,
         {.n_ctx = 10, .host_budget = 540, .n_gpu_layers = -1}, 0, false, false, true, 0, 540, 0,
         445, "CPU only"},
        /* MoE, all fits: 10 + 110 + 3*910 + 40 = 2890; a token reads
         * 100 + 3*(100 + 200) + 40 */
        {"moe all on the device", &moe,
         {.n_ctx = 10, .device_budget = 3000, .n_gpu_layers = -1}, 4, true, false, true, 2890,
         60, 1040, 5, "all on the device"},
        /* MoE, 1000 on the device: attention + KV of all (10 + 440) + head
         * (40) fit; the 2400 of experts go to RAM */
        {"experts in RAM", &moe, {.n_ctx = 10, .device_budget = 1000, .n_gpu_layers = -1}, 4,
         true, true, true, 490, 50 + 10 + 2400, 440, 5 + 600, "experts in RAM"},
        /* experts in RAM, but the head does not fit beside the layers */
        {"experts in RAM, head on the CPU", &moe,
         {.n_ctx = 10, .device_budget = 460, .n_gpu_layers = -1}, 4, false, true, true, 450,
         50 + 10 + 2400 + 40, 400, 5 + 600 + 40, "experts in RAM"},
        /* PLAN_LAYERS: a plain split, 10 + 110 + 910 = 1030 > 1000 */
        {"moe forced layer split", &moe,
         {.n_ctx = 10, .device_budget = 1000, .n_gpu_layers = -1, .placement = PLAN_LAYERS}, 1,
         false, false, true, 120, 50 + 10 + 3 * 910 + 40, 100, 5 + 3 * 300 + 40,
         "1 of 4 layers on the device"},
        /* PLAN_EXPERTS_CPU even though everything would fit */
        {"moe forced experts in RAM", &moe,
         {.n_ctx = 10, .device_budget = 5000, .n_gpu_layers = -1, .placement = PLAN_EXPERTS_CPU},
         4, true, true, true, 490, 2460, 440, 605, "experts in RAM"},
        /* experts in RAM with too little host memory */
        {"experts in RAM, host too small", &moe,
         {.n_ctx = 10, .device_budget = 1000, .host_budget = 1000, .n_gpu_layers = -1}, 4, true,
         true, false, 490, 2460, 440, 605, "does not fit"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct plan p;
        int rc = plan_make(cases[i].m, &cases[i].r, &p);
        if (rc)
            fail_msg("%s: rc %d", cases[i].name, rc);
        if (p.n_gpu_layers != cases[i].ngl || p.output_on_gpu != cases[i].output_on_gpu ||
            p.experts_on_cpu != cases[i].experts_on_cpu || p.fits != cases[i].fits)
            fail_msg("%s: ngl %d output %d experts_cpu %d fits %d", cases[i].name, p.n_gpu_layers,
                     p.output_on_gpu, p.experts_on_cpu, p.fits);
        if (p.gpu_bytes != cases[i].gpu_bytes || p.host_bytes != cases[i].host_bytes)
            fail_msg("%s: gpu %llu host %llu bytes, want %llu %llu", cases[i].name,
                     (unsigned long long)p.gpu_bytes, (unsigned long long)p.host_bytes,
                     (unsigned long long)cases[i].gpu_bytes,
                     (unsigned long long)cases[i].host_bytes);
        if (p.gpu_token_bytes != cases[i].gpu_token || p.host_token_bytes != cases[i].host_token)
            fail_msg("%s: token reads gpu %llu host %llu, want %llu %llu", cases[i].name,
                     (unsigned long long)p.gpu_token_bytes, (unsigned long long)p.host_token_bytes,
                     (unsigned long long)cases[i].gpu_token,
                     (unsigned long long)cases[i].host_token);
        if (strcmp(p.where, cases[i].where))
            fail_msg("%s: where \"%s\", want \"%s\"", cases[i].name, p.where, cases[i].where);
        assert_int_equal(p.kv_bytes, 40);
        assert_int_equal(p.n_layer, NL);
    }
}

static void plan_kv_cache_grows_with_the_context(void **state)
{
    (void)state;
    struct plan p;
    struct plan_request r = {.n_ctx = 4096, .n_gpu_layers = -1};
    struct plan_model m = dense;
    m.kv_bytes_per_token = 1024;
    assert_int_equal(plan_make(&m, &r, &p), 0);
    assert_int_equal(p.kv_bytes, 4ull * 4096 * 1024);
    assert_int_equal(p.host_bytes, 50 + 400 + 40 + 10 + 4ull * 4096 * 1024);
}

static void plan_rejects_a_model_without_layers(void **state)
{
    (void)state;
    struct plan p;
    struct plan_request r = {.n_ctx = 16, .n_gpu_layers = -1};
    struct plan_model m = dense;
    m.n_layer = 0;
    assert_int_equal(plan_make(&m, &r, &p), EINVAL);
}

static void plan_saturates_instead_of_wrapping(void **state)
{
    (void)state;
    static const uint64_t huge[2] = {UINT64_MAX / 2, UINT64_MAX / 2};
    struct plan_model m = {.n_layer = 2, .layer_bytes = huge, .kv_bytes_per_token = UINT64_MAX};
    struct plan_request r = {.n_ctx = 2, .host_budget = UINT64_MAX - 1, .n_gpu_layers = -1};
    struct plan p;
    assert_int_equal(plan_make(&m, &r, &p), 0);
    assert_true(p.host_bytes == UINT64_MAX);
    assert_false(p.fits);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plan_places_by_the_rules),
        cmocka_unit_test(plan_kv_cache_grows_with_the_context),
        cmocka_unit_test(plan_rejects_a_model_without_layers),
        cmocka_unit_test(plan_saturates_instead_of_wrapping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
