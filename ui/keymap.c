/* The key table and the slash commands of the chat interface: one place
 * that the dispatcher, the help screen and the hint line read. */
#include <curses.h>

#include "ui/keymap.h"

const struct ui_binding ui_bindings[] = {
    {0, UI_ACT_NONE, "Enter", "send the message"},
    {UI_ALT('\r'), UI_ACT_NEWLINE, "Alt-Enter, Ctrl-J", "a new line in the message"},
    {UI_CTRL('j'), UI_ACT_NEWLINE, NULL, NULL},
    {UI_CTRL('c'), UI_ACT_STOP, "Esc, Ctrl-C", "stop the reply (it is kept, marked interrupted)"},
    {27, UI_ACT_STOP, NULL, NULL},
    {UI_CTRL('d'), UI_ACT_QUIT, "Ctrl-D", "quit (on an empty line)"},
    {KEY_F(1), UI_ACT_HELP, "F1, ?", "this help (? on an empty line)"},
    {KEY_F(2), UI_ACT_MODELS, "F2", "the model picker: choose and load a model"},
    {UI_CTRL('n'), UI_ACT_NEXT_MODEL, "Ctrl-N, Ctrl-P",
     "switch to the next / previous favourite (all models without favourites)"},
    {UI_CTRL('p'), UI_ACT_PREV_MODEL, NULL, NULL},
    {0, UI_ACT_NONE, "Alt-1 ... Alt-9", "switch to favourite (or model) 1 ... 9"},
    {UI_CTRL('b'), UI_ACT_BUDGET, "Ctrl-B",
     "thinking budget from the next turn: off, 256, 1024, 4096, unlimited"},
    {KEY_F(3), UI_ACT_HISTORY, "F3", "past conversations: type to search, Enter opens,"},
    {0, UI_ACT_NONE, "", "Del deletes, Ctrl-U undoes, Ctrl-T pins, Ctrl-E exports"},
    {KEY_F(4), UI_ACT_STATS, "F4", "speed statistics per model and device"},
    {UI_CTRL('o'), UI_ACT_FOLD, "Ctrl-O", "fold / unfold the reasoning nearest the bottom"},
    {UI_ALT('o'), UI_ACT_FOLD_ALL, "Alt-O", "fold / unfold every reasoning trace"},
    {KEY_PPAGE, UI_ACT_PAGE_UP, "PgUp, PgDn, wheel", "scroll the transcript"},
    {KEY_NPAGE, UI_ACT_PAGE_DOWN, NULL, NULL},
    {UI_ALT('n'), UI_ACT_NEW_CHAT, "Alt-N", "a new conversation"},
    {UI_CTRL('l'), UI_ACT_REDRAW, "Ctrl-L", "redraw the screen"},
    {0, UI_ACT_EDITOR, "Ctrl-X Ctrl-E", "edit the message in $EDITOR"},
    {0, UI_ACT_NONE, "Up, Down", "input history (kept in $XDG_STATE_HOME)"},
    {0, UI_ACT_NONE, "Ctrl-A, Ctrl-E, ...", "readline editing (~/.inputrc)"},
};
const size_t ui_n_bindings = sizeof ui_bindings / sizeof ui_bindings[0];

enum ui_action ui_key_action(int key)
{
    if (!key)
        return UI_ACT_NONE;
    for (size_t i = 0; i < ui_n_bindings; i++)
        if (ui_bindings[i].key == key)
            return ui_bindings[i].action;
    return UI_ACT_NONE;
}

const struct ui_command ui_commands[] = {
    {"/model", "[NAME]", "switch model (no name: the picker)"},
    {"/new", "", "a new conversation"},
    {"/history", "", "past conversations"},
    {"/stats", "", "speed statistics"},
    {"/set", "temp|top_p|top_k|min_p VALUE", "change a sampling setting"},
    {"/set budget", "N|off", "thinking budget in tokens (off: unlimited)"},
    {"/set budget-mode", "soft|hard", "soft: nudged to end; hard: cut at N"},
    {"/set think", "on|off", "off: answer directly, no reasoning"},
    {"/system", "[TEXT]", "set (or clear) the system prompt"},
    {"/export", "[FILE]", "write this conversation as Markdown"},
    {"/rename", "TITLE", "rename this conversation"},
    {"/help", "", "every key and command"},
    {"/quit", "", "quit"},
};
const size_t ui_n_commands = sizeof ui_commands / sizeof ui_commands[0];
