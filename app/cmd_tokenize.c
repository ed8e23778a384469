/* ponder tokenize: text to token ids with a model's vocabulary, and the
 * check of a JSONL file of cases against it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "app/cli.h"
#include "app/text.h"
#include "infer/gguf.h"
#include "infer/tokenizer.h"

enum { OPT_NO_SPECIAL = OPT_CMD_BASE, OPT_BOS, OPT_PIECES, OPT_CASES };

static int tokenize_exec(int argc, char **argv);

const struct cmd cmd_tokenize = {
    .name = "tokenize",
    .summary = "text to token ids, or check tokenizer cases",
    .usage = "usage: ponder tokenize -m MODEL [--no-special] [--bos] [--pieces] TEXT\n"
             "       ponder tokenize -m MODEL --cases FILE.jsonl\n\n"
             "Prints the ids of TEXT (special tokens parsed unless --no-special; BOS first\n"
             "with --bos), or with --pieces one 'id piece' line each.  --cases checks every\n"
             "line {\"text\", \"parse_special\", \"add_bos\", \"ids\"} and prints\n"
             "\"N passed, N failed\" (exit 1 when any failed).  MODEL may be a vocabulary-only\n"
             "GGUF file.\n",
    .exec = tokenize_exec,
};

static void print_ids(FILE *f, const int32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s%d", i ? " " : "", ids[i]);
    fputc('\n', f);
}

static int check_cases(const struct tokenizer *tok, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return cli_error("%s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, passed = 0, failed = 0, status = 0;
    struct tokens got = {0};
    while ((len = getline(&line, &cap, f)) > 0) {
        lineno++;
        json_error_t je;
        json_t *c = json_loadb(line, (size_t)len, JSON_ALLOW_NUL, &je);
        json_t *text = c ? json_object_get(c, "text") : NULL;
        json_t *ids = c ? json_object_get(c, "ids") : NULL;
        if (!json_is_string(text) || !json_is_array(ids)) {
            json_decref(c);
            status = cli_error("%s:%d: not a case {\"text\", \"ids\", ...}", path, lineno);
            break;
        }
        bool special = json_is_true(json_object_get(c, "parse_special"));
        bool bos = json_is_true(json_object_get(c, "add_bos"));
        char err[256];
        got.n = 0;
        int rc = tokenizer_encode(tok, json_string_value(text), json_string_length(text), bos,
                                  special, &got, err, sizeof err);
        bool same = rc == 0 && got.n == json_array_size(ids);
        for (size_t i = 0; same && i < got.n; i++)
            same = json_integer_value(json_array_get(ids, i)) == got.ids[i];
        if (same) {
            passed++;
        } else {
            failed++;
            if (failed <= 10) {
                char shown[512];
                text_escape(json_string_value(text), json_string_length(text), shown, sizeof shown);
                fprintf(stderr, "%s:%d: \"%s\" (special %d, bos %d)\n  expected:", path, lineno,
                        shown, special, bos);
                for (size_t i = 0; i < json_array_size(ids); i++)
                    fprintf(stderr, " %lld", (long long)json_integer_value(json_array_get(ids, i)));
                fprintf(stderr, "\n  got:     ");
                print_ids(stderr, got.ids, got.n);
            }
        }
        json_decref(c);
    }
    free(line);
    tokens_free(&got);
    fclose(f);
    if (status)
        return status;
    printf("%d passed, %d failed\n", passed, failed);
    if (fflush(stdout) || ferror(stdout))
        return cli_error("writing the output: %s", strerror(errno));
    return failed ? 1 : 0;
}

static int tokenize_exec(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_COMMON_LONG_OPTIONS,
        {"no-special", no_argument, 0, OPT_NO_SPECIAL},
        {"bos", no_argument, 0, OPT_BOS},
        {"pieces", no_argument, 0, OPT_PIECES},
        {"cases", required_argument, 0, OPT_CASES},
        {0, 0, 0, 0},
    };
    struct cli_opts o;
    cli_defaults(&o);
    bool special = true, bos = false, pieces = false;
    const char *cases = NULL;
    int c, rc;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT, longopts, NULL)) != -1) {
        switch (c) {
        case OPT_NO_SPECIAL: special = false; break;
        case OPT_BOS: bos = true; break;
        case OPT_PIECES: pieces = true; break;
        case OPT_CASES: cases = optarg; break;
        case '?': return cli_bad_option(&cmd_tokenize, argc, argv);
        default:
            rc = cli_common(&cmd_tokenize, c, optarg, &o);
            if (rc < 0) {
                fputs(cmd_tokenize.usage, stdout);
                return 0;
            }
            if (rc)
                return rc;
        }
    }
    if (!o.model)
        return cli_usage_error(&cmd_tokenize, "which model? give -m MODEL");
    if (!cases && optind != argc - 1)
        return cli_usage_error(&cmd_tokenize, "give one TEXT argument, or --cases FILE");
    if (cases && optind != argc)
        return cli_usage_error(&cmd_tokenize, "unexpected argument '%s'", argv[optind]);

    char err[512] = "";
    struct gguf *g = NULL;
    struct tokenizer *tok = NULL;
    int status = 1;
    if ((rc = gguf_open(o.model, &g, err, sizeof err)) ||
        (rc = tokenizer_load(g, &tok, err, sizeof err))) {
        cli_error("%s", err);
        goto out;
    }
    if (cases) {
        status = check_cases(tok, cases);
        goto out;
    }
    struct tokens ids = {0};
    const char *text = argv[optind];
    if ((rc = tokenizer_encode(tok, text, strlen(text), bos, special, &ids, err, sizeof err))) {
        cli_error("%s", err);
        goto out;
    }
    if (pieces) {
        for (size_t i = 0; i < ids.n; i++) {
            char piece[512], shown[2048];
            int len = tokenizer_piece(tok, ids.ids[i], true, piece, sizeof piece);
            text_escape(piece, len < 0 ? 0 : len > (int)sizeof piece ? sizeof piece : (size_t)len,
                        shown, sizeof shown);
            printf("%d %s\n", ids.ids[i], shown);
        }
    } else {
        print_ids(stdout, ids.ids, ids.n);
    }
    tokens_free(&ids);
    status = fflush(stdout) || ferror(stdout) ? cli_error("writing the output: %s", strerror(errno)) : 0;
out:
    tokenizer_free(tok);
    gguf_close(g);
    return status;
}
