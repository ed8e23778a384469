/* The history store: opening, files and migrations, every API call,
 * streaming and recovery, FTS search, statistics, byte-exact exports, and
 * two connections writing at once. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "history/store_int.h"
#include "tests/fixture.h"

#define T0 1764356400000LL     /* 2025-11-28T19:00:00Z */

static char tmpdir[64];

static int setup_dir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/ponder-store-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_dir(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *tpath(const char *name)
{
    static char buf[4][256];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof buf[i], "%s/%s", tmpdir, name);
    return buf[i];
}

static int64_t fixed_clock(void *ctx)
{
    return *(int64_t *)ctx;
}

#define OK(call)                                                                  \
    do {                                                                          \
        int ok_rc_ = (call);                                                      \
        if (ok_rc_)                                                               \
            fail_msg("%s: %d (%s)", #call, ok_rc_, err);                          \
    } while (0)

static struct store *open_mem(int64_t *clock)
{
    char err[256] = "";
    struct store *s = NULL;
    OK(store_open(":memory:", STORE_CREATE, &s, err, sizeof err));
    if (clock)
        store_set_clock(s, fixed_clock, clock);
    return s;
}

static int64_t q_int(struct store *s, const char *sql)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(s->db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* ---- files, versions, damage ---- */

static void test_open_creates_private_wal_file_and_folders(void **state)
{
    (void)state;
    char err[256] = "";
    struct store *s = NULL;
    const char *path = tpath("a/b/ponder.db");
    OK(store_open(path, STORE_CREATE, &s, err, sizeof err));
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(tpath("a/b"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    char wal[300];
    snprintf(wal, sizeof wal, "%s-wal", path);
    assert_int_equal(stat(wal, &st), 0);       /* SQLite's side files are as private */
    assert_int_equal(st.st_mode & 0777, 0600);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(s->db, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal(sqlite3_column_text(q, 0), "wal");
    sqlite3_finalize(q);
    assert_int_equal(q_int(s, "PRAGMA foreign_keys"), 1);
    assert_int_equal(q_int(s, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
    assert_int_equal(q_int(s, "PRAGMA application_id"), STORE_APPLICATION_ID);
    store_close(s);
    /* and again: opens what is there */
    OK(store_open(path, 0, &s, err, sizeof err));
    store_close(s);
    store_close(NULL);
}

static void test_open_missing_without_create_is_enoent(void **state)
{
    (void)state;
    char err[256] = "";
    struct store *s = (struct store *)1;
    assert_int_equal(store_open(tpath("nope.db"), 0, &s, err, sizeof err), ENOENT);
    assert_null(s);
    assert_non_null(strstr(err, "nope.db"));
    assert_int_equal(store_open(tmpdir, STORE_CREATE, &s, err, sizeof err), EISDIR);
}

static void test_default_path_follows_xdg_then_home(void **state)
{
    (void)state;
    char buf[256], err[256] = "";
    OK(store_default_path("/x/data", "/home/u", buf, sizeof buf, err, sizeof err));
    assert_string_equal(buf, "/x/data/ponder/ponder.db");
    OK(store_default_path("", "/home/u", buf, sizeof buf, err, sizeof err));
    assert_string_equal(buf, "/home/u/.local/share/ponder/ponder.db");
    OK(store_default_path(NULL, "/home/u", buf, sizeof buf, err, sizeof err));
    assert_string_equal(buf, "/home/u/.local/share/ponder/ponder.db");
    assert_int_equal(store_default_path(NULL, NULL, buf, sizeof buf, err, sizeof err), ENOENT);
    assert_int_equal(store_default_path("/x", NULL, buf, 8, err, sizeof err), ENAMETOOLONG);
}

static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *e = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &e) != SQLITE_OK)
        fail_msg("%s: %s", sql, e);
    sqlite3_close(db);
}

static int count(void *ctx, const struct store_hit *h)
{
    (void)h;
    (*(int *)ctx)++;
    return 0;
}

static void test_migration_upgrades_v1_with_data_intact(void **state)
{
    (void)state;
    const char *path = tpath("v1.db");
    raw_exec(path, store_migrations[0]);
    raw_exec(path,
             "PRAGMA user_version = 1;"
             "INSERT INTO models VALUES (1, '/m/q.gguf', 'Qwen-1.5B', 'qwen2', 1500000000, 'Q4_K_M',"
             "  900000000, 'abc', 10, 20);"
             "INSERT INTO conversations VALUES (1, 'Old talk', 100, 200, 1, NULL);"
             "INSERT INTO messages VALUES (1, 1, 0, 'user', 'what is a zebra', '', NULL,"
             "  'complete', '', '', 100);"
             "INSERT INTO messages VALUES (2, 1, 1, 'assistant', 'a striped horse',"
             "  'think about stripes', 1, 'complete', '', '', 150);"
             "INSERT INTO runs(id, message_id, model_id, backend, device, gen_tps, seed, created)"
             "  VALUES (1, 2, 1, 'cpu', 'EPYC', 42.5, -1, 150);");
    char err[256] = "";
    struct store *s = NULL;
    OK(store_open(path, 0, &s, err, sizeof err));
    assert_int_equal(q_int(s, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
    struct store_conv *c = NULL;
    OK(store_conv_load(s, 1, &c, err, sizeof err));
    assert_string_equal(c->title, "Old talk");
    assert_true(c->pinned);
    assert_int_equal(c->n, 2);
    assert_string_equal(c->msgs[0].answer, "what is a zebra");
    assert_string_equal(c->msgs[1].answer, "a striped horse");
    assert_string_equal(c->msgs[1].reasoning, "think about stripes");
    assert_string_equal(c->msgs[1].model_name, "Qwen-1.5B");
    assert_true(c->msgs[1].has_run);
    assert_string_equal(c->msgs[1].run.driver, "");
    assert_true(c->msgs[1].run.seed == UINT64_MAX);
    assert_close(c->msgs[1].run.gen_tps, 42.5, 0);
    /* runs from before schema 3 had no thinking budget */
    assert_int_equal(c->msgs[1].run.think_budget, 0);
    assert_string_equal(c->msgs[1].run.think_mode, "");
    assert_false(c->msgs[1].run.think_off);
    assert_false(c->msgs[1].run.budget_reached);
    store_conv_free(c);
    /* the new FTS index covers the old messages */
    int n = 0;
    OK(store_search(s, "stripes", STORE_SEARCH_REASONING, 0, count, &n, err, sizeof err));
    assert_int_equal(n, 1);
    store_close(s);
}

static void test_migration_v2_to_v3_adds_the_thinking_budget(void **state)
{
    (void)state;
    const char *path = tpath("v2.db");
    raw_exec(path, store_migrations[0]);
    raw_exec(path, store_migrations[1]);
    raw_exec(path,
             "PRAGMA user_version = 2;"
             "INSERT INTO conversations VALUES (1, 'Old talk', 100, 200, 0, NULL);"
             "INSERT INTO messages(id, conversation_id, seq, role, answer, status, created)"
             "  VALUES (1, 1, 0, 'assistant', 'yes', 'complete', 100);"
             "INSERT INTO runs(id, message_id, backend, driver, created)"
             "  VALUES (1, 1, 'cpu', 'tui', 150);");
    char err[256] = "";
    struct store *s = NULL;
    OK(store_open(path, 0, &s, err, sizeof err));
    assert_int_equal(q_int(s, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
    assert_int_equal(q_int(s, "SELECT think_budget + think_off + budget_reached FROM runs"), 0);
    struct store_run r = {.message_id = 1, .backend = "cpu", .think_budget = 4096,
                          .think_mode = "soft", .think_off = true, .budget_reached = false};
    OK(store_run_add(s, &r, NULL, err, sizeof err));
    assert_int_equal(q_int(s, "SELECT count(*) FROM runs WHERE think_budget = 4096"
                              " AND think_mode = 'soft' AND think_off = 1 AND budget_reached = 0"),
                     1);
    struct store_conv *c = NULL;
    OK(store_conv_load(s, 1, &c, err, sizeof err));
    assert_int_equal(c->msgs[0].run.think_budget, 4096);   /* the newest run */
    assert_true(c->msgs[0].run.think_off);
    store_conv_free(c);
    store_close(s);
}

static void test_migration_v3_to_v4_moves_the_load_times_out_of_settings(void **state)
{
    (void)state;
    const char *path = tpath("v3.db");
    for (int v = 0; v < 3; v++)
        raw_exec(path, store_migrations[v]);
    raw_exec(path,
             "PRAGMA user_version = 3;"
             "INSERT INTO settings VALUES ('load_ms /m/a b.gguf', '2750');"
             "INSERT INTO settings VALUES ('load_ms remote:http://h:1#big', '180');"
             "INSERT INTO settings VALUES ('load_ms /m/bad.gguf', 'not a number');"
             "INSERT INTO settings VALUES ('loadXms /m/c.gguf', '5');"
             "INSERT INTO settings VALUES ('advisor.measurements', '[]');");
    char err[256] = "";
    struct store *s = NULL;
    OK(store_open(path, 0, &s, err, sizeof err));
    assert_int_equal(q_int(s, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
    double ms = 0;
    OK(store_model_load_get(s, "/m/a b.gguf", NULL, &ms, err, sizeof err));
    assert_close(ms, 2750, 0);
    OK(store_model_load_get(s, "remote:http://h:1#big", NULL, &ms, err, sizeof err));
    assert_close(ms, 180, 0);
    assert_int_equal(store_model_load_get(s, "/m/bad.gguf", NULL, &ms, err, sizeof err), ENOENT);
    assert_int_equal(store_model_load_get(s, "/m/c.gguf", NULL, &ms, err, sizeof err), ENOENT);
    /* what moved left the settings; nothing else did */
    assert_int_equal(q_int(s, "SELECT count(*) FROM settings WHERE key LIKE 'load_ms /m/a%'"
                              " OR key LIKE 'load_ms remote%'"), 0);
    assert_int_equal(q_int(s, "SELECT count(*) FROM settings"), 3);
    store_close(s);
}

static void test_model_loads_by_path_and_by_fingerprint(void **state)
{
    (void)state;
    int64_t clock = T0;
    struct store *s = open_mem(&clock);
    char err[256] = "";
    double ms = -1;
    assert_int_equal(store_model_load_get(s, "/m/a.gguf", NULL, &ms, err, sizeof err), ENOENT);
    assert_non_null(strstr(err, "/m/a.gguf"));
    assert_close(ms, 0, 0);
    OK(store_model_load_set(s, "/m/a.gguf", "0123456789abcdef0123456789abcdef", 2750, err,
                            sizeof err));
    OK(store_model_load_get(s, "/m/a.gguf", NULL, &ms, err, sizeof err));
    assert_close(ms, 2750, 0);
    clock += 1000;
    OK(store_model_load_set(s, "/m/a.gguf", "0123456789abcdef0123456789abcdef", 900, err,
                            sizeof err));
    OK(store_model_load_get(s, "/m/a.gguf", NULL, &ms, err, sizeof err));
    assert_close(ms, 900, 0);                   /* the latest load */
    /* the same file under another path: found by its fingerprint, before
     * the other path's own record */
    clock += 1000;
    OK(store_model_load_set(s, "/n/other.gguf", NULL, 50, err, sizeof err));
    OK(store_model_load_get(s, "/n/other.gguf", "0123456789abcdef0123456789abcdef", &ms, err,
                            sizeof err));
    assert_close(ms, 900, 0);
    OK(store_model_load_get(s, "/n/other.gguf", "ffffffffffffffffffffffffffffffff", &ms, err,
                            sizeof err));
    assert_close(ms, 50, 0);
    OK(store_model_load_get(s, NULL, "0123456789abcdef0123456789abcdef", &ms, err, sizeof err));
    assert_close(ms, 900, 0);
    assert_int_equal(store_model_load_get(s, NULL, NULL, &ms, err, sizeof err), ENOENT);
    assert_int_equal(store_model_load_set(s, "", NULL, 5, err, sizeof err), EINVAL);
    assert_int_equal(store_model_load_set(s, "/m/a.gguf", NULL, -1, err, sizeof err), EINVAL);
    assert_int_equal(store_model_load_set(s, "/m/a.gguf", NULL, 1e12, err, sizeof err), EINVAL);
    store_close(s);
}

/* A run of model_id at gen_tps, n generated tokens, created at t. */
static void speed_run(struct store *s, int64_t model_id, const char *backend, int gpu_layers,
                      double gen_tps, int n, int64_t t)
{
    char err[256] = "";
    struct store_run r = {.model_id = model_id, .backend = backend, .n_gpu_layers = gpu_layers,
                          .n_threads = 4, .reasoning_tokens = n / 2, .answer_tokens = n - n / 2,
                          .gen_tps = gen_tps, .prompt_tps = 10 * gen_tps, .created = t};
    OK(store_run_add(s, &r, NULL, err, sizeof err));
}

static void test_model_speed_is_by_file_not_by_name(void **state)
{
    (void)state;
    int64_t clock = T0;
    struct store *s = open_mem(&clock);
    char err[256] = "";
    /* two quantizations of one model: one name, two files */
    static const char fq8[] = "0123456789abcdef0123456789abcdef",
                      fq4[] = "fedcba9876543210fedcba9876543210";
    struct store_model q8 = {.path = "/m/r1-q8_0.gguf", .name = "R1-Distill-Qwen-1.5B",
                             .arch = "qwen2", .weight_type = "Q8_0", .fingerprint = fq8};
    struct store_model q4 = q8;
    q4.path = "/m/r1-q4_k_m.gguf";
    q4.weight_type = "Q4_K_M";
    q4.fingerprint = fq4;
    int64_t id8 = 0, id4 = 0;
    OK(store_model_use(s, &q8, &id8, err, sizeof err));
    clock += 10;
    OK(store_model_use(s, &q4, &id4, err, sizeof err));
    speed_run(s, id8, "cpu", 0, 20, 100, T0 + 1);
    speed_run(s, id8, "cpu", 0, 24, 100, T0 + 2);
    speed_run(s, id8, "cpu", 0, 22, 100, T0 + 3);
    speed_run(s, id8, "cpu", 0, 900, 5, T0 + 4);       /* too short to count */
    speed_run(s, id8, "vulkan", 28, 80, 100, T0 + 5);
    speed_run(s, id4, "cpu", 0, 35, 100, T0 + 6);
    struct store_speed sp;
    OK(store_model_speed(s, fq8, "cpu", -1, 0, &sp, err, sizeof err));
    assert_int_equal(sp.n_runs, 3);
    assert_close(sp.gen_tps_median, 22, 0);
    assert_close(sp.prompt_tps_median, 220, 0);
    assert_int_equal(sp.n_gpu_layers, 0);
    assert_int_equal(sp.n_threads, 4);
    /* the latest two only: 24 and 22 */
    OK(store_model_speed(s, fq8, "cpu", -1, 2, &sp, err, sizeof err));
    assert_int_equal(sp.n_runs, 2);
    assert_close(sp.gen_tps_median, 23, 1e-12);
    /* any backend; the device runs alone */
    OK(store_model_speed(s, fq8, NULL, -1, 0, &sp, err, sizeof err));
    assert_int_equal(sp.n_runs, 4);
    assert_int_equal(sp.n_gpu_layers, 28);          /* the latest's */
    OK(store_model_speed(s, fq8, "vulkan", 28, 0, &sp, err, sizeof err));
    assert_int_equal(sp.n_runs, 1);
    assert_close(sp.gen_tps_median, 80, 0);
    OK(store_model_speed(s, fq8, "vulkan", 10, 0, &sp, err, sizeof err));
    assert_int_equal(sp.n_runs, 0);
    OK(store_model_speed(s, fq4, "cpu", -1, 0, &sp, err, sizeof err));
    assert_int_equal(sp.n_runs, 1);
    assert_close(sp.gen_tps_median, 35, 0);
    OK(store_model_speed(s, "00000000000000000000000000000000", NULL, -1, 0, &sp, err,
                         sizeof err));
    assert_int_equal(sp.n_runs, 0);
    assert_close(sp.gen_tps_median, 0, 0);
    assert_int_equal(store_model_speed(s, "", NULL, -1, 0, &sp, err, sizeof err), EINVAL);
    store_close(s);
}

struct model_names {
    char names[4][64];
    int n;
};

static int model_name_fn(void *ctx, const struct store_model *m)
{
    struct model_names *mn = ctx;
    snprintf(mn->names[mn->n++], sizeof mn->names[0], "%s %s", m->path, m->fingerprint);
    return mn->n == 4;
}

static void test_model_list_is_latest_used_first(void **state)
{
    (void)state;
    int64_t clock = T0;
    struct store *s = open_mem(&clock);
    char err[256] = "";
    struct store_model a = {.path = "/m/a.gguf", .name = "A", .fingerprint = "aa"};
    struct store_model b = {.path = "/m/b.gguf", .name = "B", .fingerprint = "bb"};
    OK(store_model_use(s, &a, NULL, err, sizeof err));
    clock += 10;
    OK(store_model_use(s, &b, NULL, err, sizeof err));
    struct model_names mn = {0};
    OK(store_model_list(s, 0, model_name_fn, &mn, err, sizeof err));
    assert_int_equal(mn.n, 2);
    assert_string_equal(mn.names[0], "/m/b.gguf bb");
    assert_string_equal(mn.names[1], "/m/a.gguf aa");
    clock += 10;
    OK(store_model_use(s, &a, NULL, err, sizeof err));
    memset(&mn, 0, sizeof mn);
    OK(store_model_list(s, 1, model_name_fn, &mn, err, sizeof err));
    assert_int_equal(mn.n, 1);
    assert_string_equal(mn.names[0], "/m/a.gguf aa");
    store_close(s);
}

static void test_newer_schema_is_refused_untouched(void **state)
{
    (void)state;
    const char *path = tpath("future.db");
    char err[256] = "";
    struct store *s = NULL;
    OK(store_open(path, STORE_CREATE, &s, err, sizeof err));
    store_close(s);
    raw_exec(path, "PRAGMA journal_mode = DELETE; PRAGMA user_version = 99;");
    size_t n1, n2;
    char *before = fx_read_file(path, &n1);
    assert_non_null(before);
    assert_int_equal(store_open(path, 0, &s, err, sizeof err), ENOTSUP);
    assert_null(s);
    assert_non_null(strstr(err, "newer ponder"));
    assert_non_null(strstr(err, "99"));
    char *after = fx_read_file(path, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(before, after, n1);
    free(before);
    free(after);
}

static void test_damaged_or_foreign_files_are_reported(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        char content[160];      /* the first 100 bytes are written */
        int code;
        const char *says;
    } cases[] = {
        {"garbage", "this is not a database, just some words in a file......................"
                    "..............................................................",
         EBADMSG, "damaged"},
        {"header-only", "SQLite format 3\0\x10\0\x01\x01\0@  \0\0\0\x01\0\0\0\x05", EBADMSG, ""},
    };
    char err[256] = "";
    struct store *s = NULL;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *path = tpath(cases[i].name);
        FILE *f = fopen(path, "wb");
        fwrite(cases[i].content, 1, 100, f);
        fclose(f);
        err[0] = 0;
        int rc = store_open(path, 0, &s, err, sizeof err);
        if (rc != cases[i].code)
            fail_msg("case %s: got %d (%s)", cases[i].name, rc, err);
        if (!strstr(err, path) || !strstr(err, cases[i].says))
            fail_msg("case %s: unclear message '%s'", cases[i].name, err);
        assert_null(s);
    }
    /* another program's SQLite database */
    const char *other = tpath("other.db");
    raw_exec(other, "CREATE TABLE notes(x)");
    assert_int_equal(store_open(other, 0, &s, err, sizeof err), EBADMSG);
    assert_non_null(strstr(err, "not ponder's"));
}

/* A store whose pages (not its header) are damaged: opening or reading it
 * reports EBADMSG and says the file is damaged; nothing crashes. */
static void test_damaged_pages_are_reported(void **state)
{
    (void)state;
    const char *path = tpath("pages.db");
    char err[256] = "";
    struct store *s = NULL;
    int64_t conv;
    OK(store_open(path, STORE_CREATE, &s, err, sizeof err));
    for (int i = 0; i < 50; i++) {
        OK(store_conv_create(s, NULL, &conv, err, sizeof err));
        OK(store_message_add(s, conv, STORE_ROLE_USER, "some words to fill the pages with text",
                             "and some reasoning", 0, NULL, err, sizeof err));
    }
    store_close(s);     /* the last close checkpoints the WAL into the file */
    size_t n;
    char *db = fx_read_file(path, &n);
    assert_non_null(db);
    assert_true(n > 4 * 4096);
    for (size_t i = 4096; i < n; i++)   /* every page but the first */
        db[i] = (char)(i * 131 + 7);
    FILE *f = fopen(path, "wb");
    fwrite(db, 1, n, f);
    fclose(f);
    free(db);
    int rc = store_open(path, 0, &s, err, sizeof err);
    if (rc == 0) {      /* the header survived: reading finds the damage */
        struct store_conv *c = NULL;
        rc = store_conv_load(s, conv, &c, err, sizeof err);
        store_conv_free(c);
        store_close(s);
    }
    if (rc != EBADMSG)
        fail_msg("damaged pages: got %d (%s)", rc, err);
    assert_non_null(strstr(err, "damaged"));
    assert_non_null(strstr(err, path));
}

static void test_read_only_open_wants_the_current_schema(void **state)
{
    (void)state;
    const char *path = tpath("v1ro.db");
    raw_exec(path, store_migrations[0]);
    raw_exec(path, "PRAGMA user_version = 1");
    char err[256] = "";
    struct store *s = NULL;
    assert_int_equal(store_open(path, STORE_READONLY, &s, err, sizeof err), ENOTSUP);
    assert_non_null(strstr(err, "needs upgrading"));
    OK(store_open(path, 0, &s, err, sizeof err));
    store_close(s);
    OK(store_open(path, STORE_READONLY, &s, err, sizeof err));
    store_close(s);
}

static void test_read_only_store_reports_writes_clearly(void **state)
{
    (void)state;
    const char *path = tpath("ro.db");
    char err[256] = "";
    struct store *s = NULL;
    int64_t id;
    OK(store_open(path, STORE_CREATE, &s, err, sizeof err));
    OK(store_conv_create(s, "kept", &id, err, sizeof err));
    store_close(s);
    OK(store_open(path, STORE_READONLY, &s, err, sizeof err));
    struct store_conv *c = NULL;
    OK(store_conv_load(s, id, &c, err, sizeof err));
    assert_string_equal(c->title, "kept");
    store_conv_free(c);
    int rc = store_conv_create(s, "no", &id, err, sizeof err);
    assert_int_equal(rc, EROFS);
    assert_non_null(strstr(err, "read-only"));
    store_close(s);
    if (geteuid() != 0) {
        chmod(path, 0400);
        assert_int_equal(store_open(path, 0, &s, err, sizeof err), EACCES);
        assert_non_null(strstr(err, "permissions"));
        chmod(path, 0600);
    }
}

/* ---- conversations ---- */

static void test_conversation_rename_pin_delete_undo_purge(void **state)
{
    (void)state;
    int64_t now = T0;
    struct store *s = open_mem(&now);
    char err[256] = "";
    int64_t a, b;
    OK(store_conv_create(s, "first", &a, err, sizeof err));
    now += 1000;
    OK(store_conv_create(s, NULL, &b, err, sizeof err));
    OK(store_conv_rename(s, a, "renamed", err, sizeof err));
    assert_int_equal(store_conv_rename(s, a, "", err, sizeof err), EINVAL);
    assert_int_equal(store_conv_rename(s, 999, "x", err, sizeof err), ENOENT);
    OK(store_conv_pin(s, a, true, err, sizeof err));
    struct store_conv *c = NULL;
    OK(store_conv_load(s, a, &c, err, sizeof err));
    assert_string_equal(c->title, "renamed");
    assert_true(c->pinned);
    store_conv_free(c);

    OK(store_conv_delete(s, a, err, sizeof err));
    assert_int_equal(store_conv_load(s, a, &c, err, sizeof err), ENOENT);
    assert_null(c);
    assert_int_equal(store_conv_delete(s, a, err, sizeof err), ENOENT);
    OK(store_conv_undelete(s, a, err, sizeof err));
    OK(store_conv_load(s, a, &c, err, sizeof err));
    store_conv_free(c);
    assert_int_equal(store_conv_undelete(s, a, err, sizeof err), ENOENT);
    /* purge takes only deleted ones */
    assert_int_equal(store_conv_purge(s, a, err, sizeof err), ENOENT);
    OK(store_message_add(s, a, STORE_ROLE_USER, "hello", NULL, 0, NULL, err, sizeof err));
    OK(store_conv_delete(s, a, err, sizeof err));
    OK(store_conv_purge(s, a, err, sizeof err));
    assert_int_equal(store_conv_undelete(s, a, err, sizeof err), ENOENT);
    assert_int_equal(q_int(s, "SELECT count(*) FROM messages"), 0);
    OK(store_conv_delete(s, b, err, sizeof err));
    OK(store_conv_purge(s, 0, err, sizeof err));
    assert_int_equal(q_int(s, "SELECT count(*) FROM conversations"), 0);
    store_close(s);
}

static void test_title_comes_from_first_user_message_never_reasoning(void **state)
{
    (void)state;
    struct store *s = open_mem(NULL);
    char err[256] = "";
    int64_t c1, m;
    OK(store_conv_create(s, NULL, &c1, err, sizeof err));
    OK(store_message_add(s, c1, STORE_ROLE_SYSTEM, "You are terse.", NULL, 0, NULL, err,
                         sizeof err));
    OK(store_reply_begin(s, c1, 0, &m, err, sizeof err));
    OK(store_reply_append(s, m, STORE_PART_REASONING, "secret thoughts", 15, err, sizeof err));
    OK(store_reply_finish(s, m, STORE_STATUS_COMPLETE, NULL, NULL, err, sizeof err));
    struct store_conv *c = NULL;
    OK(store_conv_load(s, c1, &c, err, sizeof err));
    assert_string_equal(c->title, "");
    store_conv_free(c);
    OK(store_message_add(s, c1, STORE_ROLE_USER, "  \n Why is the sky blue?  \nTell me more.",
                         NULL, 0, NULL, err, sizeof err));
    OK(store_message_add(s, c1, STORE_ROLE_USER, "second question", NULL, 0, NULL, err,
                         sizeof err));
    OK(store_conv_load(s, c1, &c, err, sizeof err));
    assert_string_equal(c->title, "Why is the sky blue?");
    assert_int_equal(c->n, 4);
    for (size_t i = 0; i < c->n; i++)
        assert_int_equal(c->msgs[i].seq, (int)i);
    store_conv_free(c);

    /* 60 characters at most, never half a UTF-8 character */
    char longq[400] = "";
    for (int i = 0; i < 70; i++)
        strcat(longq, "é");
    int64_t c2;
    OK(store_conv_create(s, "", &c2, err, sizeof err));
    OK(store_message_add(s, c2, STORE_ROLE_USER, longq, NULL, 0, NULL, err, sizeof err));
    OK(store_conv_load(s, c2, &c, err, sizeof err));
    assert_int_equal(strlen(c->title), 120);
    store_conv_free(c);
    assert_int_equal(store_message_add(s, 999, STORE_ROLE_USER, "x", NULL, 0, NULL, err,
                                       sizeof err),
                     ENOENT);
    store_close(s);
}

struct listed {
    int n;
    int64_t ids[8];
    double tps[8];
    int msgs[8];
    char models[8][64];
};

static int collect_list(void *ctx, const struct store_conv_info *c)
{
    struct listed *l = ctx;
    if (l->n < 8) {
        l->ids[l->n] = c->id;
        l->tps[l->n] = c->median_gen_tps;
        l->msgs[l->n] = c->n_messages;
        snprintf(l->models[l->n], sizeof l->models[0], "%s", c->models);
    }
    l->n++;
    return 0;
}

static int64_t add_model(struct store *s, const char *name, const char *fp)
{
    char err[256] = "";
    int64_t id = 0;
    struct store_model m = {.path = "/models/x.gguf", .name = name, .arch = "qwen2",
                            .n_params = 1777088000, .weight_type = "Q4_K_M",
                            .file_size = 1117320736, .fingerprint = fp};
    OK(store_model_use(s, &m, &id, err, sizeof err));
    return id;
}

static void add_reply(struct store *s, int64_t conv, int64_t model, const char *answer,
                      double tps, const char *backend, const char *device, double pp,
                      double ttft)
{
    char err[256] = "";
    int64_t m;
    OK(store_reply_begin(s, conv, model, &m, err, sizeof err));
    OK(store_reply_append(s, m, STORE_PART_ANSWER, answer, strlen(answer), err, sizeof err));
    struct store_run r = {.model_id = model, .backend = backend, .device = device,
                          .gen_tps = tps, .prompt_tps = pp, .ttft_ms = ttft};
    OK(store_reply_finish(s, m, STORE_STATUS_COMPLETE, NULL, &r, err, sizeof err));
}

static void test_list_is_pinned_then_newest_with_models_count_and_median(void **state)
{
    (void)state;
    int64_t now = T0;
    struct store *s = open_mem(&now);
    char err[256] = "";
    int64_t qwen = add_model(s, "Qwen-1.5B", "f1"), llama = add_model(s, "Llama-8B", "f2");
    int64_t a, b, c, d;
    OK(store_conv_create(s, "a", &a, err, sizeof err));
    OK(store_conv_create(s, "b", &b, err, sizeof err));
    OK(store_conv_create(s, "c", &c, err, sizeof err));
    OK(store_conv_create(s, "d", &d, err, sizeof err));
    now += 1000;
    OK(store_message_add(s, a, STORE_ROLE_USER, "q", NULL, 0, NULL, err, sizeof err));
    add_reply(s, a, qwen, "r1", 10, "cpu", "x", 0, 0);
    add_reply(s, a, llama, "r2", 30, "cpu", "x", 0, 0);
    add_reply(s, a, qwen, "r3", 20, "cpu", "x", 0, 0);
    now += 1000;
    OK(store_message_add(s, b, STORE_ROLE_USER, "q", NULL, 0, NULL, err, sizeof err));
    add_reply(s, b, qwen, "r", 7, "cpu", "x", 0, 0);
    add_reply(s, b, qwen, "r", 8, "cpu", "x", 0, 0);
    OK(store_conv_pin(s, c, true, err, sizeof err));
    OK(store_conv_delete(s, d, err, sizeof err));

    struct listed l = {0};
    OK(store_conv_list(s, 0, collect_list, &l, err, sizeof err));
    assert_int_equal(l.n, 3);
    assert_int_equal(l.ids[0], c);   /* pinned */
    assert_int_equal(l.ids[1], b);   /* newest */
    assert_int_equal(l.ids[2], a);
    assert_int_equal(l.msgs[2], 4);
    assert_string_equal(l.models[2], "Llama-8B, Qwen-1.5B");
    assert_close(l.tps[2], 20, 1e-9);
    assert_close(l.tps[1], 7.5, 1e-9);
    assert_close(l.tps[0], 0, 0);
    assert_string_equal(l.models[0], "");
    memset(&l, 0, sizeof l);
    OK(store_conv_list(s, 2, collect_list, &l, err, sizeof err));
    assert_int_equal(l.n, 2);
    store_close(s);
}

/* ---- streaming replies and recovery ---- */

static void test_reply_streams_then_completes_with_its_run(void **state)
{
    (void)state;
    int64_t now = T0;
    struct store *s = open_mem(&now);
    char err[256] = "";
    int64_t conv, msg, model = add_model(s, "Qwen-1.5B", "fp");
    OK(store_conv_create(s, NULL, &conv, err, sizeof err));
    OK(store_message_add(s, conv, STORE_ROLE_USER, "2+2?", NULL, 0, NULL, err, sizeof err));
    OK(store_reply_begin(s, conv, model, &msg, err, sizeof err));
    static const struct { enum store_part part; const char *text; } pieces[] = {
        {STORE_PART_REASONING, "The user "}, {STORE_PART_REASONING, "asks 2+2."},
        {STORE_PART_ANSWER, "It is "}, {STORE_PART_ANSWER, ""}, {STORE_PART_ANSWER, "4."},
    };
    for (size_t i = 0; i < 5; i++)
        OK(store_reply_append(s, msg, pieces[i].part, pieces[i].text, strlen(pieces[i].text), err,
                              sizeof err));
    /* loading while it streams shows what is committed */
    struct store_conv *c = NULL;
    OK(store_conv_load(s, conv, &c, err, sizeof err));
    assert_int_equal(c->msgs[1].status, STORE_STATUS_STREAMING);
    assert_string_equal(c->msgs[1].reasoning, "The user asks 2+2.");
    assert_string_equal(c->msgs[1].answer, "It is 4.");
    assert_false(c->msgs[1].has_run);
    store_conv_free(c);
    assert_int_equal(q_int(s, "SELECT answer = '' FROM messages WHERE role = 'assistant'"), 1);

    struct store_run r = {
        .model_id = model, .backend = "cpu", .device = "AMD EPYC", .driver = "n/a",
        .n_ctx = 4096, .n_threads = 16, .n_gpu_layers = 0, .prompt_tokens = 12,
        .reasoning_tokens = 5, .answer_tokens = 3, .load_ms = 1234.5, .prompt_ms = 20,
        .ttft_ms = 25.25, .reasoning_ms = 100, .answer_ms = 60, .prompt_tps = 600,
        .gen_tps = 50, .stop_reason = "eos", .temp = 0.6f, .top_k = 40, .top_p = 0.95f,
        .min_p = 0.05f, .repeat_penalty = 1.1f, .seed = UINT64_MAX - 1,
        .think_budget = 256, .think_mode = "hard", .budget_reached = true,
    };
    OK(store_reply_finish(s, msg, STORE_STATUS_COMPLETE, NULL, &r, err, sizeof err));
    assert_int_equal(q_int(s, "SELECT count(*) FROM chunks"), 0);
    OK(store_conv_load(s, conv, &c, err, sizeof err));
    const struct store_message *m = &c->msgs[1];
    assert_int_equal(m->status, STORE_STATUS_COMPLETE);
    assert_string_equal(m->answer, "It is 4.");
    assert_string_equal(m->reasoning, "The user asks 2+2.");
    assert_string_equal(m->model_name, "Qwen-1.5B");
    assert_true(m->has_run);
    assert_int_equal(m->run.message_id, msg);
    assert_int_equal(m->run.model_id, model);
    assert_string_equal(m->run.backend, "cpu");
    assert_string_equal(m->run.device, "AMD EPYC");
    assert_string_equal(m->run.driver, "n/a");
    assert_string_equal(m->run.stop_reason, "eos");
    assert_int_equal(m->run.n_ctx, 4096);
    assert_int_equal(m->run.n_threads, 16);
    assert_int_equal(m->run.prompt_tokens, 12);
    assert_int_equal(m->run.reasoning_tokens, 5);
    assert_int_equal(m->run.answer_tokens, 3);
    assert_close(m->run.load_ms, 1234.5, 0);
    assert_close(m->run.ttft_ms, 25.25, 0);
    assert_close(m->run.gen_tps, 50, 0);
    assert_close(m->run.prompt_tps, 600, 0);
    assert_close(m->run.temp, 0.6f, 0);
    assert_close(m->run.min_p, 0.05f, 0);
    assert_int_equal(m->run.top_k, 40);
    assert_true(m->run.seed == UINT64_MAX - 1);
    assert_int_equal(m->run.created, T0);
    assert_int_equal(m->run.think_budget, 256);
    assert_string_equal(m->run.think_mode, "hard");
    assert_false(m->run.think_off);
    assert_true(m->run.budget_reached);
    store_conv_free(c);

    /* a finished reply cannot be finished or streamed into again */
    assert_int_equal(store_reply_finish(s, msg, STORE_STATUS_COMPLETE, NULL, NULL, err, sizeof err),
                     EINVAL);
    assert_non_null(strstr(err, "not streaming"));
    assert_int_equal(store_reply_finish(s, msg, STORE_STATUS_STREAMING, NULL, NULL, err,
                                        sizeof err),
                     EINVAL);
    assert_int_equal(store_reply_finish(s, 9999, STORE_STATUS_COMPLETE, NULL, NULL, err,
                                        sizeof err),
                     ENOENT);
    assert_int_equal(store_reply_append(s, 9999, STORE_PART_ANSWER, "x", 1, err, sizeof err),
                     EINVAL);
    assert_int_equal(store_reply_append(s, msg, STORE_PART_ANSWER, "x", 1, err, sizeof err),
                     EINVAL);
    assert_non_null(strstr(err, "not streaming"));
    assert_int_equal(q_int(s, "SELECT count(*) FROM chunks"), 0);

    /* an error ends a reply with its message; a run may stand alone */
    OK(store_reply_begin(s, conv, model, &msg, err, sizeof err));
    OK(store_reply_append(s, msg, STORE_PART_ANSWER, "par", 3, err, sizeof err));
    OK(store_reply_finish(s, msg, STORE_STATUS_ERROR, "device lost", NULL, err, sizeof err));
    OK(store_conv_load(s, conv, &c, err, sizeof err));
    assert_int_equal(c->msgs[2].status, STORE_STATUS_ERROR);
    assert_string_equal(c->msgs[2].error, "device lost");
    assert_string_equal(c->msgs[2].answer, "par");
    store_conv_free(c);
    int64_t run_id = 0;
    struct store_run lone = {.backend = "cpu", .gen_tps = 3};
    OK(store_run_add(s, &lone, &run_id, err, sizeof err));
    assert_true(run_id > 0);
    store_close(s);
}

static void test_recovery_marks_dead_writers_interrupted_and_keeps_text(void **state)
{
    (void)state;
    struct store *s = open_mem(NULL);
    char err[256] = "";
    int64_t conv, dead, live;
    OK(store_conv_create(s, NULL, &conv, err, sizeof err));
    OK(store_reply_begin(s, conv, 0, &dead, err, sizeof err));
    OK(store_reply_append(s, dead, STORE_PART_REASONING, "hmm ", 4, err, sizeof err));
    OK(store_reply_append(s, dead, STORE_PART_ANSWER, "partial", 7, err, sizeof err));
    OK(store_reply_begin(s, conv, 0, &live, err, sizeof err));
    OK(store_reply_append(s, live, STORE_PART_ANSWER, "mine", 4, err, sizeof err));
    /* the first reply's writer: a process from before a reboot */
    char sql[128];
    snprintf(sql, sizeof sql, "UPDATE messages SET writer = 'old-boot/1' WHERE id = %lld",
             (long long)dead);
    assert_int_equal(sqlite3_exec(s->db, sql, NULL, NULL, NULL), SQLITE_OK);
    int n = -1;
    OK(store_recover(s, &n, err, sizeof err));
    assert_int_equal(n, 1);
    struct store_conv *c = NULL;
    OK(store_conv_load(s, conv, &c, err, sizeof err));
    assert_int_equal(c->msgs[0].status, STORE_STATUS_INTERRUPTED);
    assert_string_equal(c->msgs[0].answer, "partial");
    assert_string_equal(c->msgs[0].reasoning, "hmm ");
    assert_int_equal(c->msgs[1].status, STORE_STATUS_STREAMING);   /* ours: alive */
    assert_string_equal(c->msgs[1].answer, "mine");
    store_conv_free(c);
    /* a writer of this boot whose process is gone */
    snprintf(sql, sizeof sql,
             "UPDATE messages SET writer = substr(writer, 1, instr(writer, '/')) || '999999999'"
             " WHERE id = %lld",
             (long long)live);
    assert_int_equal(sqlite3_exec(s->db, sql, NULL, NULL, NULL), SQLITE_OK);
    OK(store_recover(s, &n, err, sizeof err));
    assert_int_equal(n, 1);
    OK(store_recover(s, &n, err, sizeof err));
    assert_int_equal(n, 0);
    store_close(s);
}

/* ---- search ---- */

struct hits {
    int n;
    int64_t msg[8];
    bool in_reasoning[8];
    char snippet[8][160];
};

static int collect_hits(void *ctx, const struct store_hit *h)
{
    struct hits *x = ctx;
    if (x->n < 8) {
        x->msg[x->n] = h->message_id;
        x->in_reasoning[x->n] = h->in_reasoning;
        snprintf(x->snippet[x->n], sizeof x->snippet[0], "%s", h->snippet);
    }
    x->n++;
    return 0;
}

static void test_search_answers_reasoning_or_both_literally(void **state)
{
    (void)state;
    struct store *s = open_mem(NULL);
    char err[256] = "";
    int64_t c1, c2, u, a, a2, streaming;
    OK(store_conv_create(s, NULL, &c1, err, sizeof err));
    OK(store_message_add(s, c1, STORE_ROLE_USER, "Tell me about zebras", NULL, 0, &u, err,
                         sizeof err));
    OK(store_message_add(s, c1, STORE_ROLE_ASSISTANT, "Zebras have black and white stripes.",
                         "The user wants zebra facts; penguins are irrelevant.", 0, &a, err,
                         sizeof err));
    OK(store_conv_create(s, NULL, &c2, err, sizeof err));
    OK(store_message_add(s, c2, STORE_ROLE_ASSISTANT, "Penguins live in the south (mostly).",
                         "", 0, &a2, err, sizeof err));
    OK(store_reply_begin(s, c2, 0, &streaming, err, sizeof err));
    OK(store_reply_append(s, streaming, STORE_PART_ANSWER, "walrus", 6, err, sizeof err));

    static const struct {
        const char *name, *query;
        enum store_search_in in;
        int n;
        bool in_reasoning;
    } cases[] = {
        {"answer word", "stripes", STORE_SEARCH_ANSWERS, 1, false},
        {"not in reasoning", "stripes", STORE_SEARCH_REASONING, 0, false},
        {"reasoning only", "irrelevant", STORE_SEARCH_REASONING, 1, true},
        {"all finds reasoning", "irrelevant", STORE_SEARCH_ALL, 1, true},
        {"all finds both", "penguins", STORE_SEARCH_ALL, 2, false},
        {"every word", "black white", STORE_SEARCH_ANSWERS, 1, false},
        {"every word, one missing", "black purple", STORE_SEARCH_ANSWERS, 0, false},
        {"case and diacritics", "ZÉBRAS", STORE_SEARCH_ALL, 2, false},
        {"fts syntax is literal", "NEAR(\"south\" OR -mostly) AND", STORE_SEARCH_ALL, 0, false},
        {"quotes and parentheses", "(mostly)", STORE_SEARCH_ANSWERS, 1, false},
        {"streaming text is not indexed yet", "walrus", STORE_SEARCH_ALL, 0, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct hits h = {0};
        int rc = store_search(s, cases[i].query, cases[i].in, 0, collect_hits, &h, err,
                              sizeof err);
        if (rc || h.n != cases[i].n)
            fail_msg("case %s: rc %d (%s), %d hits, expected %d", cases[i].name, rc, err, h.n,
                     cases[i].n);
        if (h.n == 1 && h.in_reasoning[0] != cases[i].in_reasoning)
            fail_msg("case %s: in_reasoning %d", cases[i].name, h.in_reasoning[0]);
        if (h.n >= 1 && !strstr(h.snippet[0], STORE_MARK_ON))
            fail_msg("case %s: snippet '%s' marks nothing", cases[i].name, h.snippet[0]);
    }
    struct hits h = {0};
    OK(store_search(s, "stripes", STORE_SEARCH_ANSWERS, 0, collect_hits, &h, err, sizeof err));
    assert_int_equal(h.msg[0], a);
    assert_string_equal(h.snippet[0], "Zebras have black and white \x02stripes\x03.");
    assert_int_equal(store_search(s, "  ", STORE_SEARCH_ALL, 0, collect_hits, &h, err, sizeof err),
                     EINVAL);
    /* finished: found; deleted: not */
    OK(store_reply_finish(s, streaming, STORE_STATUS_COMPLETE, NULL, NULL, err, sizeof err));
    memset(&h, 0, sizeof h);
    OK(store_search(s, "walrus", STORE_SEARCH_ALL, 0, collect_hits, &h, err, sizeof err));
    assert_int_equal(h.n, 1);
    OK(store_conv_delete(s, c2, err, sizeof err));
    memset(&h, 0, sizeof h);
    OK(store_search(s, "walrus", STORE_SEARCH_ALL, 0, collect_hits, &h, err, sizeof err));
    assert_int_equal(h.n, 0);
    /* purged: gone from the index too */
    OK(store_conv_purge(s, 0, err, sizeof err));
    assert_int_equal(q_int(s, "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'walrus'"),
                     0);
    (void)u;
    (void)a2;
    store_close(s);
}

/* ---- statistics ---- */

struct statrows {
    int n;
    struct store_stats row[4];
    char names[4][3][32];
};

static int collect_stats(void *ctx, const struct store_stats *st)
{
    struct statrows *x = ctx;
    if (x->n < 4) {
        x->row[x->n] = *st;
        snprintf(x->names[x->n][0], 32, "%s", st->model);
        snprintf(x->names[x->n][1], 32, "%s", st->backend);
        snprintf(x->names[x->n][2], 32, "%s", st->device);
    }
    x->n++;
    return 0;
}

static void test_stats_per_model_and_device_with_median_and_p95(void **state)
{
    (void)state;
    struct store *s = open_mem(NULL);
    char err[256] = "";
    int64_t conv, qwen = add_model(s, "Qwen-1.5B", "f1"), llama = add_model(s, "Llama-8B", "f2");
    OK(store_conv_create(s, NULL, &conv, err, sizeof err));
    /* gen 10..19 tok/s on the CPU: median 14.5, p95 = 18 + 0.55 = 18.55 */
    for (int i = 0; i < 10; i++)
        add_reply(s, conv, qwen, "x", 10 + i, "cpu", "EPYC", 100 * (i + 1), 50 + i);
    add_reply(s, conv, qwen, "x", 80, "vulkan", "RTX 4090", 2000, 10);
    add_reply(s, conv, llama, "x", 5, "cpu", "EPYC", 50, 400);
    struct statrows x = {0};
    OK(store_stats(s, NULL, collect_stats, &x, err, sizeof err));
    assert_int_equal(x.n, 3);
    assert_string_equal(x.names[0][0], "Llama-8B");
    assert_string_equal(x.names[1][0], "Qwen-1.5B");
    assert_string_equal(x.names[1][1], "cpu");
    assert_string_equal(x.names[1][2], "EPYC");
    assert_int_equal(x.row[1].n_runs, 10);
    assert_close(x.row[1].gen_tps_median, 14.5, 1e-9);
    assert_close(x.row[1].gen_tps_p95, 18.55, 1e-9);
    assert_close(x.row[1].prompt_tps_median, 550, 1e-9);
    assert_close(x.row[1].prompt_tps_p95, 955, 1e-9);
    assert_close(x.row[1].ttft_ms_median, 54.5, 1e-9);
    assert_close(x.row[1].ttft_ms_p95, 58.55, 1e-9);
    assert_string_equal(x.names[2][1], "vulkan");
    assert_int_equal(x.row[2].n_runs, 1);
    assert_close(x.row[2].gen_tps_p95, 80, 0);
    memset(&x, 0, sizeof x);
    OK(store_stats(s, "qwen", collect_stats, &x, err, sizeof err));
    assert_int_equal(x.n, 2);
    memset(&x, 0, sizeof x);
    OK(store_stats(s, "mistral", collect_stats, &x, err, sizeof err));
    assert_int_equal(x.n, 0);
    store_close(s);
}

/* ---- export ---- */

static int64_t fixture_conversation(struct store *s, int64_t *now)
{
    char err[256] = "";
    int64_t conv, msg;
    int64_t model = add_model(s, "DeepSeek-R1-Distill-Qwen-1.5B", "fx");
    OK(store_conv_create(s, NULL, &conv, err, sizeof err));
    OK(store_message_add(s, conv, STORE_ROLE_SYSTEM, "Answer briefly.", NULL, 0, NULL, err,
                         sizeof err));
    *now += 1000;
    OK(store_message_add(s, conv, STORE_ROLE_USER, "What is \"2+2\"?\n(show work)", NULL, 0,
                         NULL, err, sizeof err));
    *now += 1000;
    OK(store_reply_begin(s, conv, model, &msg, err, sizeof err));
    OK(store_reply_append(s, msg, STORE_PART_REASONING, "Add\ttwo and two: 4.\n", 20, err,
                          sizeof err));
    /* the blank line R1 writes after </think> is kept, and left out of Markdown */
    OK(store_reply_append(s, msg, STORE_PART_ANSWER, "\n\n**4** \xe2\x9c\x93\n", 12, err,
                          sizeof err));
    struct store_run r = {
        .model_id = model, .backend = "cpu", .device = "Ryzen 9", .driver = "",
        .n_ctx = 4096, .n_threads = 8, .prompt_tokens = 17, .reasoning_tokens = 9,
        .answer_tokens = 4, .load_ms = 812.25, .prompt_ms = 31.5, .ttft_ms = 33,
        .reasoning_ms = 180, .answer_ms = 80, .prompt_tps = 539.6825396825397, .gen_tps = 50,
        .stop_reason = "eos", .temp = 0.6f, .top_k = 0, .top_p = 0.95f, .min_p = 0,
        .repeat_penalty = 1, .seed = 42, .think_budget = 1024, .think_mode = "soft",
        .budget_reached = true,
    };
    *now += 1000;
    OK(store_reply_finish(s, msg, STORE_STATUS_COMPLETE, NULL, &r, err, sizeof err));
    *now += 1000;
    OK(store_message_add(s, conv, STORE_ROLE_USER, "And 3+3?", NULL, 0, NULL, err, sizeof err));
    OK(store_reply_begin(s, conv, model, &msg, err, sizeof err));
    OK(store_reply_append(s, msg, STORE_PART_REASONING, "Three and", 9, err, sizeof err));
    OK(store_reply_finish(s, msg, STORE_STATUS_INTERRUPTED, NULL, NULL, err, sizeof err));
    return conv;
}

static const char expected_md[] =
    "# What is \"2+2\"?\n"
    "\n"
    "*Conversation 1, started 2025-11-28 19:00 UTC, 5 messages.*\n"
    "\n"
    "## System\n"
    "\n"
    "Answer briefly.\n"
    "\n"
    "## User\n"
    "\n"
    "What is \"2+2\"?\n"
    "(show work)\n"
    "\n"
    "## Assistant (DeepSeek-R1-Distill-Qwen-1.5B)\n"
    "\n"
    "<details>\n"
    "<summary>Reasoning</summary>\n"
    "\n"
    "Add\ttwo and two: 4.\n"
    "\n"
    "</details>\n"
    "\n"
    "**4** \xe2\x9c\x93\n"
    "\n"
    "*13 tokens at 50.0 tokens/s, cpu on Ryzen 9; 9 reasoning tokens, budget 1024 (soft), "
    "reached*\n"
    "\n"
    "## User\n"
    "\n"
    "And 3+3?\n"
    "\n"
    "## Assistant (DeepSeek-R1-Distill-Qwen-1.5B)\n"
    "\n"
    "<details>\n"
    "<summary>Reasoning</summary>\n"
    "\n"
    "Three and\n"
    "\n"
    "</details>\n"
    "\n"
    "*(interrupted)*\n";

static const char expected_json[] =
    "{\n"
    "  \"id\": 1,\n"
    "  \"title\": \"What is \\\"2+2\\\"?\",\n"
    "  \"created\": \"2025-11-28T19:00:00Z\",\n"
    "  \"updated\": \"2025-11-28T19:00:04Z\",\n"
    "  \"pinned\": false,\n"
    "  \"messages\": [\n"
    "    {\n"
    "      \"role\": \"system\",\n"
    "      \"status\": \"complete\",\n"
    "      \"created\": \"2025-11-28T19:00:00Z\",\n"
    "      \"model\": null,\n"
    "      \"reasoning\": \"\",\n"
    "      \"answer\": \"Answer briefly.\",\n"
    "      \"error\": \"\",\n"
    "      \"run\": null\n"
    "    },\n"
    "    {\n"
    "      \"role\": \"user\",\n"
    "      \"status\": \"complete\",\n"
    "      \"created\": \"2025-11-28T19:00:01Z\",\n"
    "      \"model\": null,\n"
    "      \"reasoning\": \"\",\n"
    "      \"answer\": \"What is \\\"2+2\\\"?\\n(show work)\",\n"
    "      \"error\": \"\",\n"
    "      \"run\": null\n"
    "    },\n"
    "    {\n"
    "      \"role\": \"assistant\",\n"
    "      \"status\": \"complete\",\n"
    "      \"created\": \"2025-11-28T19:00:02Z\",\n"
    "      \"model\": \"DeepSeek-R1-Distill-Qwen-1.5B\",\n"
    "      \"reasoning\": \"Add\\ttwo and two: 4.\\n\",\n"
    "      \"answer\": \"\\n\\n**4** \xe2\x9c\x93\\n\",\n"
    "      \"error\": \"\",\n"
    "      \"run\": {\n"
    "        \"backend\": \"cpu\",\n"
    "        \"device\": \"Ryzen 9\",\n"
    "        \"driver\": \"\",\n"
    "        \"n_ctx\": 4096,\n"
    "        \"n_threads\": 8,\n"
    "        \"n_gpu_layers\": 0,\n"
    "        \"prompt_tokens\": 17,\n"
    "        \"reasoning_tokens\": 9,\n"
    "        \"answer_tokens\": 4,\n"
    "        \"load_ms\": 812.25,\n"
    "        \"prompt_ms\": 31.5,\n"
    "        \"ttft_ms\": 33,\n"
    "        \"reasoning_ms\": 180,\n"
    "        \"answer_ms\": 80,\n"
    "        \"prompt_tps\": 539.6825396825398,\n"
    "        \"gen_tps\": 50,\n"
    "        \"stop_reason\": \"eos\",\n"
    "        \"temp\": 0.6,\n"
    "        \"top_k\": 0,\n"
    "        \"top_p\": 0.95,\n"
    "        \"min_p\": 0,\n"
    "        \"repeat_penalty\": 1,\n"
    "        \"seed\": 42,\n"
    "        \"think_budget\": 1024,\n"
    "        \"think_mode\": \"soft\",\n"
    "        \"think_off\": false,\n"
    "        \"budget_reached\": true\n"
    "      }\n"
    "    },\n"
    "    {\n"
    "      \"role\": \"user\",\n"
    "      \"status\": \"complete\",\n"
    "      \"created\": \"2025-11-28T19:00:04Z\",\n"
    "      \"model\": null,\n"
    "      \"reasoning\": \"\",\n"
    "      \"answer\": \"And 3+3?\",\n"
    "      \"error\": \"\",\n"
    "      \"run\": null\n"
    "    },\n"
    "    {\n"
    "      \"role\": \"assistant\",\n"
    "      \"status\": \"interrupted\",\n"
    "      \"created\": \"2025-11-28T19:00:04Z\",\n"
    "      \"model\": \"DeepSeek-R1-Distill-Qwen-1.5B\",\n"
    "      \"reasoning\": \"Three and\",\n"
    "      \"answer\": \"\",\n"
    "      \"error\": \"\",\n"
    "      \"run\": null\n"
    "    }\n"
    "  ]\n"
    "}\n";

static char *export_to_string(struct store *s, int64_t conv, enum store_export_format fmt,
                              unsigned flags)
{
    char err[256] = "";
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    OK(store_export(s, conv, fmt, flags, f, err, sizeof err));
    fclose(f);
    return text;
}

/* Byte-exact comparison; on a difference, says where and leaves what came
 * out in /tmp/ponder-store-NAME.got for diff. */
static void assert_text_equal(const char *got, const char *want, const char *name)
{
    size_t i = 0;
    while (got[i] && got[i] == want[i])
        i++;
    if (got[i] == want[i])
        return;
    char path[128];
    snprintf(path, sizeof path, "/tmp/ponder-store-%s.got", name);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(got, f);
        fclose(f);
    }
    fail_msg("%s differs at byte %zu: got \"%.20s\", expected \"%.20s\" (all of it in %s)",
             name, i, got + i, want + i, path);
}

static void test_export_markdown_and_json_byte_exact(void **state)
{
    (void)state;
    int64_t now = T0;
    struct store *s = open_mem(&now);
    int64_t conv = fixture_conversation(s, &now);
    char *md = export_to_string(s, conv, STORE_EXPORT_MARKDOWN, STORE_EXPORT_REASONING);
    assert_text_equal(md, expected_md, "md");
    free(md);
    char *json = export_to_string(s, conv, STORE_EXPORT_JSON, STORE_EXPORT_REASONING);
    assert_text_equal(json, expected_json, "json");
    /* and it is JSON */
    json_error_t je;
    json_t *j = json_loads(json, 0, &je);
    if (!j)
        fail_msg("export is not JSON: line %d: %s", je.line, je.text);
    assert_int_equal(json_array_size(json_object_get(j, "messages")), 5);
    json_decref(j);
    free(json);

    /* without reasoning: no <details>, and "" in JSON */
    md = export_to_string(s, conv, STORE_EXPORT_MARKDOWN, 0);
    assert_null(strstr(md, "<details>"));
    assert_null(strstr(md, "Add\ttwo"));
    assert_non_null(strstr(md, "**4**"));
    free(md);
    json = export_to_string(s, conv, STORE_EXPORT_JSON, 0);
    assert_null(strstr(json, "Add\\ttwo"));
    free(json);

    char err[256] = "";
    FILE *f = fopen("/dev/null", "w");
    assert_int_equal(store_export(s, 99, STORE_EXPORT_JSON, 0, f, err, sizeof err), ENOENT);
    fclose(f);
    store_close(s);
}

static void test_export_json_escapes_controls_and_bad_utf8(void **state)
{
    (void)state;
    int64_t now = T0;
    struct store *s = open_mem(&now);
    char err[256] = "";
    int64_t conv;
    OK(store_conv_create(s, "t", &conv, err, sizeof err));
    OK(store_message_add(s, conv, STORE_ROLE_USER, "a\x01" "b\\c\xff" "d\xc3", NULL, 0, NULL,
                         err, sizeof err));
    char *json = export_to_string(s, conv, STORE_EXPORT_JSON, 0);
    assert_non_null(strstr(json, "\"answer\": \"a\\u0001b\\\\c\\ufffdd\\ufffd\""));
    json_t *j = json_loads(json, 0, NULL);
    assert_non_null(j);
    json_decref(j);
    free(json);
    store_close(s);
}

/* ---- models and settings ---- */

static void test_model_fingerprint_and_use(void **state)
{
    (void)state;
    char err[256] = "", fp1[STORE_FINGERPRINT_SIZE], fp2[STORE_FINGERPRINT_SIZE],
         fp3[STORE_FINGERPRINT_SIZE];
    const char *path = tpath("model.gguf");
    size_t n = 3 << 20;
    char *data = malloc(n);
    for (size_t i = 0; i < n; i++)
        data[i] = (char)(i * 7);
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
    OK(store_model_fingerprint(path, fp1, err, sizeof err));
    OK(store_model_fingerprint(path, fp2, err, sizeof err));
    assert_string_equal(fp1, fp2);
    assert_int_equal(strlen(fp1), 32);
    data[n - 5] ^= 1;       /* the tail counts */
    f = fopen(path, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
    OK(store_model_fingerprint(path, fp3, err, sizeof err));
    assert_string_not_equal(fp1, fp3);
    free(data);
    assert_int_equal(store_model_fingerprint(tpath("none.gguf"), fp3, err, sizeof err), ENOENT);
    /* a FIFO (no writer) is refused at once, never waited on */
    assert_int_equal(mkfifo(tpath("fifo.gguf"), 0600), 0);
    assert_int_equal(store_model_fingerprint(tpath("fifo.gguf"), fp3, err, sizeof err), EINVAL);
    assert_non_null(strstr(err, "not a regular file"));

    int64_t now = T0;
    struct store *s = open_mem(&now);
    struct store_model m = {.path = "/a/x.gguf", .name = "X", .fingerprint = fp1};
    int64_t id1, id2, id3;
    OK(store_model_use(s, &m, &id1, err, sizeof err));
    now += 5000;
    m.path = "/b/x.gguf";   /* moved: the same model */
    OK(store_model_use(s, &m, &id2, err, sizeof err));
    assert_int_equal(id1, id2);
    assert_int_equal(q_int(s, "SELECT first_used FROM models"), T0);
    assert_int_equal(q_int(s, "SELECT last_used FROM models"), T0 + 5000);
    assert_int_equal(q_int(s, "SELECT path = '/b/x.gguf' FROM models"), 1);
    m.fingerprint = fp3;
    OK(store_model_use(s, &m, &id3, err, sizeof err));
    assert_true(id3 != id1);
    m.fingerprint = "";
    assert_int_equal(store_model_use(s, &m, &id3, err, sizeof err), EINVAL);
    store_close(s);
}

static void test_settings_round_trip(void **state)
{
    (void)state;
    struct store *s = open_mem(NULL);
    char err[256] = "", *v = (char *)1;
    OK(store_setting_get(s, "fold", &v, err, sizeof err));
    assert_null(v);
    OK(store_setting_set(s, "fold", "on", err, sizeof err));
    OK(store_setting_set(s, "fold", "off", err, sizeof err));
    OK(store_setting_get(s, "fold", &v, err, sizeof err));
    assert_string_equal(v, "off");
    free(v);
    store_close(s);
}

/* ---- two connections ---- */

struct writer_arg {
    const char *path;
    int which, n, rc;
    char err[256];
};

static void *writer_thread(void *p)
{
    struct writer_arg *w = p;
    struct store *s = NULL;
    if ((w->rc = store_open(w->path, STORE_CREATE, &s, w->err, sizeof w->err)))
        return NULL;
    for (int i = 0; i < w->n && !w->rc; i++) {
        char text[64];
        int64_t conv, msg;
        snprintf(text, sizeof text, "writer %d question %d", w->which, i);
        if ((w->rc = store_conv_create(s, NULL, &conv, w->err, sizeof w->err)) ||
            (w->rc = store_message_add(s, conv, STORE_ROLE_USER, text, NULL, 0, NULL, w->err,
                                       sizeof w->err)) ||
            (w->rc = store_reply_begin(s, conv, 0, &msg, w->err, sizeof w->err)))
            break;
        for (int k = 0; k < 5 && !w->rc; k++)
            w->rc = store_reply_append(s, msg, STORE_PART_ANSWER, "ab", 2, w->err, sizeof w->err);
        if (!w->rc)
            w->rc = store_reply_finish(s, msg, STORE_STATUS_COMPLETE, NULL, NULL, w->err,
                                       sizeof w->err);
    }
    store_close(s);
    return NULL;
}

static void test_two_connections_write_at_once(void **state)
{
    (void)state;
    const char *path = tpath("shared.db");
    char err[256] = "";
    struct store *s = NULL;
    OK(store_open(path, STORE_CREATE, &s, err, sizeof err));
    store_close(s);
    struct writer_arg w[2] = {{.path = path, .which = 0, .n = 60},
                              {.path = path, .which = 1, .n = 60}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, writer_thread, &w[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++)
        if (w[i].rc)
            fail_msg("writer %d: %d (%s)", i, w[i].rc, w[i].err);
    OK(store_open(path, 0, &s, err, sizeof err));
    assert_int_equal(q_int(s, "SELECT count(*) FROM conversations"), 120);
    assert_int_equal(q_int(s, "SELECT count(*) FROM messages WHERE role = 'assistant'"
                              " AND status = 'complete' AND answer = 'ababababab'"),
                     120);
    assert_int_equal(q_int(s, "SELECT count(DISTINCT title) FROM conversations"), 120);
    assert_int_equal(q_int(s, "SELECT count(*) FROM chunks"), 0);
    store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_creates_private_wal_file_and_folders),
        cmocka_unit_test(test_open_missing_without_create_is_enoent),
        cmocka_unit_test(test_default_path_follows_xdg_then_home),
        cmocka_unit_test(test_migration_upgrades_v1_with_data_intact),
        cmocka_unit_test(test_migration_v2_to_v3_adds_the_thinking_budget),
        cmocka_unit_test(test_migration_v3_to_v4_moves_the_load_times_out_of_settings),
        cmocka_unit_test(test_model_loads_by_path_and_by_fingerprint),
        cmocka_unit_test(test_model_speed_is_by_file_not_by_name),
        cmocka_unit_test(test_model_list_is_latest_used_first),
        cmocka_unit_test(test_newer_schema_is_refused_untouched),
        cmocka_unit_test(test_damaged_or_foreign_files_are_reported),
        cmocka_unit_test(test_damaged_pages_are_reported),
        cmocka_unit_test(test_read_only_open_wants_the_current_schema),
        cmocka_unit_test(test_read_only_store_reports_writes_clearly),
        cmocka_unit_test(test_conversation_rename_pin_delete_undo_purge),
        cmocka_unit_test(test_title_comes_from_first_user_message_never_reasoning),
        cmocka_unit_test(test_list_is_pinned_then_newest_with_models_count_and_median),
        cmocka_unit_test(test_reply_streams_then_completes_with_its_run),
        cmocka_unit_test(test_recovery_marks_dead_writers_interrupted_and_keeps_text),
        cmocka_unit_test(test_search_answers_reasoning_or_both_literally),
        cmocka_unit_test(test_stats_per_model_and_device_with_median_and_p95),
        cmocka_unit_test(test_export_markdown_and_json_byte_exact),
        cmocka_unit_test(test_export_json_escapes_controls_and_bad_utf8),
        cmocka_unit_test(test_model_fingerprint_and_use),
        cmocka_unit_test(test_settings_round_trip),
        cmocka_unit_test(test_two_connections_write_at_once),
    };
    return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
