/* Inside the history store: the connection, the schema and the helpers the
 * store_*.c files share.  Nothing outside history/ (and its tests) includes it. */
#ifndef PONDER_STORE_INT_H
#define PONDER_STORE_INT_H

#include <sqlite3.h>

#include "history/store.h"

/* 'PNDR': PRAGMA application_id of a ponder store. */
#define STORE_APPLICATION_ID 0x504E4452

/* store_migrations[v] upgrades a schema of version v to v + 1. */
extern const char *const store_migrations[STORE_SCHEMA_VERSION];

struct store {
    sqlite3 *db;
    char *path;
    unsigned flags;
    int64_t (*now_ms)(void *ctx);
    void *clock_ctx;
    char writer[64];            /* "boot-id/pid" of this process */
    sqlite3_stmt *append;       /* INSERT INTO chunks, kept prepared */
};

/* Writes "fmt..." into err and returns code. */
int store_fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The POSIX code for SQLite's last error on s->db, with "what: sqlite's message"
 * written into err. */
int store_db_fail(struct store *s, char *err, size_t errlen, const char *what);
/* Prepares sql; store_db_fail() on error. */
int store_prepare(struct store *s, const char *sql, sqlite3_stmt **st, char *err, size_t errlen);
/* Runs sql (no results); store_db_fail() on error. */
int store_exec(struct store *s, const char *sql, char *err, size_t errlen);
/* BEGIN IMMEDIATE / COMMIT / ROLLBACK (rollback never fails the caller). */
int store_begin(struct store *s, char *err, size_t errlen);
int store_commit(struct store *s, char *err, size_t errlen);
void store_rollback(struct store *s);
int64_t store_now(struct store *s);

/* A growable byte buffer; store_buf_* return ENOMEM on failure. */
struct store_buf {
    char *p;
    size_t n, cap;
};
int store_buf_add(struct store_buf *b, const char *s, size_t n);
int store_buf_str(struct store_buf *b, const char *s);
int store_buf_printf(struct store_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void store_buf_free(struct store_buf *b);

/* The committed chunks of a STREAMING message appended to answer and
 * reasoning (either may be NULL to skip). */
int store_read_chunks(struct store *s, int64_t msg, struct store_buf *answer, struct store_buf *reasoning,
                      char *err, size_t errlen);
/* Inside a transaction: folds the chunks into the message, deletes them and
 * sets its status. */
int store_fold_reply(struct store *s, int64_t msg, enum store_status status, const char *error_text,
                     char *err, size_t errlen);

/* Column text as a C string, "" for NULL. */
const char *store_col_text(sqlite3_stmt *st, int col);
/* Linear-interpolated percentile p (0..1) of sorted v[0..n); 0 when n is 0. */
double store_percentile(const double *v, size_t n, double p);

#endif
