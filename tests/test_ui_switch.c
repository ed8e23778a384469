/* The cost of a model switch said before it happens: load time from the
 * store's last recorded load, else file size over the disk speed; the
 * re-read from the conversation's tokens at the model's recorded prompt
 * speed, else the stated default; and the line the interface shows. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "tests/fixture.h"
#include "tests/fx_store.h"
#include "ui/switch.h"

/* Records one reply by model name at prompt_tps. */
static void add_run(struct store *st, const char *name, double prompt_tps)
{
    char err[256], fp[STORE_FINGERPRINT_SIZE];
    int64_t model = 0, conv = 0, msg = 0;
    snprintf(fp, sizeof fp, "%032zx", strlen(name));    /* one model per name length */
    struct store_model m = {.path = name, .name = name, .arch = "qwen2",
                            .weight_type = "Q8_0", .fingerprint = fp};
    if (store_model_use(st, &m, &model, err, sizeof err) ||
        store_conv_create(st, NULL, &conv, err, sizeof err) ||
        store_message_add(st, conv, STORE_ROLE_USER, "hi", NULL, 0, NULL, err, sizeof err) ||
        store_reply_begin(st, conv, model, &msg, err, sizeof err))
        fail_msg("store: %s", err);
    struct store_run run = {.model_id = model, .backend = "cpu", .device = "avx2",
                            .prompt_tokens = 100, .prompt_tps = prompt_tps, .gen_tps = 20,
                            .stop_reason = "end"};
    if (store_reply_finish(st, msg, STORE_STATUS_COMPLETE, NULL, &run, err, sizeof err))
        fail_msg("store_reply_finish: %s", err);
}

static void test_switch_without_records_uses_file_size_and_defaults(void **state)
{
    (void)state;
    struct ui_model m = {.path = "/m/a.gguf", .name = "A", .file_size = 1500000000};
    struct switch_cost c;
    switch_estimate(NULL, &m, 2310, 0, &c);
    assert_false(c.load_recorded);
    assert_false(c.speed_recorded);
    assert_close(c.load_ms, 1.5e9 / (SWITCH_DISK_MB_S * 1e3), 1e-6);   /* 3 s at 500 MB/s */
    assert_close(c.reread_ms, 2310 * 1000.0 / SWITCH_PROMPT_TPS, 1e-6);
    switch_estimate(NULL, &m, 0, 1000, &c);     /* a given disk speed */
    assert_close(c.load_ms, 1500, 1e-6);
    assert_int_equal(c.tokens, 0);
    assert_close(c.reread_ms, 0, 0);
}

static void test_switch_uses_the_recorded_load_and_prompt_speed(void **state)
{
    (void)state;
    struct store *st = fx_store_mem();
    struct ui_model m = {.path = "/m/b.gguf", .name = "Bee", .file_size = 1000000000};
    struct ui_model other = {.path = "/m/c.gguf", .name = "Bee-2", .file_size = 1000};
    add_run(st, "Bee", 210);
    add_run(st, "Bee-2", 5);        /* a name containing Bee is another model */
    switch_record_load(st, &m, 2750);
    struct switch_cost c;
    switch_estimate(st, &m, 2100, 0, &c);
    assert_true(c.load_recorded);
    assert_close(c.load_ms, 2750, 1e-6);
    assert_true(c.speed_recorded);
    assert_close(c.reread_ms, 2100 * 1000.0 / 210, 1e-6);
    switch_estimate(st, &other, 10, 0, &c);     /* other has no recorded load */
    assert_false(c.load_recorded);
    assert_close(c.reread_ms, 10 * 1000.0 / 5, 1e-6);
    switch_record_load(st, &m, 900);            /* the last load counts */
    switch_estimate(st, &m, 0, 0, &c);
    assert_close(c.load_ms, 900, 1e-6);
    store_close(st);
}

static void test_switch_keeps_loads_in_the_store_under_the_files_fingerprint(void **state)
{
    (void)state;
    struct store *st = fx_store_mem();
    char err[256], fp[STORE_FINGERPRINT_SIZE], *v = NULL;
    const char *path = fx_path("models/tq-q8_0.gguf");
    struct ui_model m = {.path = path, .name = "tq", .file_size = 1000};
    switch_record_load(st, &m, 1234);
    /* a store record, not a settings row */
    char key[1200];
    snprintf(key, sizeof key, "load_ms %s", path);
    assert_int_equal(store_setting_get(st, key, &v, err, sizeof err), 0);
    assert_null(v);
    double ms = 0;
    assert_int_equal(store_model_load_get(st, path, NULL, &ms, err, sizeof err), 0);
    assert_close(ms, 1234, 0);
    /* the same file by another path: its fingerprint finds the load */
    assert_int_equal(store_model_fingerprint(path, fp, err, sizeof err), 0);
    assert_int_equal(store_model_load_get(st, "/elsewhere/tq.gguf", fp, &ms, err, sizeof err), 0);
    assert_close(ms, 1234, 0);
    /* a load recorded by anyone through the store is what the estimate uses */
    struct ui_model b = {.path = "/m/b.gguf", .name = "B", .file_size = 1000000000};
    assert_int_equal(store_model_load_set(st, "/m/b.gguf", NULL, 640, err, sizeof err), 0);
    struct switch_cost c;
    switch_estimate(st, &b, 0, 0, &c);
    assert_true(c.load_recorded);
    assert_close(c.load_ms, 640, 0);
    /* a remote model's loads go under its label */
    struct engine_remote r = {.url = "http://127.0.0.1:1", .model = "big"};
    struct ui_model rm = {.path = "remote:http://127.0.0.1:1#big", .name = "big", .remote = &r};
    switch_record_load(st, &rm, 150);
    switch_estimate(st, &rm, 0, 0, &c);
    assert_true(c.load_recorded);
    assert_close(c.load_ms, 150, 0);
    store_close(st);
}

static void test_switch_to_a_remote_model_is_one_request(void **state)
{
    (void)state;
    struct engine_remote r = {.url = "http://127.0.0.1:1", .model = "big"};
    struct ui_model m = {.path = "remote:http://127.0.0.1:1#big", .name = "big", .remote = &r};
    struct switch_cost c;
    switch_estimate(NULL, &m, 40, 0, &c);
    assert_close(c.load_ms, SWITCH_REMOTE_LOAD_MS, 1e-9);
}

static void test_switch_text_reads_as_the_issue_says(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        struct switch_cost c;
        const char *want;
    } cases[] = {
        {"issue example", {.load_ms = 3000, .tokens = 2310, .reread_ms = 11000},
         "switch: load ≈ 3.0 s, re-read 2,310 tokens ≈ 11 s"},
        {"nothing to re-read", {.load_ms = 420}, "switch: load ≈ 0.4 s"},
        {"long", {.load_ms = 95000, .tokens = 12, .reread_ms = 60},
         "switch: load ≈ 95 s, re-read 12 tokens ≈ 0.1 s"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[128];
        switch_text(&cases[i].c, buf, sizeof buf);
        if (strcmp(buf, cases[i].want))
            fail_msg("case %s: got '%s', want '%s'", cases[i].name, buf, cases[i].want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_switch_without_records_uses_file_size_and_defaults),
        cmocka_unit_test(test_switch_uses_the_recorded_load_and_prompt_speed),
        cmocka_unit_test(test_switch_keeps_loads_in_the_store_under_the_files_fingerprint),
        cmocka_unit_test(test_switch_to_a_remote_model_is_one_request),
        cmocka_unit_test(test_switch_text_reads_as_the_issue_says),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
