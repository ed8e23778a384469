/* advisor: file sizes of the published R1 shapes by llama-quantize's type
 * rules, their placement on a given machine, and the speed formula; no
 * probe runs (the machine is made up), so the numbers are exact. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tests/fixture.h"
#include "tests/fx_gguf.h"
#include "app/advisor.h"
#include "history/store.h"

static const struct advisor_shape *shape_named(const char *name)
{
    for (int i = 0; i < advisor_n_shapes(); i++)
        if (!strcmp(advisor_shape(i)->name, name))
            return advisor_shape(i);
    fail_msg("no shape %s", name);
    return NULL;
}

/* A CPU-only machine with 64 GB and 50 GB/s. */
static struct advisor_machine cpu_machine(void)
{
    struct advisor_machine mc;
    memset(&mc, 0, sizeof mc);
    mc.n_threads = 8;
    mc.host_bytes = 64000000000ull;
    mc.host_budget = 57600000000ull;
    mc.host_gbs = 50;
    mc.cpu_gflops = 500;
    mc.cpu_eff = 0.5;
    mc.pp_eff = 0.5;
    return mc;
}

static void advisor_sizes_match_the_published_files(void **state)
{
    (void)state;
    static const struct {
        const char *model, *quant;
        double gb;       /* the file llama-quantize makes, GB (1e9) */
    } cases[] = {
        {"R1-Distill-Qwen-1.5B", "Q8_0", 1.89},   {"R1-Distill-Qwen-1.5B", "Q4_K_M", 1.12},
        {"R1-Distill-Qwen-1.5B", "F16", 3.56},    {"R1-Distill-Qwen-7B", "Q4_K_M", 4.68},
        {"R1-Distill-Llama-8B", "Q4_K_M", 4.92},  {"R1-Distill-Qwen-14B", "Q4_K_M", 8.99},
        {"R1-Distill-Qwen-32B", "Q4_K_M", 19.85}, {"R1-Distill-Llama-70B", "Q4_K_M", 42.52},
        {"DeepSeek-R1-671B", "Q4_K_M", 404},
    };
    struct advisor_machine mc = cpu_machine();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct advisor_estimate e;
        char err[256] = "";
        int rc = advisor_shape_estimate(shape_named(cases[i].model), cases[i].quant, 4096, &mc,
                                        NULL, &e, err, sizeof err);
        if (rc)
            fail_msg("%s %s: %s", cases[i].model, cases[i].quant, err);
        double gb = (double)e.file_bytes / 1e9;
        if (gb < cases[i].gb * 0.97 || gb > cases[i].gb * 1.03)
            fail_msg("%s %s: %.3f GB, want %.2f GB +- 3 %%", cases[i].model, cases[i].quant, gb,
                     cases[i].gb);
    }
}

static void advisor_sizes_grow_with_the_bits(void **state)
{
    (void)state;
    struct advisor_machine mc = cpu_machine();
    for (int i = 0; i < advisor_n_shapes(); i++) {
        const struct advisor_shape *s = advisor_shape(i);
        uint64_t last = 0;
        for (const char *const *q = s->quants; *q; q++) {
            struct advisor_estimate e;
            char err[256];
            assert_int_equal(advisor_shape_estimate(s, *q, 4096, &mc, NULL, &e, err, sizeof err),
                             0);
            if (e.file_bytes <= last)
                fail_msg("%s: %s is not larger than the quantization before it", s->name, *q);
            last = e.file_bytes;
        }
    }
}

static void advisor_places_and_predicts(void **state)
{
    (void)state;
    struct advisor_machine mc = cpu_machine();
    struct advisor_estimate e;
    char err[256];
    /* 1.5B Q8_0 on the CPU: a token reads all but the embedding */
    assert_int_equal(advisor_shape_estimate(shape_named("R1-Distill-Qwen-1.5B"), "Q8_0", 4096, &mc,
                                            NULL, &e, err, sizeof err),
                     0);
    assert_string_equal(e.plan.where, "CPU only");
    assert_true(e.plan.fits);
    assert_int_equal(e.kv_bytes_per_token, 28 * 2 * 2 * 128 * 2);
    assert_true(e.mem_bytes > e.file_bytes);
    assert_close(e.tg_tps, 50e9 * 0.5 / (double)e.plan.host_token_bytes, 1e-9);
    assert_close(e.tg_tps, e.tg_pred, 0);
    assert_false(e.measured);
    /* the 671B does not fit in 64 GB */
    assert_int_equal(advisor_shape_estimate(shape_named("DeepSeek-R1-671B"), "Q4_K_M", 4096, &mc,
                                            NULL, &e, err, sizeof err),
                     0);
    assert_string_equal(e.plan.where, "does not fit");
    assert_close(e.tg_tps, 0, 0);
    /* ... but its experts go to RAM beside an 80 GB device and 512 GB of RAM */
    mc.host_budget = 460000000000ull;
    mc.device_budget = 80000000000ull;
    mc.device_gbs = 3000;
    mc.device_eff = 0.5;
    assert_int_equal(advisor_shape_estimate(shape_named("DeepSeek-R1-671B"), "Q4_K_M", 4096, &mc,
                                            NULL, &e, err, sizeof err),
                     0);
    assert_string_equal(e.plan.where, "experts in RAM");
    assert_true(e.plan.gpu_token_bytes > 0 && e.plan.host_token_bytes > e.plan.gpu_token_bytes / 2);
    double t = (double)e.plan.host_token_bytes / (50e9 * 0.5) +
               (double)e.plan.gpu_token_bytes / (3000e9 * 0.5);
    assert_close(e.tg_tps, 1 / t, 1e-9);
    /* and a 32B at Q4_K_M sits wholly on the device */
    assert_int_equal(advisor_shape_estimate(shape_named("R1-Distill-Qwen-32B"), "Q4_K_M", 4096,
                                            &mc, NULL, &e, err, sizeof err),
                     0);
    assert_string_equal(e.plan.where, "all on the device");
}

static void advisor_rejects_a_quantization_a_model_lacks(void **state)
{
    (void)state;
    struct advisor_machine mc = cpu_machine();
    struct advisor_estimate e;
    char err[256] = "";
    assert_int_equal(advisor_shape_estimate(shape_named("R1-Distill-Qwen-7B"), "IQ1_S", 4096, &mc,
                                            NULL, &e, err, sizeof err),
                     EINVAL);
    assert_non_null(strstr(err, "IQ1_S"));
    assert_int_equal(advisor_shape_estimate(shape_named("R1-Distill-Qwen-7B"), "Q4_0", 4096, &mc,
                                            NULL, &e, err, sizeof err),
                     EINVAL);
}

static void advisor_reads_a_model_file(void **state)
{
    (void)state;
    struct advisor_machine mc = cpu_machine();
    struct advisor_estimate e;
    char err[256] = "";
    int rc = advisor_file_estimate(fx_path("models/tq-q8_0.gguf"), 256, &mc, NULL, &e, err,
                                   sizeof err);
    if (rc)
        fail_msg("%s", err);
    assert_string_equal(e.arch, "qwen2");
    assert_int_equal(e.n_layer, 2);
    assert_true(e.n_params > 0 && e.file_bytes > 0);
    assert_string_equal(e.plan.where, "CPU only");
    assert_true(e.tg_tps > 0);
    assert_int_equal(advisor_file_estimate("/nonexistent.gguf", 256, &mc, NULL, &e, err,
                                           sizeof err),
                     ENOENT);
}

static void advisor_reads_a_mixture_of_experts(void **state)
{
    (void)state;
    struct advisor_machine mc = cpu_machine();
    struct advisor_estimate all, some;
    char err[256] = "";
    mc.device_budget = 1ull << 40;
    mc.device_gbs = 1000;
    mc.device_eff = 0.5;
    int rc = advisor_file_estimate(fx_path("models/td-q8_0.gguf"), 64, &mc, NULL, &all, err,
                                   sizeof err);
    if (rc)
        fail_msg("%s", err);
    assert_string_equal(all.arch, "deepseek2");
    assert_string_equal(all.plan.where, "all on the device");
    /* less device memory: before any layer has to leave, the routed experts
     * move to RAM (a budget that holds every layer but not the head keeps
     * model.c's rule: the last layer stays with the head) */
    bool moved = false;
    uint64_t step = all.plan.gpu_bytes / 4000 + 1;
    for (uint64_t b = all.plan.gpu_bytes - 1; b > step && !moved; b -= step) {
        mc.device_budget = b;
        assert_int_equal(advisor_file_estimate(fx_path("models/td-q8_0.gguf"), 64, &mc, NULL,
                                               &some, err, sizeof err),
                         0);
        moved = !strcmp(some.plan.where, "experts in RAM");
        if (!moved && strstr(some.plan.where, "layers") &&
            some.plan.n_gpu_layers < some.plan.n_layer - 1)
            fail_msg("layers left the device before the experts: %s", some.plan.where);
    }
    assert_true(moved);
    assert_true(some.plan.host_token_bytes > all.plan.host_token_bytes);
    assert_int_equal(some.plan.gpu_token_bytes + some.plan.host_token_bytes,
                     all.plan.gpu_token_bytes + all.plan.host_token_bytes);
}

/* A qwen2 file that reads about 134 MB a token (2 layers of F16 2048 x 8192
 * ffn_up and ffn_down, and the tied head), written sparse: its weights are
 * holes that cost no disk.  file_type makes files of one name differ. */
static void write_big_model(const char *path, const char *name, uint32_t file_type)
{
    struct fx_gguf *w = fx_gguf_new(3);
    assert_non_null(w);
    int rc = fx_gguf_kv_str(w, "general.architecture", "qwen2");
    rc |= fx_gguf_kv_str(w, "general.name", name);
    rc |= fx_gguf_kv_u32(w, "general.file_type", file_type);
    rc |= fx_gguf_kv_u32(w, "qwen2.block_count", 2);
    rc |= fx_gguf_kv_u32(w, "qwen2.embedding_length", 2048);
    rc |= fx_gguf_kv_u32(w, "qwen2.attention.head_count", 16);
    rc |= fx_gguf_kv_u32(w, "qwen2.attention.head_count_kv", 2);
    rc |= fx_gguf_kv_u32(w, "qwen2.feed_forward_length", 8192);
    const int64_t embd[2] = {2048, 1024}, up[2] = {2048, 8192}, down[2] = {8192, 2048};
    rc |= fx_gguf_tensor(w, "token_embd.weight", QUANT_TYPE_F16, 2, embd, NULL);
    for (int l = 0; l < 2; l++) {
        char name_up[32], name_down[32];
        snprintf(name_up, sizeof name_up, "blk.%d.ffn_up.weight", l);
        snprintf(name_down, sizeof name_down, "blk.%d.ffn_down.weight", l);
        rc |= fx_gguf_tensor(w, name_up, QUANT_TYPE_F16, 2, up, NULL);
        rc |= fx_gguf_tensor(w, name_down, QUANT_TYPE_F16, 2, down, NULL);
    }
    assert_int_equal(rc, 0);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fx_gguf_write_header(w, f), 0);
    for (int64_t i = 0; i < 5; i++) {
        size_t n = fx_gguf_tensor_size(w, i);
        assert_int_equal(fseeko(f, (off_t)n, SEEK_CUR), 0);
        assert_int_equal(fx_gguf_write_pad(w, f, n), 0);
    }
    assert_int_equal(fflush(f), 0);
    assert_int_equal(ftruncate(fileno(f), ftello(f)), 0);
    fclose(f);
    fx_gguf_free(w);
}

/* Records a model file (fp NULL: its own fingerprint) under name and runs
 * of it at each of the n speeds, ntok tokens each; returns the fingerprint used. */
static void add_runs(struct store *st, const char *path, const char *name, const char *fp,
                     const char *backend, const double *tps, int n, int ntok)
{
    char err[256], own[STORE_FINGERPRINT_SIZE];
    if (!fp) {
        if (store_model_fingerprint(path, own, err, sizeof err))
            fail_msg("%s", err);
        fp = own;
    }
    struct store_model m = {.path = path, .name = name, .arch = "qwen2", .fingerprint = fp};
    int64_t id = 0;
    if (store_model_use(st, &m, &id, err, sizeof err))
        fail_msg("%s", err);
    for (int i = 0; i < n; i++) {
        struct store_run r = {.model_id = id, .backend = backend, .n_threads = 8,
                              .answer_tokens = ntok, .gen_tps = tps[i]};
        if (store_run_add(st, &r, NULL, err, sizeof err))
            fail_msg("%s", err);
    }
}

static void advisor_calibrates_from_the_replies_of_one_model_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/ponder-advisor-XXXXXX", big[64], other[64], db[64], err[256];
    assert_non_null(mkdtemp(dir));
    snprintf(big, sizeof big, "%s/big-f16.gguf", dir);
    snprintf(other, sizeof other, "%s/big-q8_0.gguf", dir);
    snprintf(db, sizeof db, "%s/ponder.db", dir);
    write_big_model(big, "Big", 1);
    write_big_model(other, "Big", 7);
    struct store *st = NULL;
    if (store_open(db, STORE_CREATE, &st, err, sizeof err))
        fail_msg("%s", err);

    /* no runs: nothing changes */
    struct advisor_machine mc = cpu_machine();
    snprintf(mc.eff_source, sizeof mc.eff_source, "default");
    advisor_calibrate(&mc, st);
    assert_close(mc.cpu_eff, 0.5, 0);
    assert_string_equal(mc.eff_source, "default");

    /* replies of the F16 file on the CPU; a short one does not count, nor do
     * its device runs */
    static const double f16[] = {10, 12, 14}, burst[] = {500}, gpu[] = {90};
    add_runs(st, big, "Big", NULL, "cpu", f16, 3, 100);
    add_runs(st, big, "Big", NULL, "cpu", burst, 1, 3);
    add_runs(st, big, "Big", NULL, "vulkan", gpu, 1, 100);
    /* the same name, other files: slow runs of a tiny quantization (too few
     * bytes a token to calibrate), fast ones of a file since replaced */
    static const double slow[] = {1, 1, 1, 1, 1}, fast[] = {1000, 1000, 1000};
    add_runs(st, fx_path("models/tq-q8_0.gguf"), "Big", NULL, "cpu", slow, 5, 100);
    add_runs(st, other, "Big", "0123456789abcdef0123456789abcdef", "cpu", fast, 3, 100);

    struct advisor_estimate e;
    assert_int_equal(advisor_file_estimate(big, 4096, &mc, NULL, &e, err, sizeof err), 0);
    assert_string_equal(e.plan.where, "CPU only");
    assert_true(e.plan.host_token_bytes > (64u << 20));
    mc = cpu_machine();
    advisor_calibrate(&mc, st);
    /* the median of the file's runs over its bound: 50 GB/s over its bytes */
    assert_close(mc.cpu_eff, 12.0 * (double)e.plan.host_token_bytes / 50e9, 1e-9);
    assert_close(mc.pp_eff, 0.5, 0);
    assert_string_equal(mc.eff_source, "calibrated from the replies of 1 model file here");

    store_close(st);
    unlink(big);
    unlink(other);
    char side[80];
    snprintf(side, sizeof side, "%s-wal", db);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", db);
    unlink(side);
    unlink(db);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(advisor_sizes_match_the_published_files),
        cmocka_unit_test(advisor_sizes_grow_with_the_bits),
        cmocka_unit_test(advisor_places_and_predicts),
        cmocka_unit_test(advisor_rejects_a_quantization_a_model_lacks),
        cmocka_unit_test(advisor_reads_a_model_file),
        cmocka_unit_test(advisor_reads_a_mixture_of_experts),
        cmocka_unit_test(advisor_calibrates_from_the_replies_of_one_model_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
