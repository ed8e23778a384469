/* ponder history: list, show, search, export and remove the conversations
 * kept in the history store. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app/cli.h"
#include "history/store.h"

enum {
    OPT_IN = OPT_CMD_BASE, OPT_FORMAT, OPT_LIMIT, OPT_NO_REASONING,
    OPT_OUTPUT = 'o',
};

static int history_exec(int argc, char **argv);

const struct cmd cmd_history = {
    .name = "history",
    .summary = "list, show, search, export or remove past conversations",
    .usage = "usage: ponder history list [--limit N]\n"
             "       ponder history show ID [--no-reasoning]\n"
             "       ponder history search TEXT [--in answers|reasoning|all]\n"
             "       ponder history export ID [--format md|json] [-o FILE] [--no-reasoning]\n"
             "       ponder history rm ID\n\n"
             "The conversations of the history store ($XDG_DATA_HOME/ponder/ponder.db, or\n"
             "--db PATH).  'list' shows the newest first (pinned ones on top) with their\n"
             "models, message count and median generation speed; 'show' prints one as\n"
             "Markdown with its reasoning; 'search' finds words in answers, reasoning or\n"
             "both; 'export' writes Markdown (reasoning in <details> blocks) or JSON;\n"
             "'rm' removes a conversation for good.\n",
    .exec = history_exec,
};

/* Opens --db, or the default store (created when missing). */
static int open_store(const struct cli_opts *o, struct store **s)
{
    char path[4096], err[512] = "";
    unsigned flags = 0;
    const char *p = o->db;
    if (!p) {
        if (store_default_path(getenv("XDG_DATA_HOME"), getenv("HOME"), path, sizeof path, err,
                               sizeof err))
            return cli_error("%s", err);
        p = path;
        flags = STORE_CREATE;
    }
    if (store_open(p, flags, s, err, sizeof err))
        return cli_error("%s", err);
    return 0;
}

static void local_time(char *out, size_t cap, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!localtime_r(&t, &tm) || !strftime(out, cap, "%Y-%m-%d %H:%M", &tm))
        snprintf(out, cap, "?");
}

/* s cut to at most width characters (UTF-8 aware), into out. */
static const char *clip(const char *s, size_t width, char *out, size_t cap)
{
    size_t n = 0, chars = 0;
    while (s[n] && chars < width && n + 4 < cap) {
        n++;
        while ((s[n] & 0xC0) == 0x80)
            n++;
        chars++;
    }
    memcpy(out, s, n);
    out[n] = 0;
    return out;
}

struct list_ctx {
    int n;
};

static int print_conv(void *ctx, const struct store_conv_info *c)
{
    struct list_ctx *l = ctx;
    char when[32], models[128], tps[16];
    if (l->n++ == 0)
        printf("%-6s %-16s %4s %6s  %-24s %s\n", "ID", "UPDATED", "MSGS", "TOK/S", "MODEL",
               "TITLE");
    local_time(when, sizeof when, c->updated);
    if (c->median_gen_tps > 0)
        snprintf(tps, sizeof tps, "%.1f", c->median_gen_tps);
    else
        snprintf(tps, sizeof tps, "-");
    char id[24];
    snprintf(id, sizeof id, "%lld%s", (long long)c->id, c->pinned ? "*" : "");
    printf("%-6s %-16s %4d %6s  %-24s %s\n", id, when, c->n_messages, tps,
           c->models[0] ? clip(c->models, 24, models, sizeof models) : "-",
           c->title[0] ? c->title : "(untitled)");
    return 0;
}

struct search_ctx {
    int n;
    bool color;
};

static int print_hit(void *ctx, const struct store_hit *h)
{
    struct search_ctx *x = ctx;
    x->n++;
    const char *where = h->in_reasoning                ? "reasoning"
                        : h->role == STORE_ROLE_ASSISTANT ? "answer"
                                                          : store_role_name(h->role);
    printf("%lld  %-9s  %s: ", (long long)h->conv_id, where,
           h->title[0] ? h->title : "(untitled)");
    for (const char *p = h->snippet; *p; p++) {
        if (*p == STORE_MARK_ON[0])
            fputs(x->color ? "\033[1m" : "**", stdout);
        else if (*p == STORE_MARK_OFF[0])
            fputs(x->color ? "\033[0m" : "**", stdout);
        else if (*p == '\n' || *p == '\r' || *p == '\t')
            putchar(' ');
        else
            putchar(*p);
    }
    putchar('\n');
    return 0;
}

static int parse_id(const char *sub, int argc, char **argv, int at, int64_t *id)
{
    long v;
    if (at >= argc)
        return cli_usage_error(&cmd_history, "'%s' wants a conversation ID", sub);
    if (cli_parse_int(argv[at], 1, LONG_MAX, &v))
        return cli_usage_error(&cmd_history, "a conversation ID is a number, not '%s'", argv[at]);
    if (at + 1 < argc)
        return cli_usage_error(&cmd_history, "unexpected argument '%s'", argv[at + 1]);
    *id = v;
    return 0;
}

/* Writes the export to path through a temporary file, so a failure never
 * leaves half a file behind. */
static int export_to(struct store *s, int64_t id, enum store_export_format fmt, unsigned flags,
                     const char *path)
{
    char err[512] = "";
    if (!path || !strcmp(path, "-")) {
        if (store_export(s, id, fmt, flags, stdout, err, sizeof err))
            return cli_error("%s", err);
        return 0;
    }
    size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    if (!tmp)
        return cli_error("out of memory");
    snprintf(tmp, n, "%s.tmp", path);
    int status = 1;
    FILE *f = fopen(tmp, "w");
    if (!f) {
        cli_error("%s: %s", tmp, strerror(errno));
        goto out;
    }
    int rc = store_export(s, id, fmt, flags, f, err, sizeof err);
    if (fclose(f) != 0 && !rc) {
        snprintf(err, sizeof err, "%s: %s", tmp, strerror(errno));
        rc = EIO;
    }
    if (!rc && rename(tmp, path) != 0) {
        snprintf(err, sizeof err, "%s: %s", path, strerror(errno));
        rc = EIO;
    }
    if (rc) {
        unlink(tmp);
        cli_error("%s", err);
        goto out;
    }
    status = 0;
out:
    free(tmp);
    return status;
}

static int history_exec(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_COMMON_LONG_OPTIONS,
        {"in", required_argument, 0, OPT_IN},
        {"format", required_argument, 0, OPT_FORMAT},
        {"output", required_argument, 0, OPT_OUTPUT},
        {"limit", required_argument, 0, OPT_LIMIT},
        {"no-reasoning", no_argument, 0, OPT_NO_REASONING},
        {0, 0, 0, 0},
    };
    struct cli_opts o;
    cli_defaults(&o);
    const char *in = NULL, *format = NULL, *output = NULL;
    long limit = 0;
    bool limit_set = false, no_reasoning = false;
    int c, rc;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "o:", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_IN: in = optarg; break;
        case OPT_FORMAT: format = optarg; break;
        case OPT_OUTPUT: output = optarg; break;
        case OPT_NO_REASONING: no_reasoning = true; break;
        case OPT_LIMIT:
            if (cli_parse_int(optarg, 1, INT_MAX, &limit))
                return cli_usage_error(&cmd_history, "--limit wants a number >= 1, not '%s'",
                                       optarg);
            limit_set = true;
            break;
        case '?': return cli_bad_option(&cmd_history, argc, argv);
        default:
            rc = cli_common(&cmd_history, c, optarg, &o);
            if (rc < 0) {
                fputs(cmd_history.usage, stdout);
                return 0;
            }
            if (rc)
                return rc;
        }
    }
    if (optind >= argc)
        return cli_usage_error(&cmd_history, "which? list, show, search, export or rm");
    const char *sub = argv[optind];
    bool is_list = !strcmp(sub, "list"), is_show = !strcmp(sub, "show"),
         is_search = !strcmp(sub, "search"), is_export = !strcmp(sub, "export"),
         is_rm = !strcmp(sub, "rm");
    if (!is_list && !is_show && !is_search && !is_export && !is_rm)
        return cli_usage_error(&cmd_history, "unknown subcommand '%s'", sub);
    if (in && !is_search)
        return cli_usage_error(&cmd_history, "--in goes with 'search'");
    if ((format || output) && !is_export)
        return cli_usage_error(&cmd_history, "--format and -o go with 'export'");
    if (limit_set && !is_list)
        return cli_usage_error(&cmd_history, "--limit goes with 'list'");
    if (no_reasoning && !is_show && !is_export)
        return cli_usage_error(&cmd_history, "--no-reasoning goes with 'show' and 'export'");

    enum store_search_in where = STORE_SEARCH_ALL;
    if (in) {
        if (!strcmp(in, "answers"))
            where = STORE_SEARCH_ANSWERS;
        else if (!strcmp(in, "reasoning"))
            where = STORE_SEARCH_REASONING;
        else if (strcmp(in, "all"))
            return cli_usage_error(&cmd_history, "--in is answers, reasoning or all, not '%s'", in);
    }
    enum store_export_format fmt = STORE_EXPORT_MARKDOWN;
    if (format) {
        if (!strcmp(format, "json"))
            fmt = STORE_EXPORT_JSON;
        else if (strcmp(format, "md") && strcmp(format, "markdown"))
            return cli_usage_error(&cmd_history, "--format is md or json, not '%s'", format);
    }
    int64_t id = 0;
    char *text = NULL;
    if ((is_show || is_export || is_rm) && (rc = parse_id(sub, argc, argv, optind + 1, &id)))
        return rc;
    if (is_list && optind + 1 < argc)
        return cli_usage_error(&cmd_history, "unexpected argument '%s'", argv[optind + 1]);
    if (is_search) {
        if (optind + 1 >= argc)
            return cli_usage_error(&cmd_history, "search for what? give TEXT");
        size_t n = 1;
        for (int i = optind + 1; i < argc; i++)
            n += strlen(argv[i]) + 1;
        if (!(text = calloc(1, n)))
            return cli_error("out of memory");
        for (int i = optind + 1; i < argc; i++) {
            if (i > optind + 1)
                strcat(text, " ");
            strcat(text, argv[i]);
        }
    }

    struct store *s = NULL;
    char err[512] = "";
    int status = 1;
    unsigned flags = no_reasoning ? 0 : STORE_EXPORT_REASONING;
    if (open_store(&o, &s))
        goto out;
    if (is_list) {
        struct list_ctx l = {0};
        if (store_conv_list(s, (int)limit, print_conv, &l, err, sizeof err)) {
            cli_error("%s", err);
            goto out;
        }
        if (l.n == 0)
            fprintf(stderr, "ponder: no conversations yet\n");
    } else if (is_show) {
        if (export_to(s, id, STORE_EXPORT_MARKDOWN, flags, NULL))
            goto out;
    } else if (is_export) {
        if (export_to(s, id, fmt, flags, output))
            goto out;
    } else if (is_search) {
        const char *nc = getenv("NO_COLOR"), *term = getenv("TERM");
        struct search_ctx x = {
            .color = isatty(STDOUT_FILENO) && !(nc && *nc) && !(term && !strcmp(term, "dumb")),
        };
        if (store_search(s, text, where, 0, print_hit, &x, err, sizeof err)) {
            cli_error("%s", err);
            goto out;
        }
        if (x.n == 0)
            fprintf(stderr, "ponder: nothing found\n");
    } else if (is_rm) {
        if (store_conv_delete(s, id, err, sizeof err) || store_conv_purge(s, id, err, sizeof err)) {
            cli_error("%s", err);
            goto out;
        }
        printf("removed conversation %lld\n", (long long)id);
    }
    status = 0;
out:
    free(text);
    store_close(s);
    return status;
}
