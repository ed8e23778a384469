/* The chat session: the user's message is stored before generation, the
 * reply streams into the store with its reasoning apart and is completed
 * with its run; the engine gets answers without reasoning; a stored
 * conversation reopens as it was. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fixture.h"
#include "tests/fx_store.h"
#include "ui/session.h"

static struct store_conv *load(struct store *st, int64_t id)
{
    struct store_conv *c = NULL;
    char err[256];
    if (store_conv_load(st, id, &c, err, sizeof err))
        fail_msg("store_conv_load: %s", err);
    return c;
}

static void reply(struct session *s, const char *reasoning, const char *answer,
                  enum engine_stop stop)
{
    assert_int_equal(session_reply_begin(s), 0);
    assert_int_equal(session_reply_piece(s, REASON_KIND_REASONING, reasoning, strlen(reasoning)),
                     0);
    assert_int_equal(session_reply_piece(s, REASON_KIND_ANSWER, answer, strlen(answer)), 0);
    struct engine_stats stats = {.prompt_tokens = 5, .reasoning_tokens = 3, .answer_tokens = 2,
                                 .gen_tps = 42.5, .reasoning_ms = 1500};
    snprintf(stats.backend, sizeof stats.backend, "cpu");
    assert_int_equal(session_reply_end(s, stop, &stats, NULL), 0);
}

static void test_user_message_is_stored_before_the_reply(void **state)
{
    (void)state;
    struct store *st = fx_store_mem();
    struct session s;
    session_init(&s, st);
    assert_int_equal(session_set_system(&s, "be brief"), 0);
    assert_int_equal(session_user(&s, "hello"), 0);
    assert_true(s.conv > 0);
    struct store_conv *c = load(st, s.conv);
    assert_int_equal(c->n, 2);     /* the system prompt, then the user's message */
    assert_int_equal(c->msgs[0].role, STORE_ROLE_SYSTEM);
    assert_int_equal(c->msgs[1].role, STORE_ROLE_USER);
    assert_string_equal(c->msgs[1].answer, "hello");
    store_conv_free(c);

    /* while streaming, the committed text is already there */
    assert_int_equal(session_reply_begin(&s), 0);
    assert_int_equal(session_reply_piece(&s, REASON_KIND_REASONING, "hmm", 3), 0);
    assert_int_equal(session_reply_piece(&s, REASON_KIND_ANSWER, "Hi", 2), 0);
    c = load(st, s.conv);
    assert_int_equal(c->n, 3);
    assert_int_equal(c->msgs[2].status, STORE_STATUS_STREAMING);
    assert_string_equal(c->msgs[2].reasoning, "hmm");
    assert_string_equal(c->msgs[2].answer, "Hi");
    store_conv_free(c);
    struct engine_stats stats = {.answer_tokens = 1, .gen_tps = 10};
    assert_int_equal(session_reply_end(&s, ENGINE_STOP_END, &stats, NULL), 0);
    c = load(st, s.conv);
    assert_int_equal(c->msgs[2].status, STORE_STATUS_COMPLETE);
    assert_true(c->msgs[2].has_run);
    assert_close(c->msgs[2].run.gen_tps, 10, 1e-9);
    store_conv_free(c);
    session_free(&s);
    store_close(st);
}

static void test_engine_gets_answers_without_reasoning(void **state)
{
    (void)state;
    struct session s;
    session_init(&s, NULL);     /* no store: the chat still works */
    assert_int_equal(session_set_system(&s, "sys"), 0);
    assert_int_equal(session_user(&s, "q1"), 0);
    reply(&s, "secret thoughts", "a1", ENGINE_STOP_END);
    assert_int_equal(session_user(&s, "q2"), 0);
    const struct chat_msg *m;
    size_t n;
    assert_int_equal(session_chat(&s, &m, &n), 0);
    assert_int_equal(n, 4);
    static const struct {
        enum chat_role role;
        const char *text;
    } want[] = {{CHAT_ROLE_SYSTEM, "sys"}, {CHAT_ROLE_USER, "q1"},
                {CHAT_ROLE_ASSISTANT, "a1"}, {CHAT_ROLE_USER, "q2"}};
    for (size_t i = 0; i < n; i++) {
        if (m[i].role != want[i].role || strcmp(m[i].content, want[i].text))
            fail_msg("message %zu: role %d '%s'", i, (int)m[i].role, m[i].content);
    }
    assert_string_equal(s.msgs[1].reasoning, "secret thoughts");
    session_free(&s);
}

static void test_interrupted_reply_is_stored_as_interrupted(void **state)
{
    (void)state;
    struct store *st = fx_store_mem();
    struct session s;
    session_init(&s, st);
    assert_int_equal(session_user(&s, "q"), 0);
    reply(&s, "r", "part", ENGINE_STOP_USER);
    struct store_conv *c = load(st, s.conv);
    assert_int_equal(c->msgs[1].status, STORE_STATUS_INTERRUPTED);
    assert_string_equal(c->msgs[1].answer, "part");
    assert_string_equal(c->msgs[1].run.stop_reason, engine_stop_name(ENGINE_STOP_USER));
    store_conv_free(c);
    assert_true(s.msgs[1].interrupted);
    session_free(&s);
    store_close(st);
}

static void test_runs_record_the_driver(void **state)
{
    (void)state;
    static const char *const drivers[] = {"tui", "line"};
    for (size_t i = 0; i < 2; i++) {
        struct store *st = fx_store_mem();
        struct session s;
        session_init(&s, st);
        s.driver = drivers[i];
        assert_int_equal(session_user(&s, "q"), 0);
        reply(&s, "r", "a", ENGINE_STOP_END);
        struct store_conv *c = load(st, s.conv);
        assert_true(c->msgs[1].has_run);
        if (strcmp(c->msgs[1].run.driver, drivers[i]))
            fail_msg("case %s: driver '%s'", drivers[i], c->msgs[1].run.driver);
        store_conv_free(c);
        session_free(&s);
        store_close(st);
    }
}

static void test_a_remote_model_is_stored_under_its_name(void **state)
{
    (void)state;
    struct store *st = fx_store_mem();
    struct session s;
    session_init(&s, st);
    struct model_info info = {.arch = "remote", .name = "r1-671b", .device = "10.0.0.5:8000"};
    session_set_model(&s, "remote:http://10.0.0.5:8000#r1-671b", &info);
    assert_true(s.model_id > 0);
    int64_t first = s.model_id;
    session_set_model(&s, "remote:http://10.0.0.5:8000#r1-671b", &info);
    assert_int_equal(s.model_id, first);        /* the same remote is the same model */
    info.device = "10.0.0.6:8000";
    session_set_model(&s, "remote:http://10.0.0.6:8000#r1-671b", &info);
    assert_true(s.model_id != first);           /* another server is another */
    assert_int_equal(session_user(&s, "q"), 0);
    reply(&s, "", "a", ENGINE_STOP_END);
    struct store_conv *c = load(st, s.conv);
    assert_string_equal(c->msgs[1].model_name, "r1-671b@10.0.0.6:8000");
    store_conv_free(c);
    session_free(&s);
    store_close(st);
}

static void test_open_restores_whether_the_budget_was_reached(void **state)
{
    (void)state;
    struct store *st = fx_store_mem();
    struct session s;
    char err[256];
    session_init(&s, st);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(session_user(&s, "q"), 0);
        assert_int_equal(session_reply_begin(&s), 0);
        assert_int_equal(session_reply_piece(&s, REASON_KIND_REASONING, "r", 1), 0);
        struct engine_stats stats = {.reasoning_tokens = 4, .think_budget = 4,
                                     .think_mode = ENGINE_THINK_HARD, .budget_reached = i == 0};
        assert_int_equal(session_reply_end(&s, ENGINE_STOP_END, &stats, NULL), 0);
    }
    int64_t id = s.conv;
    struct store_conv *c = load(st, id);
    assert_int_equal(c->msgs[1].run.think_budget, 4);
    assert_string_equal(c->msgs[1].run.think_mode, "hard");
    store_conv_free(c);
    assert_int_equal(session_open(&s, id, err, sizeof err), 0);
    assert_true(s.msgs[1].budget_reached);
    assert_false(s.msgs[3].budget_reached);
    session_free(&s);
    store_close(st);
}

static void test_open_restores_a_conversation_to_continue(void **state)
{
    (void)state;
    struct store *st = fx_store_mem();
    struct session s;
    char err[256];
    session_init(&s, st);
    assert_int_equal(session_set_system(&s, "sys"), 0);
    assert_int_equal(session_user(&s, "first"), 0);
    reply(&s, "thinking", "answer one", ENGINE_STOP_END);
    int64_t id = s.conv;
    assert_int_equal(session_latest(st), id);
    session_new(&s);
    assert_int_equal(s.n, 0);
    assert_int_equal(s.conv, 0);

    assert_int_equal(session_open(&s, id, err, sizeof err), 0);
    assert_int_equal(s.conv, id);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.system, "sys");
    assert_string_equal(s.msgs[1].text, "answer one");
    assert_string_equal(s.msgs[1].reasoning, "thinking");
    assert_int_equal(s.msgs[1].think_tokens, 3);
    assert_close(s.msgs[1].think_ms, 1500, 1e-9);
    assert_non_null(strstr(s.msgs[1].footer, "42.5 t/s"));

    /* continuing appends to the same conversation */
    assert_int_equal(session_user(&s, "second"), 0);
    reply(&s, "more", "answer two", ENGINE_STOP_END);
    struct store_conv *c = load(st, id);
    assert_int_equal(c->n, 5);
    assert_string_equal(c->msgs[4].answer, "answer two");
    store_conv_free(c);

    assert_int_equal(session_open(&s, id + 100, err, sizeof err), ENOENT);
    session_free(&s);
    store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_message_is_stored_before_the_reply),
        cmocka_unit_test(test_engine_gets_answers_without_reasoning),
        cmocka_unit_test(test_interrupted_reply_is_stored_as_interrupted),
        cmocka_unit_test(test_runs_record_the_driver),
        cmocka_unit_test(test_a_remote_model_is_stored_under_its_name),
        cmocka_unit_test(test_open_restores_whether_the_budget_was_reached),
        cmocka_unit_test(test_open_restores_a_conversation_to_continue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
