/* An empty history store in memory (SQLite's ":memory:") for the tests of
 * the modules that use one (ui/session, ui/switch).  Header only, because it
 * fails the running test itself: include it after the cmocka prelude
 * <stdarg.h> <stddef.h> <setjmp.h> <stdint.h> <cmocka.h>. */
#ifndef PONDER_FX_STORE_H
#define PONDER_FX_STORE_H

#include "history/store.h"

/* The new store; the test fails when it cannot be opened.  store_close() it. */
static inline struct store *fx_store_mem(void)
{
    struct store *st = NULL;
    char err[256];
    if (store_open(":memory:", 0, &st, err, sizeof err))
        fail_msg("store_open: %s", err);
    return st;
}

#endif
