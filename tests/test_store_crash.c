/* The history store's crash test: a child process streams a long reply into
 * the store and is killed with SIGKILL at random moments, 60 times; after
 * each kill the database passes PRAGMA integrity_check, every committed
 * message is intact, and the interrupted reply, recovered as INTERRUPTED,
 * holds every piece whose commit the child had reported. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "history/store_int.h"

enum {
    TRIALS = 60,
    N_REASONING = 150,      /* pieces of reasoning, then */
    N_ANSWER = 150,         /* pieces of answer */
    PIECE = 8,              /* "[r0042] " */
};

/* What the child reports on its pipe after each commit. */
enum { ACK_CONV = -1, ACK_USER = -2, ACK_REPLY = -3, ACK_DONE = -4 };
struct ack {
    int32_t what;           /* an ACK_*, or the index of the piece committed */
    int32_t pad;
    int64_t id;
};

static void piece(int i, char out[PIECE + 1])
{
    snprintf(out, PIECE + 1, "[%c%04d] ", i < N_REASONING ? 'r' : 'a', i);
}

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

static void send_ack(int fd, int32_t what, int64_t id)
{
    struct ack a = {.what = what, .id = id};
    if (write(fd, &a, sizeof a) != (ssize_t)sizeof a)
        _exit(3);
}

/* The child: one conversation, one user message, one long streamed reply. */
static void child(const char *path, int trial, int fd)
{
    char err[256];
    struct store *s = NULL;
    int64_t conv, user, msg;
    char q[64];
    snprintf(q, sizeof q, "question of trial %d", trial);
    if (store_open(path, STORE_CREATE, &s, err, sizeof err) ||
        store_conv_create(s, NULL, &conv, err, sizeof err))
        _exit(2);
    send_ack(fd, ACK_CONV, conv);
    if (store_message_add(s, conv, STORE_ROLE_USER, q, NULL, 0, &user, err, sizeof err))
        _exit(2);
    send_ack(fd, ACK_USER, user);
    if (store_reply_begin(s, conv, 0, &msg, err, sizeof err))
        _exit(2);
    send_ack(fd, ACK_REPLY, msg);
    for (int i = 0; i < N_REASONING + N_ANSWER; i++) {
        char p[PIECE + 1];
        piece(i, p);
        if (store_reply_append(s, msg, i < N_REASONING ? STORE_PART_REASONING : STORE_PART_ANSWER,
                               p, PIECE, err, sizeof err))
            _exit(2);
        send_ack(fd, i, 0);
    }
    if (store_reply_finish(s, msg, STORE_STATUS_COMPLETE, NULL, NULL, err, sizeof err))
        _exit(2);
    send_ack(fd, ACK_DONE, 0);
    store_close(s);
    _exit(0);
}

/* What a trial left, as the child reported it. */
struct trial {
    int64_t conv, user, msg;
    int last_piece;         /* -1: none reported */
    bool done;
    /* after checking: what is in the store now, to check again later */
    int n_pieces;
    bool has_user, has_reply, complete;
};

static bool read_ack(int fd, struct ack *a)
{
    size_t got = 0;
    while (got < sizeof *a) {
        ssize_t r = read(fd, (char *)a + got, sizeof *a - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return true;
}

static void note(struct trial *t, const struct ack *a)
{
    switch (a->what) {
    case ACK_CONV: t->conv = a->id; break;
    case ACK_USER: t->user = a->id; break;
    case ACK_REPLY: t->msg = a->id; break;
    case ACK_DONE: t->done = true; break;
    default: t->last_piece = a->what;
    }
}

/* The number of whole pieces that reasoning r and answer a hold, or -1 when
 * they are not exactly the first pieces of the reply. */
static int pieces_in(const char *r, const char *a)
{
    size_t nr = strlen(r), na = strlen(a);
    if (nr % PIECE || na % PIECE || nr / PIECE > N_REASONING || na / PIECE > N_ANSWER)
        return -1;
    if (na && nr / PIECE != N_REASONING)
        return -1;
    char p[PIECE + 1];
    for (size_t i = 0; i < nr / PIECE; i++) {
        piece((int)i, p);
        if (memcmp(r + i * PIECE, p, PIECE))
            return -1;
    }
    for (size_t i = 0; i < na / PIECE; i++) {
        piece(N_REASONING + (int)i, p);
        if (memcmp(a + i * PIECE, p, PIECE))
            return -1;
    }
    return (int)(nr / PIECE + na / PIECE);
}

/* Checks trial k in the store.  first: right after its kill (learns what is
 * there); later: that it is still exactly that. */
static void check_trial(struct store *s, struct trial *t, int k, bool first, uint64_t seed)
{
    char err[256] = "", q[64];
    snprintf(q, sizeof q, "question of trial %d", k);
    if (!t->conv)
        return;     /* killed before its conversation was committed, or not reported */
    struct store_conv *c = NULL;
    int rc = store_conv_load(s, t->conv, &c, err, sizeof err);
    if (rc)
        fail_msg("seed %llu trial %d: conversation %lld: %s", (unsigned long long)seed, k,
                 (long long)t->conv, err);
    if (first) {
        t->has_user = c->n >= 1;
        t->has_reply = c->n >= 2;
    }
    if ((t->user && !t->has_user) || (t->msg && !t->has_reply) ||
        c->n != (size_t)t->has_user + (size_t)t->has_reply)
        fail_msg("seed %llu trial %d: %zu messages; reported user %lld reply %lld",
                 (unsigned long long)seed, k, c->n, (long long)t->user, (long long)t->msg);
    if (t->has_user && (c->msgs[0].role != STORE_ROLE_USER || strcmp(c->msgs[0].answer, q) ||
                        c->msgs[0].status != STORE_STATUS_COMPLETE))
        fail_msg("seed %llu trial %d: the user's message is damaged: '%s'",
                 (unsigned long long)seed, k, c->msgs[0].answer);
    if (t->has_reply) {
        const struct store_message *m = &c->msgs[1];
        int n = pieces_in(m->reasoning, m->answer);
        if (n < 0)
            fail_msg("seed %llu trial %d: the reply is not a prefix of what was streamed",
                     (unsigned long long)seed, k);
        if (first) {
            t->n_pieces = n;
            t->complete = m->status == STORE_STATUS_COMPLETE;
            /* everything reported is there; at most one more piece was
             * committed before the kill and not yet reported */
            if (n < t->last_piece + 1 || n > t->last_piece + 2)
                fail_msg("seed %llu trial %d: %d pieces stored, %d reported committed",
                         (unsigned long long)seed, k, n, t->last_piece + 1);
            if (t->done && !t->complete)
                fail_msg("seed %llu trial %d: finished but not complete", (unsigned long long)seed,
                         k);
        }
        enum store_status want = t->complete ? STORE_STATUS_COMPLETE : STORE_STATUS_INTERRUPTED;
        if (m->status != want || n != t->n_pieces ||
            (t->complete && n != N_REASONING + N_ANSWER))
            fail_msg("seed %llu trial %d: reply is %s with %d pieces, expected %s with %d",
                     (unsigned long long)seed, k, store_status_name(m->status), n,
                     store_status_name(want), t->n_pieces);
    }
    store_conv_free(c);
}

static void test_sigkill_while_streaming_loses_nothing_committed(void **state)
{
    (void)state;
    char dir[] = "/tmp/ponder-crash-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/ponder.db", dir);
    const char *env = getenv("PONDER_CRASH_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL) ^ (uint64_t)getpid() << 16;
    rng_state = seed ? seed : 1;
    static struct trial trials[TRIALS];
    memset(trials, 0, sizeof trials);
    int mid_stream = 0;

    for (int k = 0; k < TRIALS; k++) {
        struct trial *t = &trials[k];
        t->last_piece = -1;
        /* where to strike: mostly somewhere in the stream, sometimes before
         * it (opening, creating, migrating) or around the final commit */
        uint32_t mode = rnd(10);
        int after = mode == 0 ? -10 : mode == 1 ? N_REASONING + N_ANSWER - 1
                                                : (int)rnd(N_REASONING + N_ANSWER);
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            child(path, k, fds[1]);
        }
        close(fds[1]);
        struct ack a;
        if (after >= 0) {
            while (t->last_piece < after && !t->done && read_ack(fds[0], &a))
                note(t, &a);
        }
        struct timespec ts = {0, (long)rnd(mode == 0 ? 20000000 : 300000)};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
            fail_msg("seed %llu trial %d: the writer failed (exit %d)", (unsigned long long)seed,
                     k, WEXITSTATUS(status));
        while (read_ack(fds[0], &a))
            note(t, &a);
        close(fds[0]);
        if (t->last_piece >= 0 && !t->done)
            mid_stream++;

        /* the next start: recovery, then the checks */
        char err[256] = "";
        struct store *s = NULL;
        int rc = store_open(path, STORE_CREATE, &s, err, sizeof err);
        if (rc)
            fail_msg("seed %llu trial %d: reopening: %s", (unsigned long long)seed, k, err);
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_prepare_v2(s->db, "PRAGMA integrity_check", -1, &st, NULL),
                         SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        if (strcmp((const char *)sqlite3_column_text(st, 0), "ok"))
            fail_msg("seed %llu trial %d: integrity_check: %s", (unsigned long long)seed, k,
                     sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        check_trial(s, t, k, true, seed);
        for (int j = 0; j < k; j++)
            check_trial(s, &trials[j], j, false, seed);
        /* nothing is left streaming, no piece is left over */
        assert_int_equal(sqlite3_prepare_v2(s->db,
                                            "SELECT (SELECT count(*) FROM messages"
                                            " WHERE status = 'streaming'),"
                                            " (SELECT count(*) FROM chunks)",
                                            -1, &st, NULL),
                         SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(st, 0), 0);
        assert_int_equal(sqlite3_column_int(st, 1), 0);
        sqlite3_finalize(st);
        store_close(s);
    }
    print_message("%d trials, %d killed mid-stream (seed %llu)\n", TRIALS, mid_stream,
                  (unsigned long long)seed);
    assert_true(mid_stream >= TRIALS / 2);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigkill_while_streaming_loses_nothing_committed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
