/* The engine thread: requests in, events out, in order, through the fd. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/engine.h"
#include "tests/fixture.h"

/* Waits (up to 60 s) for the next event. */
static void next_event(struct engine *e, struct engine_event *ev)
{
    for (int waited = 0; waited < 600; waited++) {
        if (engine_next(e, ev))
            return;
        struct pollfd pfd = {.fd = engine_fd(e), .events = POLLIN};
        poll(&pfd, 1, 100);
    }
    fail_msg("no event within 60 s");
}

static struct engine *open_loaded(const char *model, int n_ctx)
{
    struct engine *e = NULL;
    char err[256];
    assert_int_equal(engine_open(&e, err, sizeof err), 0);
    struct model_params p = {.n_ctx = n_ctx, .n_threads = 2, .kv_type = KV_TYPE_F32,
                             .max_isa = CPU_ISA_COUNT};
    uint64_t id = engine_load(e, fx_path(model), &p);
    assert_true(id > 0);
    struct engine_event ev;
    do {
        next_event(e, &ev);
        assert_int_not_equal(ev.type, ENGINE_EVENT_ERROR);
        assert_int_equal(ev.request, id);
    } while (ev.type == ENGINE_EVENT_LOAD_PROGRESS);
    assert_int_equal(ev.type, ENGINE_EVENT_LOADED);
    assert_string_equal(ev.u.loaded.arch, "qwen2");
    return e;
}

static void test_greedy_raw_generation_gives_the_reference_ids(void **state)
{
    (void)state;
    struct engine *e = open_loaded("models/tq-q8_0.gguf", 256);
    char *prompt = fx_read_file(fx_path("prompts/p1.txt"), NULL);
    struct chat_msg msg = {CHAT_ROLE_USER, prompt};
    struct engine_generate_params gp = {.max_tokens = 16, .raw = true};
    sampler_params_default(&gp.sampler);
    gp.sampler.temperature = 0;
    uint64_t id = engine_generate(e, &msg, 1, &gp);
    static const int32_t want[16] = {441, 441, 441, 166, 170, 400, 126, 352,
                                     292, 400, 126, 243, 418, 92,  319, 89};
    int n = 0;
    bool saw_reading = false;
    struct engine_event ev;
    for (;;) {
        next_event(e, &ev);
        assert_int_equal(ev.request, id);
        assert_int_not_equal(ev.type, ENGINE_EVENT_ERROR);
        if (ev.type == ENGINE_EVENT_PHASE && ev.u.phase == ENGINE_PHASE_READING)
            saw_reading = true;
        if (ev.type == ENGINE_EVENT_TOKEN && ev.u.token.first) {
            assert_true(saw_reading);
            assert_true(n < 16);
            assert_int_equal(ev.u.token.id, want[n]);
            n++;
        }
        if (ev.type == ENGINE_EVENT_DONE)
            break;
    }
    assert_int_equal(n, 16);
    assert_int_equal(ev.u.done.stop, ENGINE_STOP_LENGTH);
    assert_int_equal(ev.u.done.stats.prompt_tokens, 16);
    assert_int_equal(ev.u.done.stats.reasoning_tokens + ev.u.done.stats.answer_tokens, 16);
    free(prompt);
    engine_close(e);
}

static void test_stop_ends_a_generation_within_a_token(void **state)
{
    (void)state;
    struct engine *e = open_loaded("models/tq-f32.gguf", 4096);
    struct chat_msg msg = {CHAT_ROLE_USER, "Tell me everything."};
    struct engine_generate_params gp = {.max_tokens = -1};
    sampler_params_default(&gp.sampler);
    gp.sampler.seed = 7;
    engine_generate(e, &msg, 1, &gp);
    struct engine_event ev;
    int tokens = 0, after_stop = 0;
    bool stopped = false;
    for (;;) {
        next_event(e, &ev);
        if (ev.type == ENGINE_EVENT_TOKEN && ev.u.token.first) {
            tokens++;
            if (stopped)
                after_stop++;
            if (tokens == 5) {
                engine_stop(e);
                stopped = true;
            }
        }
        if (ev.type == ENGINE_EVENT_DONE)
            break;
    }
    assert_int_equal(ev.u.done.stop, ENGINE_STOP_USER);
    /* events already queued when stop was asked, plus at most one token */
    assert_true(tokens < 100);
    engine_close(e);
}

static void test_the_next_turn_reuses_the_cached_prefix(void **state)
{
    (void)state;
    struct engine *e = open_loaded("models/tq-q4_k_m.gguf", 1024);
    struct chat_msg turn1[] = {{CHAT_ROLE_SYSTEM, "Be brief."}, {CHAT_ROLE_USER, "What is 2+2?"}};
    struct engine_generate_params gp = {.max_tokens = 8};
    sampler_params_default(&gp.sampler);
    gp.sampler.seed = 3;
    engine_generate(e, turn1, 2, &gp);
    struct engine_event ev;
    do
        next_event(e, &ev);
    while (ev.type != ENGINE_EVENT_DONE);
    assert_int_equal(ev.u.done.stats.prompt_cached, 0);
    int first_prompt = ev.u.done.stats.prompt_tokens;
    struct chat_msg turn2[] = {{CHAT_ROLE_SYSTEM, "Be brief."},
                               {CHAT_ROLE_USER, "What is 2+2?"},
                               {CHAT_ROLE_ASSISTANT, "4"},
                               {CHAT_ROLE_USER, "And 3+3?"}};
    engine_generate(e, turn2, 4, &gp);
    do
        next_event(e, &ev);
    while (ev.type != ENGINE_EVENT_DONE);
    /* everything up to the first reply is reused */
    assert_true(ev.u.done.stats.prompt_cached >= first_prompt - 4);
    assert_true(ev.u.done.stats.prompt_cached > 0);
    engine_close(e);
}

static void test_errors_come_as_events(void **state)
{
    (void)state;
    struct engine *e = NULL;
    char err[256];
    assert_int_equal(engine_open(&e, err, sizeof err), 0);
    struct chat_msg msg = {CHAT_ROLE_USER, "hi"};
    struct engine_generate_params gp = {.max_tokens = 4};
    sampler_params_default(&gp.sampler);
    engine_generate(e, &msg, 1, &gp);
    struct engine_event ev;
    next_event(e, &ev);
    assert_int_equal(ev.type, ENGINE_EVENT_ERROR);
    assert_non_null(strstr(ev.u.error, "no model"));
    next_event(e, &ev);
    assert_int_equal(ev.type, ENGINE_EVENT_DONE);
    assert_int_equal(ev.u.done.stop, ENGINE_STOP_ERROR);

    struct model_params p = {.n_threads = 1, .max_isa = CPU_ISA_COUNT};
    engine_load(e, "/nonexistent.gguf", &p);
    do
        next_event(e, &ev);
    while (ev.type == ENGINE_EVENT_LOAD_PROGRESS);
    assert_int_equal(ev.type, ENGINE_EVENT_ERROR);
    assert_non_null(strstr(ev.u.error, "nonexistent"));
    engine_close(e);
}

static void test_close_while_generating_does_not_hang(void **state)
{
    (void)state;
    struct engine *e = open_loaded("models/tq-f32.gguf", 4096);
    struct chat_msg msg = {CHAT_ROLE_USER, "go on"};
    struct engine_generate_params gp = {.max_tokens = -1};
    sampler_params_default(&gp.sampler);
    engine_generate(e, &msg, 1, &gp);
    engine_close(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_raw_generation_gives_the_reference_ids),
        cmocka_unit_test(test_stop_ends_a_generation_within_a_token),
        cmocka_unit_test(test_the_next_turn_reuses_the_cached_prefix),
        cmocka_unit_test(test_errors_come_as_events),
        cmocka_unit_test(test_close_while_generating_does_not_hang),
    };
    return cmocka_run_group_tests_name("engine", tests, NULL, NULL);
}
