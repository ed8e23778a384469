/* The keys and slash commands of the chat interface, as a table: the help
 * screen (F1), the key-hint line and the man page all describe these rows,
 * and ui.c dispatches on the same key codes.  Key codes are ncurses codes
 * (KEY_F(1), KEY_PPAGE) or characters (UI_CTRL('c')); UI_ALT(c) is Esc
 * followed by c. */
#ifndef PONDER_UI_KEYMAP_H
#define PONDER_UI_KEYMAP_H

#include <stddef.h>

#define UI_CTRL(c) ((c) & 0x1f)
#define UI_ALT(c) (0x10000 + (c))

enum ui_action {
    UI_ACT_NONE,
    UI_ACT_HELP, UI_ACT_MODELS, UI_ACT_HISTORY, UI_ACT_STATS,
    UI_ACT_STOP, UI_ACT_QUIT, UI_ACT_PAGE_UP, UI_ACT_PAGE_DOWN, UI_ACT_NEWLINE,
    UI_ACT_FOLD, UI_ACT_FOLD_ALL, UI_ACT_NEXT_MODEL, UI_ACT_PREV_MODEL, UI_ACT_NEW_CHAT,
    UI_ACT_REDRAW, UI_ACT_EDITOR, UI_ACT_BUDGET,
};

struct ui_binding {
    int key;                    /* the code ui.c receives */
    enum ui_action action;
    const char *keys;           /* as the help shows them */
    const char *help;
};

/* The bindings; the help also lists keys without a code (Enter, readline's). */
extern const struct ui_binding ui_bindings[];
extern const size_t ui_n_bindings;
/* The action bound to key, or UI_ACT_NONE. */
enum ui_action ui_key_action(int key);

struct ui_command {
    const char *name;           /* "/model" */
    const char *args;           /* "[NAME]" */
    const char *help;
};
extern const struct ui_command ui_commands[];
extern const size_t ui_n_commands;

#endif
