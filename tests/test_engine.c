/* The engine thread: requests in, events out, in order, through the fd. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "history/store.h"
#include "infer/engine.h"
#include "tests/fixture.h"

/* The bundled demo model; the tests run from the source tree. */
#define DEMO_MODEL "share/models/ponder-demo.gguf"

/* Allocation failure on the engine's thread: this malloc fails every call
 * from another thread than the test's while fail_worker_allocs is set
 * (not under the sanitizers, which bring their own malloc). */
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define TEST_FAIL_ALLOC 1
extern void *__libc_malloc(size_t n);
static atomic_int fail_worker_allocs;
static pthread_t test_thread;

void *malloc(size_t n)
{
    if (atomic_load(&fail_worker_allocs) && !pthread_equal(pthread_self(), test_thread))
        return NULL;
    return __libc_malloc(n);
}
#endif

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

static struct engine *open_path(const char *path, int n_ctx)
{
    struct engine *e = NULL;
    char err[256];
    assert_int_equal(engine_open(&e, err, sizeof err), 0);
    struct model_params p = {.n_ctx = n_ctx, .n_threads = 2, .kv_type = KV_TYPE_F32,
                             .max_isa = CPU_ISA_COUNT};
    uint64_t id = engine_load(e, path, &p);
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

static struct engine *open_loaded(const char *model, int n_ctx)
{
    return open_path(fx_path(model), n_ctx);
}

/* A file read into memory reports its reading as LOAD_PROGRESS, rising to
 * 1, before LOADED (the file is small enough to be read, not mapped). */
static void test_loading_reports_the_file_read_as_progress(void **state)
{
    (void)state;
    struct engine *e = NULL;
    char err[256];
    assert_int_equal(engine_open(&e, err, sizeof err), 0);
    struct model_params p = {.n_ctx = 64, .n_threads = 1, .max_isa = CPU_ISA_COUNT};
    uint64_t id = engine_load(e, fx_path("models/tq-q8_0.gguf"), &p);
    struct engine_event ev;
    float last = -1.0f;
    int reading = 0;
    do {
        next_event(e, &ev);
        assert_int_equal(ev.request, id);
        assert_int_not_equal(ev.type, ENGINE_EVENT_ERROR);
        if (ev.type == ENGINE_EVENT_LOAD_PROGRESS && !strcmp(ev.u.progress.phase, "reading")) {
            assert_true(ev.u.progress.fraction >= last);
            last = ev.u.progress.fraction;
            reading++;
        }
    } while (ev.type == ENGINE_EVENT_LOAD_PROGRESS);
    assert_int_equal(ev.type, ENGINE_EVENT_LOADED);
    assert_true(reading >= 1);
    assert_float_equal(last, 1.0f, 0.0f);
    engine_close(e);
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


/* ---- the thinking budget (issue #9) ---- */

/* What one generation gave: its events, summed up. */
struct reply {
    char reasoning[8192], answer[8192];     /* the TOKEN text of each kind */
    size_t reasoning_len, answer_len;
    int tokens;                             /* TOKEN events with first set */
    int reasoning_firsts;                   /* ... of kind reasoning */
    int tokens_at_answering;                /* tokens before PHASE answering; -1: none */
    bool saw_thinking;
    enum engine_stop stop;
    struct engine_stats st;
};

static void generate(struct engine *e, const char *prompt, const struct engine_generate_params *gp,
                     struct reply *r)
{
    memset(r, 0, sizeof *r);
    r->tokens_at_answering = -1;
    struct chat_msg msg = {CHAT_ROLE_USER, prompt};
    uint64_t id = engine_generate(e, &msg, 1, gp);
    assert_true(id > 0);
    struct engine_event ev;
    for (;;) {
        next_event(e, &ev);
        assert_int_equal(ev.request, id);
        if (ev.type == ENGINE_EVENT_ERROR)
            fail_msg("error: %s", ev.u.error);
        if (ev.type == ENGINE_EVENT_PHASE && ev.u.phase == ENGINE_PHASE_THINKING)
            r->saw_thinking = true;
        if (ev.type == ENGINE_EVENT_PHASE && ev.u.phase == ENGINE_PHASE_ANSWERING)
            r->tokens_at_answering = r->tokens;
        if (ev.type == ENGINE_EVENT_TOKEN) {
            if (ev.u.token.first) {
                r->tokens++;
                if (ev.u.token.kind == REASON_KIND_REASONING)
                    r->reasoning_firsts++;
            }
            bool rea = ev.u.token.kind == REASON_KIND_REASONING;
            char *buf = rea ? r->reasoning : r->answer;
            size_t *n = rea ? &r->reasoning_len : &r->answer_len;
            assert_true(*n + ev.u.token.len < sizeof r->answer);
            memcpy(buf + *n, ev.u.token.text, ev.u.token.len);
            *n += ev.u.token.len;
            buf[*n] = 0;
        }
        if (ev.type == ENGINE_EVENT_DONE)
            break;
    }
    r->stop = ev.u.done.stop;
    r->st = ev.u.done.stats;
}

static void budget_params(struct engine_generate_params *gp, int budget, enum engine_think_mode mode,
                          uint64_t seed)
{
    memset(gp, 0, sizeof *gp);
    sampler_params_default(&gp->sampler);
    gp->sampler.seed = seed;
    gp->max_tokens = 400;
    gp->think_budget = budget;
    gp->think_mode = mode;
}

/* whether s has a byte other than whitespace */
static bool has_text(const char *s)
{
    for (; *s; s++)
        if (!strchr(" \t\r\n", *s))
            return true;
    return false;
}

/* The demo model reasons for about 57 tokens on its own (checked here), so
 * the budgets below end its reasoning early. */
#define DEMO_PROMPT "What is 47 + 38?"

static void test_hard_budget_ends_the_reasoning_at_exactly_n_and_an_answer_follows(void **state)
{
    (void)state;
    struct engine *e = open_path(DEMO_MODEL, 512);
    struct engine_generate_params gp;
    struct reply r;
    budget_params(&gp, 0, ENGINE_THINK_SOFT, 11);
    generate(e, DEMO_PROMPT, &gp, &r);
    int natural = r.st.reasoning_tokens;
    assert_true(natural > 40);
    assert_false(r.st.budget_reached);
    static const int budgets[] = {1, 2, 16, 40};
    for (size_t i = 0; i < sizeof budgets / sizeof budgets[0]; i++) {
        int n = budgets[i];
        budget_params(&gp, n, ENGINE_THINK_HARD, 11 + i);
        generate(e, DEMO_PROMPT, &gp, &r);
        if (r.st.reasoning_tokens != n || r.reasoning_firsts != n || !r.st.budget_reached)
            fail_msg("budget %d: %d reasoning tokens (%d events), reached %d", n,
                     r.st.reasoning_tokens, r.reasoning_firsts, r.st.budget_reached);
        /* the answer begins right after the N reasoning tokens and </think> */
        assert_int_equal(r.tokens_at_answering, n);
        assert_true(r.saw_thinking);
        if (!has_text(r.answer))
            fail_msg("budget %d: no answer after the reasoning", n);
        assert_null(strstr(r.reasoning, "think>"));
        assert_int_equal(r.st.think_budget, n);
        assert_int_equal(r.st.think_mode, ENGINE_THINK_HARD);
        assert_int_equal(r.st.reasoning_tokens + r.st.answer_tokens, r.tokens);
    }
    engine_close(e);
}

static void test_soft_budget_ends_the_reasoning_within_n_plus_64(void **state)
{
    (void)state;
    /* the demo model (57 tokens on its own) and a random-weight model that
     * never closes its reasoning by itself (checked: 300 tokens) */
    static const struct {
        const char *model;
        int budget;
    } cases[] = {
        {DEMO_MODEL, 8}, {DEMO_MODEL, 20}, {DEMO_MODEL, 40},
        {"tq", 16}, {"tq", 100}, {"tq", 200},
    };
    struct engine *demo = open_path(DEMO_MODEL, 512);
    struct engine *tq = open_loaded("models/tq-f32.gguf", 1024);
    struct engine_generate_params gp;
    struct reply r;
    budget_params(&gp, 0, ENGINE_THINK_SOFT, 5);
    gp.max_tokens = 300;
    generate(tq, "Tell me everything.", &gp, &r);
    assert_int_equal(r.st.reasoning_tokens, 300);
    budget_params(&gp, 0, ENGINE_THINK_SOFT, 5);
    generate(demo, DEMO_PROMPT, &gp, &r);
    int natural = r.st.reasoning_tokens;
    assert_true(natural > 40);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int n = cases[i].budget;
        bool is_demo = strcmp(cases[i].model, DEMO_MODEL) == 0;
        for (uint64_t seed = 1; seed <= 3; seed++) {
            budget_params(&gp, n, ENGINE_THINK_SOFT, seed);
            gp.max_tokens = n + 64 + 40;
            generate(is_demo ? demo : tq, is_demo ? DEMO_PROMPT : "Tell me everything.", &gp, &r);
            int got = r.st.reasoning_tokens;
            /* pushed from 80 % of N on, closed by N + 64 at the latest; and
             * these models take the push before the engine forces </think> at
             * N + 64 (the demo model earlier than it would by itself) */
            if (got < n - n / 5 || got >= n + 64 || (is_demo && got >= natural) ||
                !r.st.budget_reached ||
                r.tokens_at_answering != got)
                fail_msg("%s, budget %d, seed %d: %d reasoning tokens, reached %d, answering "
                         "after %d", is_demo ? "demo" : "tq", n, (int)seed, got,
                         r.st.budget_reached, r.tokens_at_answering);
            assert_int_equal(r.st.think_mode, ENGINE_THINK_SOFT);
        }
    }
    engine_close(demo);
    engine_close(tq);
}

static void test_think_off_gives_an_answer_with_no_reasoning(void **state)
{
    (void)state;
    struct engine *e = open_path(DEMO_MODEL, 512);
    struct engine_generate_params gp;
    struct reply r;
    for (uint64_t seed = 1; seed <= 3; seed++) {
        budget_params(&gp, 0, ENGINE_THINK_SOFT, seed);
        gp.think_off = true;
        generate(e, DEMO_PROMPT, &gp, &r);
        assert_int_equal(r.st.reasoning_tokens, 0);
        assert_int_equal(r.reasoning_firsts, 0);
        assert_int_equal(r.reasoning_len, 0);
        assert_false(r.saw_thinking);
        assert_true(r.st.think_off);
        assert_false(r.st.budget_reached);
        if (!has_text(r.answer))
            fail_msg("seed %d: no answer", (int)seed);
        assert_int_equal(r.stop, ENGINE_STOP_END);
    }
    engine_close(e);
}

/* What the interface does with a reply: stream it into the store, finish it
 * with its run, read it back. */
static void store_reply(struct store *s, const struct reply *r, struct store_conv **out)
{
    char err[256] = "";
    int64_t conv, msg;
    assert_int_equal(store_conv_create(s, NULL, &conv, err, sizeof err), 0);
    assert_int_equal(store_message_add(s, conv, STORE_ROLE_USER, DEMO_PROMPT, NULL, 0, NULL, err,
                                       sizeof err), 0);
    assert_int_equal(store_reply_begin(s, conv, 0, &msg, err, sizeof err), 0);
    if (r->reasoning_len)
        assert_int_equal(store_reply_append(s, msg, STORE_PART_REASONING, r->reasoning,
                                            r->reasoning_len, err, sizeof err), 0);
    assert_int_equal(store_reply_append(s, msg, STORE_PART_ANSWER, r->answer, r->answer_len, err,
                                        sizeof err), 0);
    struct store_run run = {
        .backend = r->st.backend, .device = r->st.device, .stop_reason = "end",
        .reasoning_tokens = r->st.reasoning_tokens, .answer_tokens = r->st.answer_tokens,
        .think_budget = r->st.think_budget,
        .think_mode = r->st.think_budget <= 0 ? ""
                      : r->st.think_mode == ENGINE_THINK_HARD ? "hard" : "soft",
        .think_off = r->st.think_off, .budget_reached = r->st.budget_reached,
    };
    assert_int_equal(store_reply_finish(s, msg, STORE_STATUS_COMPLETE, NULL, &run, err,
                                        sizeof err), 0);
    assert_int_equal(store_conv_load(s, conv, out, err, sizeof err), 0);
}

static void test_the_store_records_budgets_and_reasoning_counts(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int budget;
        enum engine_think_mode mode;
        bool off;
    } cases[] = {
        {"hard 16", 16, ENGINE_THINK_HARD, false},
        {"soft 24", 24, ENGINE_THINK_SOFT, false},
        {"off", 0, ENGINE_THINK_SOFT, true},
    };
    struct engine *e = open_path(DEMO_MODEL, 512);
    struct store *s = NULL;
    char err[256] = "";
    assert_int_equal(store_open(":memory:", STORE_CREATE, &s, err, sizeof err), 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct engine_generate_params gp;
        struct reply r;
        budget_params(&gp, cases[i].budget, cases[i].mode, 9);
        gp.think_off = cases[i].off;
        generate(e, DEMO_PROMPT, &gp, &r);
        struct store_conv *c = NULL;
        store_reply(s, &r, &c);
        const struct store_message *m = &c->msgs[1];
        if (strcmp(m->reasoning, r.reasoning) != 0 || strcmp(m->answer, r.answer) != 0)
            fail_msg("case %s: stored text differs", cases[i].name);
        assert_true(m->has_run);
        assert_int_equal(m->run.reasoning_tokens, r.st.reasoning_tokens);
        assert_int_equal(m->run.think_budget, cases[i].budget);
        assert_string_equal(m->run.think_mode, cases[i].budget == 0 ? ""
                                               : cases[i].mode == ENGINE_THINK_HARD ? "hard"
                                                                                    : "soft");
        assert_int_equal(m->run.think_off, cases[i].off);
        assert_int_equal(m->run.budget_reached, !cases[i].off);
        if (cases[i].off)
            assert_string_equal(m->reasoning, "");
        else
            assert_true(has_text(m->reasoning));
        if (cases[i].mode == ENGINE_THINK_HARD)
            assert_int_equal(m->run.reasoning_tokens, 16);
        store_conv_free(c);
    }
    store_close(s);
    engine_close(e);
}

/* Out of memory on the engine's thread: the ERROR and the DONE that end a
 * generation still arrive (a UI waiting for DONE would otherwise wait
 * forever), with and without a model. */
static void test_done_arrives_when_memory_runs_out(void **state)
{
    (void)state;
#ifdef TEST_FAIL_ALLOC
    test_thread = pthread_self();
    struct engine *empty = NULL;
    char err[256];
    assert_int_equal(engine_open(&empty, err, sizeof err), 0);
    struct engine *loaded = open_path(DEMO_MODEL, 256);
    struct engine *engines[] = {empty, loaded};
    for (int k = 0; k < 2; k++) {
        struct chat_msg msg = {CHAT_ROLE_USER, "hi"};
        struct engine_generate_params gp = {.max_tokens = 4};
        sampler_params_default(&gp.sampler);
        atomic_store(&fail_worker_allocs, 1);
        uint64_t id = engine_generate(engines[k], &msg, 1, &gp);
        assert_true(id > 0);
        struct engine_event ev;
        bool error = false;
        do {
            next_event(engines[k], &ev);
            assert_int_equal(ev.request, id);
            error |= ev.type == ENGINE_EVENT_ERROR;
        } while (ev.type != ENGINE_EVENT_DONE);
        atomic_store(&fail_worker_allocs, 0);
        if (!error || ev.u.done.stop != ENGINE_STOP_ERROR)
            fail_msg("engine %d: error %d, stop %d", k, error, (int)ev.u.done.stop);
    }
    engine_close(empty);
    engine_close(loaded);
#else
    skip();
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loading_reports_the_file_read_as_progress),
        cmocka_unit_test(test_greedy_raw_generation_gives_the_reference_ids),
        cmocka_unit_test(test_stop_ends_a_generation_within_a_token),
        cmocka_unit_test(test_the_next_turn_reuses_the_cached_prefix),
        cmocka_unit_test(test_errors_come_as_events),
        cmocka_unit_test(test_close_while_generating_does_not_hang),
        cmocka_unit_test(test_hard_budget_ends_the_reasoning_at_exactly_n_and_an_answer_follows),
        cmocka_unit_test(test_soft_budget_ends_the_reasoning_within_n_plus_64),
        cmocka_unit_test(test_think_off_gives_an_answer_with_no_reasoning),
        cmocka_unit_test(test_the_store_records_budgets_and_reasoning_counts),
        cmocka_unit_test(test_done_arrives_when_memory_runs_out),
    };
    return cmocka_run_group_tests_name("engine", tests, NULL, NULL);
}
