/* The history store's connection: opening and creating the file, the schema
 * and its forward migrations, recovery of replies left streaming, models,
 * settings, and the helpers the other store_*.c files share. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "history/store_int.h"
#include "infer/ckd.h"

/* Version 1: the tables.  Version 2: the device driver of a run, and FTS5
 * over answers and reasoning (built from the messages already there).
 * Version 3: the thinking budget of a run (runs before it had none).
 * Version 4: model load times (moved out of the settings table). */
const char *const store_migrations[STORE_SCHEMA_VERSION] = {
    "PRAGMA application_id = 1347306578;"
    "CREATE TABLE models("
    "  id INTEGER PRIMARY KEY,"
    "  path TEXT NOT NULL,"
    "  name TEXT NOT NULL,"
    "  arch TEXT NOT NULL DEFAULT '',"
    "  n_params INTEGER NOT NULL DEFAULT 0,"
    "  weight_type TEXT NOT NULL DEFAULT '',"
    "  file_size INTEGER NOT NULL DEFAULT 0,"
    "  fingerprint TEXT NOT NULL UNIQUE,"
    "  first_used INTEGER NOT NULL,"
    "  last_used INTEGER NOT NULL);"
    "CREATE TABLE conversations("
    "  id INTEGER PRIMARY KEY,"
    "  title TEXT,"                     /* NULL: from the first user message */
    "  created INTEGER NOT NULL,"
    "  updated INTEGER NOT NULL,"
    "  pinned INTEGER NOT NULL DEFAULT 0,"
    "  deleted INTEGER);"               /* when deleted (undo possible), or NULL */
    "CREATE TABLE messages("
    "  id INTEGER PRIMARY KEY,"
    "  conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,"
    "  seq INTEGER NOT NULL,"
    "  role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),"
    "  answer TEXT NOT NULL DEFAULT '',"
    "  reasoning TEXT NOT NULL DEFAULT '',"
    "  model_id INTEGER REFERENCES models(id) ON DELETE SET NULL,"
    "  status TEXT NOT NULL"
    "    CHECK (status IN ('streaming', 'complete', 'interrupted', 'error')),"
    "  error TEXT NOT NULL DEFAULT '',"
    "  writer TEXT NOT NULL DEFAULT '',"  /* boot-id/pid of the streaming process */
    "  created INTEGER NOT NULL,"
    "  UNIQUE (conversation_id, seq));"
    "CREATE INDEX messages_model ON messages(model_id);"
    "CREATE INDEX messages_streaming ON messages(status) WHERE status = 'streaming';"
    "CREATE TABLE chunks("
    "  id INTEGER PRIMARY KEY,"
    "  message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,"
    "  part INTEGER NOT NULL,"          /* 0 answer, 1 reasoning */
    "  text TEXT NOT NULL);"
    "CREATE INDEX chunks_message ON chunks(message_id, id);"
    /* a piece for a reply that ended (or another ponder recovered) would
     * never be folded in: refuse it */
    "CREATE TRIGGER chunks_streaming_only BEFORE INSERT ON chunks"
    "  WHEN (SELECT status FROM messages WHERE id = new.message_id) IS NOT 'streaming'"
    "  BEGIN SELECT RAISE(ABORT, 'the reply is not streaming'); END;"
    "CREATE TABLE runs("
    "  id INTEGER PRIMARY KEY,"
    "  message_id INTEGER REFERENCES messages(id) ON DELETE CASCADE,"
    "  model_id INTEGER REFERENCES models(id) ON DELETE SET NULL,"
    "  backend TEXT NOT NULL DEFAULT '',"
    "  device TEXT NOT NULL DEFAULT '',"
    "  n_ctx INTEGER NOT NULL DEFAULT 0,"
    "  n_threads INTEGER NOT NULL DEFAULT 0,"
    "  n_gpu_layers INTEGER NOT NULL DEFAULT 0,"
    "  prompt_tokens INTEGER NOT NULL DEFAULT 0,"
    "  reasoning_tokens INTEGER NOT NULL DEFAULT 0,"
    "  answer_tokens INTEGER NOT NULL DEFAULT 0,"
    "  load_ms REAL, prompt_ms REAL, ttft_ms REAL, reasoning_ms REAL, answer_ms REAL,"
    "  prompt_tps REAL, gen_tps REAL,"
    "  stop_reason TEXT NOT NULL DEFAULT '',"
    "  temp REAL, top_k INTEGER, top_p REAL, min_p REAL, repeat_penalty REAL,"
    "  seed INTEGER,"                   /* the uint64 seed, bit for bit */
    "  created INTEGER NOT NULL);"
    "CREATE INDEX runs_message ON runs(message_id);"
    "CREATE INDEX runs_model ON runs(model_id);"
    "CREATE TABLE settings(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;",

    "ALTER TABLE runs ADD COLUMN driver TEXT NOT NULL DEFAULT '';"
    "CREATE VIRTUAL TABLE messages_fts USING fts5(answer, reasoning, content='messages',"
    "  content_rowid='id', tokenize='unicode61 remove_diacritics 2');"
    "INSERT INTO messages_fts(messages_fts) VALUES ('rebuild');"
    "CREATE TRIGGER messages_fts_ai AFTER INSERT ON messages BEGIN"
    "  INSERT INTO messages_fts(rowid, answer, reasoning)"
    "    VALUES (new.id, new.answer, new.reasoning);"
    "END;"
    "CREATE TRIGGER messages_fts_ad AFTER DELETE ON messages BEGIN"
    "  INSERT INTO messages_fts(messages_fts, rowid, answer, reasoning)"
    "    VALUES ('delete', old.id, old.answer, old.reasoning);"
    "END;"
    "CREATE TRIGGER messages_fts_au AFTER UPDATE OF answer, reasoning ON messages BEGIN"
    "  INSERT INTO messages_fts(messages_fts, rowid, answer, reasoning)"
    "    VALUES ('delete', old.id, old.answer, old.reasoning);"
    "  INSERT INTO messages_fts(rowid, answer, reasoning)"
    "    VALUES (new.id, new.answer, new.reasoning);"
    "END;",

    "ALTER TABLE runs ADD COLUMN think_budget INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE runs ADD COLUMN think_mode TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE runs ADD COLUMN think_off INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE runs ADD COLUMN budget_reached INTEGER NOT NULL DEFAULT 0;",

    /* model load times; ui/switch.c kept them in settings rows "load_ms PATH"
     * before: those are moved here */
    "CREATE TABLE model_loads("
    "  path TEXT PRIMARY KEY,"
    "  fingerprint TEXT NOT NULL DEFAULT '',"
    "  load_ms REAL NOT NULL,"
    "  updated INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX model_loads_fingerprint ON model_loads(fingerprint) WHERE fingerprint != '';"
    "INSERT OR REPLACE INTO model_loads(path, load_ms, updated)"
    "  SELECT substr(key, 9), CAST(value AS REAL), 0 FROM settings"
    "  WHERE substr(key, 1, 8) = 'load_ms ' AND length(key) > 8"
    "    AND value GLOB '[0-9]*' AND CAST(value AS REAL) < 1e9;"
    "DELETE FROM settings WHERE substr(key, 1, 8) = 'load_ms '"
    "  AND substr(key, 9) IN (SELECT path FROM model_loads);",
};

int store_fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

static int code_of(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK: return 0;
    case SQLITE_NOMEM: return ENOMEM;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return EBUSY;
    case SQLITE_READONLY: return EROFS;
    case SQLITE_PERM:
    case SQLITE_AUTH: return EACCES;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: return EBADMSG;
    case SQLITE_FULL: return ENOSPC;
    case SQLITE_CANTOPEN: return EACCES;   /* we stat()ed the file: a side file failed */
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
    case SQLITE_TOOBIG: return EINVAL;
    default: return EIO;
    }
}

int store_db_fail(struct store *s, char *err, size_t errlen, const char *what)
{
    int rc = sqlite3_extended_errcode(s->db);
    int code = code_of(rc);
    if (!code)
        code = EIO;
    const char *msg = sqlite3_errmsg(s->db);
    if ((rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT)
        return store_fail(err, errlen, code, "%s: %s: the history database is damaged (%s)",
                          s->path, what, msg);
    if ((rc & 0xff) == SQLITE_READONLY)
        return store_fail(err, errlen, code, "%s: %s: the history database is read-only (%s)",
                          s->path, what, msg);
    return store_fail(err, errlen, code, "%s: %s: %s", s->path, what, msg);
}

int store_prepare(struct store *s, const char *sql, sqlite3_stmt **st, char *err, size_t errlen)
{
    if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK) {
        *st = NULL;
        return store_db_fail(s, err, errlen, "prepare");
    }
    return 0;
}

int store_exec(struct store *s, const char *sql, char *err, size_t errlen)
{
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return store_db_fail(s, err, errlen, "write");
    return 0;
}

int store_begin(struct store *s, char *err, size_t errlen)
{
    return store_exec(s, "BEGIN IMMEDIATE", err, errlen);
}

int store_commit(struct store *s, char *err, size_t errlen)
{
    int rc = store_exec(s, "COMMIT", err, errlen);
    if (rc)
        store_rollback(s);
    return rc;
}

void store_rollback(struct store *s)
{
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

static int64_t real_now(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t store_now(struct store *s)
{
    return s->now_ms(s->clock_ctx);
}

void store_set_clock(struct store *s, int64_t (*now_ms)(void *ctx), void *ctx)
{
    s->now_ms = now_ms ? now_ms : real_now;
    s->clock_ctx = now_ms ? ctx : NULL;
}

const char *store_col_text(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return t ? (const char *)t : "";
}

int store_buf_add(struct store_buf *b, const char *s, size_t n)
{
    size_t need;
    if (ckd_add_size(&need, b->n, n) || ckd_add_size(&need, need, 1))
        return ENOMEM;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < need)
            if (ckd_mul_size(&cap, cap, 2))
                return ENOMEM;
        char *p = realloc(b->p, cap);
        if (!p)
            return ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

int store_buf_str(struct store_buf *b, const char *s)
{
    return store_buf_add(b, s, strlen(s));
}

int store_buf_printf(struct store_buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return EINVAL;
    if ((size_t)n < sizeof small)
        return store_buf_add(b, small, (size_t)n);
    char *big = malloc((size_t)n + 1);
    if (!big)
        return ENOMEM;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = store_buf_add(b, big, (size_t)n);
    free(big);
    return rc;
}

void store_buf_free(struct store_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

/* ---- opening ---- */

int store_default_path(const char *xdg_data_home, const char *home, char *buf, size_t cap,
                       char *err, size_t errlen)
{
    int n;
    if (xdg_data_home && *xdg_data_home)
        n = snprintf(buf, cap, "%s/ponder/ponder.db", xdg_data_home);
    else if (home && *home)
        n = snprintf(buf, cap, "%s/.local/share/ponder/ponder.db", home);
    else
        return store_fail(err, errlen, ENOENT,
                          "neither XDG_DATA_HOME nor HOME is set: give the history with --db PATH");
    if (n < 0 || (size_t)n >= cap)
        return store_fail(err, errlen, ENAMETOOLONG, "the history path is too long");
    return 0;
}

/* mkdir -p of path's parent folders, mode 0700. */
static int make_parents(const char *path, char *err, size_t errlen)
{
    char *dir = strdup(path);
    if (!dir)
        return store_fail(err, errlen, ENOMEM, "out of memory");
    int rc = 0;
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = 0;
        for (char *p = dir + 1; ; p++) {
            if (*p != '/' && *p)
                continue;
            char c = *p;
            *p = 0;
            if (mkdir(dir, 0700) && errno != EEXIST) {
                rc = store_fail(err, errlen, errno, "%s: cannot create the folder: %s", dir,
                                strerror(errno));
                break;
            }
            *p = c;
            if (!c)
                break;
        }
    }
    free(dir);
    return rc;
}

/* "boot-id/pid" names the process that streams a reply. */
static void writer_id(char *out, size_t cap)
{
    char boot[40] = "";
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f) {
        if (!fgets(boot, sizeof boot, f))
            boot[0] = 0;
        fclose(f);
        boot[strcspn(boot, "\n")] = 0;
    }
    snprintf(out, cap, "%s/%ld", boot, (long)getpid());
}

/* Whether the process that wrote "boot-id/pid" may still be running. */
static bool writer_alive(const struct store *s, const char *w)
{
    const char *slash = strrchr(w, '/');
    const char *mine = strrchr(s->writer, '/');
    if (!slash || !mine)
        return false;
    if ((size_t)(slash - w) != (size_t)(mine - s->writer) || memcmp(w, s->writer, (size_t)(slash - w)))
        return false;   /* written before the last reboot */
    char *end;
    errno = 0;
    long pid = strtol(slash + 1, &end, 10);
    if (errno || *end || pid <= 0)
        return false;
    if (pid == (long)getpid())
        return true;
    return !(kill((pid_t)pid, 0) == -1 && errno == ESRCH);
}

/* Schema checks before anything is written: ours, and not from the future. */
static int check_schema(struct store *s, int *version, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = 0, app_id = 0, n_objects = 0;
    *version = 0;
    const char *sql = "SELECT (SELECT user_version FROM pragma_user_version),"
                      " (SELECT application_id FROM pragma_application_id),"
                      " (SELECT count(*) FROM sqlite_schema)";
    if ((rc = store_prepare(s, sql, &st, err, errlen)))
        goto out;
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = store_db_fail(s, err, errlen, "read");
        goto out;
    }
    *version = sqlite3_column_int(st, 0);
    app_id = sqlite3_column_int(st, 1);
    n_objects = sqlite3_column_int(st, 2);
    if (*version > STORE_SCHEMA_VERSION)
        rc = store_fail(err, errlen, ENOTSUP,
                        "%s: written by a newer ponder (schema %d; this one knows up to %d); "
                        "left untouched",
                        s->path, *version, STORE_SCHEMA_VERSION);
    else if ((*version > 0 && app_id != STORE_APPLICATION_ID) || (*version == 0 && n_objects > 0))
        rc = store_fail(err, errlen, EBADMSG, "%s: an SQLite database, but not ponder's history",
                        s->path);
out:
    sqlite3_finalize(st);
    if (rc && !err[0])
        rc = store_fail(err, errlen, rc, "%s: cannot read the history", s->path);
    return rc;
}

static int migrate(struct store *s, char *err, size_t errlen)
{
    int rc, version;
    if ((rc = store_begin(s, err, errlen)))
        return rc;
    /* read again inside the write lock: another ponder may have migrated */
    if ((rc = check_schema(s, &version, err, errlen)))
        goto fail;
    for (int v = version; v < STORE_SCHEMA_VERSION; v++) {
        if (sqlite3_exec(s->db, store_migrations[v], NULL, NULL, NULL) != SQLITE_OK) {
            char what[64];
            snprintf(what, sizeof what, "upgrading the schema to version %d", v + 1);
            rc = store_db_fail(s, err, errlen, what);
            goto fail;
        }
    }
    if (version < STORE_SCHEMA_VERSION) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", STORE_SCHEMA_VERSION);
        if ((rc = store_exec(s, sql, err, errlen)))
            goto fail;
    }
    return store_commit(s, err, errlen);
fail:
    store_rollback(s);
    return rc;
}

int store_open(const char *path, unsigned flags, struct store **out, char *err, size_t errlen)
{
    int rc = 0;
    *out = NULL;
    if (err && errlen)
        err[0] = 0;
    bool memory = !strcmp(path, ":memory:");
    bool ro = flags & STORE_READONLY;
    struct store *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        return store_fail(err, errlen, ENOMEM, "out of memory");
    }
    s->flags = flags;
    s->now_ms = real_now;
    writer_id(s->writer, sizeof s->writer);

    if (!memory) {
        struct stat sb;
        if (stat(path, &sb) != 0) {
            if (errno != ENOENT || !(flags & STORE_CREATE) || ro) {
                rc = store_fail(err, errlen, errno, "%s: %s", path, strerror(errno));
                goto fail;
            }
            if ((rc = make_parents(path, err, errlen)))
                goto fail;
            /* SQLite would create it 0644; the history is private */
            int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
            if (fd < 0) {
                rc = store_fail(err, errlen, errno, "%s: cannot create: %s", path, strerror(errno));
                goto fail;
            }
            close(fd);
        } else if (S_ISDIR(sb.st_mode)) {
            rc = store_fail(err, errlen, EISDIR, "%s: is a folder, not a history database", path);
            goto fail;
        } else if (!ro && access(path, W_OK) != 0) {
            rc = store_fail(err, errlen, errno,
                            "%s: cannot write the history (%s); check its permissions", path,
                            strerror(errno));
            goto fail;
        }
    }
    int oflags = (ro ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) | SQLITE_OPEN_NOMUTEX;
    if (memory)
        oflags |= SQLITE_OPEN_CREATE;
    if (sqlite3_open_v2(path, &s->db, oflags, NULL) != SQLITE_OK) {
        rc = s->db ? store_db_fail(s, err, errlen, "open")
                   : store_fail(err, errlen, ENOMEM, "out of memory");
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, 5000);
    if (!ro && sqlite3_db_readonly(s->db, "main") == 1) {
        rc = store_fail(err, errlen, EROFS, "%s: the history database is read-only", path);
        goto fail;
    }
    int version;
    if ((rc = check_schema(s, &version, err, errlen)))
        goto fail;
    if ((rc = store_exec(s, "PRAGMA foreign_keys = ON", err, errlen)))
        goto fail;
    if (ro) {
        if (version != STORE_SCHEMA_VERSION) {
            rc = store_fail(err, errlen, ENOTSUP,
                            "%s: schema %d needs upgrading; open it once with write access", path,
                            version);
            goto fail;
        }
    } else {
        if (!memory) {
            sqlite3_stmt *st = NULL;
            if ((rc = store_prepare(s, "PRAGMA journal_mode = WAL", &st, err, errlen)))
                goto fail;
            bool wal = sqlite3_step(st) == SQLITE_ROW &&
                       !strcmp(store_col_text(st, 0), "wal");
            sqlite3_finalize(st);
            if (!wal) {
                rc = store_db_fail(s, err, errlen, "switching to WAL mode");
                goto fail;
            }
            /* WAL + NORMAL: a commit survives a crash of ponder; a power
             * loss may take the last commits but never damages the file */
            if ((rc = store_exec(s, "PRAGMA synchronous = NORMAL", err, errlen)))
                goto fail;
        }
        if ((rc = migrate(s, err, errlen)))
            goto fail;
        if (!(flags & STORE_NO_RECOVER) && (rc = store_recover(s, NULL, err, errlen)))
            goto fail;
    }
    *out = s;
    return 0;
fail:
    store_close(s);
    return rc ? rc : EIO;
}

void store_close(struct store *s)
{
    if (!s)
        return;
    sqlite3_finalize(s->append);
    sqlite3_close(s->db);
    free(s->path);
    free(s);
}

/* ---- replies: chunks, folding, recovery ---- */

int store_read_chunks(struct store *s, int64_t msg, struct store_buf *answer, struct store_buf *reasoning,
                      char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = store_prepare(s, "SELECT part, text FROM chunks WHERE message_id = ? ORDER BY id", &st,
                           err, errlen);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, msg);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        struct store_buf *b = sqlite3_column_int(st, 0) ? reasoning : answer;
        const void *t = sqlite3_column_text(st, 1);
        size_t n = (size_t)sqlite3_column_bytes(st, 1);
        if (b && t && store_buf_add(b, t, n)) {
            rc = store_fail(err, errlen, ENOMEM, "out of memory");
            goto out;
        }
    }
    if (step != SQLITE_DONE)
        rc = store_db_fail(s, err, errlen, "reading a reply");
out:
    sqlite3_finalize(st);
    return rc;
}

int store_fold_reply(struct store *s, int64_t msg, enum store_status status, const char *error_text,
                     char *err, size_t errlen)
{
    struct store_buf a = {0}, r = {0};
    sqlite3_stmt *st = NULL;
    int rc;
    if ((rc = store_prepare(s, "SELECT answer, reasoning FROM messages WHERE id = ?", &st, err,
                            errlen)))
        goto out;
    sqlite3_bind_int64(st, 1, msg);
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = store_fail(err, errlen, ENOENT, "no message %lld", (long long)msg);
        goto out;
    }
    if (store_buf_add(&a, store_col_text(st, 0), (size_t)sqlite3_column_bytes(st, 0)) ||
        store_buf_add(&r, store_col_text(st, 1), (size_t)sqlite3_column_bytes(st, 1))) {
        rc = store_fail(err, errlen, ENOMEM, "out of memory");
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    if ((rc = store_read_chunks(s, msg, &a, &r, err, errlen)))
        goto out;
    if (a.n > INT32_MAX || r.n > INT32_MAX) {
        rc = store_fail(err, errlen, EFBIG, "message %lld is too long", (long long)msg);
        goto out;
    }
    if ((rc = store_prepare(s,
                            "UPDATE messages SET answer = ?2, reasoning = ?3, status = ?4,"
                            " error = ?5, writer = '' WHERE id = ?1",
                            &st, err, errlen)))
        goto out;
    sqlite3_bind_int64(st, 1, msg);
    sqlite3_bind_text(st, 2, a.p ? a.p : "", (int)a.n, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, r.p ? r.p : "", (int)r.n, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, store_status_name(status), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, error_text ? error_text : "", -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) {
        rc = store_db_fail(s, err, errlen, "completing a reply");
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    if ((rc = store_prepare(s, "DELETE FROM chunks WHERE message_id = ?", &st, err, errlen)))
        goto out;
    sqlite3_bind_int64(st, 1, msg);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = store_db_fail(s, err, errlen, "completing a reply");
out:
    sqlite3_finalize(st);
    store_buf_free(&a);
    store_buf_free(&r);
    return rc;
}

int store_recover(struct store *s, int *n_recovered, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int64_t *dead = NULL;
    size_t n_dead = 0, cap = 0;
    int rc;
    if (n_recovered)
        *n_recovered = 0;
    if ((rc = store_prepare(s, "SELECT id, writer FROM messages WHERE status = 'streaming'", &st,
                            err, errlen)))
        return rc;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (writer_alive(s, store_col_text(st, 1)))
            continue;
        if (n_dead == cap) {
            size_t ncap = cap ? 2 * cap : 8;
            int64_t *p = realloc(dead, ncap * sizeof *p);
            if (!p) {
                rc = store_fail(err, errlen, ENOMEM, "out of memory");
                goto out;
            }
            dead = p;
            cap = ncap;
        }
        dead[n_dead++] = sqlite3_column_int64(st, 0);
    }
    if (step != SQLITE_DONE) {
        rc = store_db_fail(s, err, errlen, "looking for interrupted replies");
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    for (size_t i = 0; i < n_dead; i++) {
        if ((rc = store_begin(s, err, errlen)))
            goto out;
        /* still streaming?  another ponder may have recovered it meanwhile */
        if ((rc = store_prepare(s, "SELECT 1 FROM messages WHERE id = ? AND status = 'streaming'",
                                &st, err, errlen))) {
            store_rollback(s);
            goto out;
        }
        sqlite3_bind_int64(st, 1, dead[i]);
        bool still = sqlite3_step(st) == SQLITE_ROW;
        sqlite3_finalize(st);
        st = NULL;
        if (still && (rc = store_fold_reply(s, dead[i], STORE_STATUS_INTERRUPTED, NULL, err,
                                            errlen))) {
            store_rollback(s);
            goto out;
        }
        if ((rc = store_commit(s, err, errlen)))
            goto out;
        if (still && n_recovered)
            (*n_recovered)++;
    }
out:
    sqlite3_finalize(st);
    free(dead);
    return rc;
}

/* ---- models ---- */

/* FNV-1a, 64 bits, two lanes with different offsets: a fingerprint, not a
 * defence against forgery. */
static void fnv(uint64_t h[2], const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h[0] = (h[0] ^ p[i]) * 0x100000001b3ULL;
        h[1] = (h[1] ^ p[i]) * 0x100000001b3ULL;
    }
}

int store_model_fingerprint(const char *path, char out[STORE_FINGERPRINT_SIZE], char *err,
                            size_t errlen)
{
    enum { HEAD = 1 << 20, TAIL = 1 << 16 };
    int rc = 0;
    unsigned char *b = NULL;
    /* O_NONBLOCK: a FIFO at a model's old path must not block the open
     * (nothing else changes for a regular file) */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return store_fail(err, errlen, errno, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        rc = store_fail(err, errlen, EINVAL, "%s: not a regular file", path);
        goto out;
    }
    if (!(b = malloc(HEAD))) {
        rc = store_fail(err, errlen, ENOMEM, "out of memory");
        goto out;
    }
    uint64_t h[2] = {0xcbf29ce484222325ULL, 0x84222325cbf29ce4ULL};
    uint64_t size = (uint64_t)sb.st_size;
    unsigned char sz[8];
    for (int i = 0; i < 8; i++)
        sz[i] = (unsigned char)(size >> (8 * i));
    fnv(h, sz, 8);
    off_t offs[2] = {0, sb.st_size > TAIL ? sb.st_size - TAIL : 0};
    size_t lens[2] = {HEAD, TAIL};
    for (int part = 0; part < 2; part++) {
        size_t got = 0;
        while (got < lens[part]) {
            ssize_t r = pread(fd, b + got, lens[part] - got, offs[part] + (off_t)got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                rc = store_fail(err, errlen, errno, "%s: %s", path, strerror(errno));
                goto out;
            }
            if (r == 0)
                break;
            got += (size_t)r;
        }
        fnv(h, b, got);
    }
    snprintf(out, STORE_FINGERPRINT_SIZE, "%016llx%016llx", (unsigned long long)h[0],
             (unsigned long long)h[1]);
out:
    free(b);
    close(fd);
    return rc;
}

int store_model_use(struct store *s, const struct store_model *m, int64_t *id, char *err,
                    size_t errlen)
{
    if (!m->fingerprint || !m->fingerprint[0] || !m->name)
        return store_fail(err, errlen, EINVAL, "a model needs a name and a fingerprint");
    sqlite3_stmt *st = NULL;
    int64_t now = store_now(s);
    int rc = store_prepare(s,
                           "INSERT INTO models(path, name, arch, n_params, weight_type, file_size,"
                           " fingerprint, first_used, last_used)"
                           " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)"
                           " ON CONFLICT(fingerprint) DO UPDATE SET path = ?1, name = ?2,"
                           " arch = ?3, n_params = ?4, weight_type = ?5, file_size = ?6,"
                           " last_used = ?8"
                           " RETURNING id",
                           &st, err, errlen);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, m->path ? m->path : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, m->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, m->arch ? m->arch : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, m->n_params);
    sqlite3_bind_text(st, 5, m->weight_type ? m->weight_type : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, m->file_size);
    sqlite3_bind_text(st, 7, m->fingerprint, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, now);
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = store_db_fail(s, err, errlen, "recording a model");
    } else {
        if (id)
            *id = sqlite3_column_int64(st, 0);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = store_db_fail(s, err, errlen, "recording a model");
    }
    sqlite3_finalize(st);
    return rc;
}

int store_model_list(struct store *s, int limit,
                     int (*fn)(void *ctx, const struct store_model *m), void *ctx, char *err,
                     size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = store_prepare(s,
                           "SELECT id, path, name, arch, n_params, weight_type, file_size,"
                           " fingerprint, first_used, last_used FROM models"
                           " ORDER BY last_used DESC, id DESC LIMIT ?",
                           &st, err, errlen);
    if (rc)
        return rc;
    sqlite3_bind_int(st, 1, limit > 0 ? limit : -1);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        struct store_model m = {
            .id = sqlite3_column_int64(st, 0), .path = store_col_text(st, 1),
            .name = store_col_text(st, 2), .arch = store_col_text(st, 3),
            .n_params = sqlite3_column_int64(st, 4), .weight_type = store_col_text(st, 5),
            .file_size = sqlite3_column_int64(st, 6), .fingerprint = store_col_text(st, 7),
            .first_used = sqlite3_column_int64(st, 8), .last_used = sqlite3_column_int64(st, 9),
        };
        if ((rc = fn(ctx, &m)))
            break;
    }
    if (!rc && step != SQLITE_DONE)
        rc = store_db_fail(s, err, errlen, "listing models");
    sqlite3_finalize(st);
    return rc;
}

/* ---- model loads ---- */

int store_model_load_set(struct store *s, const char *path, const char *fingerprint, double ms,
                         char *err, size_t errlen)
{
    if (!path || !*path)
        return store_fail(err, errlen, EINVAL, "a model load needs the model's path");
    if (!(ms >= 0 && ms < 1e9))
        return store_fail(err, errlen, EINVAL, "%s: a load time of %g ms is out of range", path,
                          ms);
    sqlite3_stmt *st = NULL;
    int rc = store_prepare(s,
                           "INSERT OR REPLACE INTO model_loads(path, fingerprint, load_ms, updated)"
                           " VALUES (?, ?, ?, ?)",
                           &st, err, errlen);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, fingerprint ? fingerprint : "", -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 3, ms);
    sqlite3_bind_int64(st, 4, store_now(s));
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = store_db_fail(s, err, errlen, "recording a model load");
    sqlite3_finalize(st);
    return rc;
}

int store_model_load_get(struct store *s, const char *path, const char *fingerprint, double *ms,
                         char *err, size_t errlen)
{
    *ms = 0;
    sqlite3_stmt *st = NULL;
    /* the file's own fingerprint first (a file moved or linked keeps its
     * loads), then its path; the latest of each */
    int rc = store_prepare(s,
                           "SELECT load_ms FROM model_loads"
                           " WHERE (?1 != '' AND fingerprint = ?1) OR (?2 != '' AND path = ?2)"
                           " ORDER BY (?1 != '' AND fingerprint = ?1) DESC, updated DESC LIMIT 1",
                           &st, err, errlen);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, fingerprint ? fingerprint : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, path ? path : "", -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        *ms = sqlite3_column_double(st, 0);
    else if (step == SQLITE_DONE)
        rc = store_fail(err, errlen, ENOENT, "%s: no load recorded",
                        path && *path ? path : fingerprint ? fingerprint : "the model");
    else
        rc = store_db_fail(s, err, errlen, "reading a model load");
    sqlite3_finalize(st);
    return rc;
}

/* ---- settings ---- */

int store_setting_get(struct store *s, const char *key, char **value, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    *value = NULL;
    int rc = store_prepare(s, "SELECT value FROM settings WHERE key = ?", &st, err, errlen);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        if (!(*value = strdup(store_col_text(st, 0))))
            rc = store_fail(err, errlen, ENOMEM, "out of memory");
    } else if (step != SQLITE_DONE) {
        rc = store_db_fail(s, err, errlen, "reading a setting");
    }
    sqlite3_finalize(st);
    return rc;
}

int store_setting_set(struct store *s, const char *key, const char *value, char *err,
                      size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc = store_prepare(s, "INSERT OR REPLACE INTO settings(key, value) VALUES (?, ?)", &st,
                           err, errlen);
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = store_db_fail(s, err, errlen, "writing a setting");
    sqlite3_finalize(st);
    return rc;
}

double store_percentile(const double *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    double pos = p * (double)(n - 1);
    size_t lo = (size_t)pos, hi = lo + 1 < n ? lo + 1 : lo;
    return v[lo] + (v[hi] - v[lo]) * (pos - (double)lo);
}
