/* ponder eval: one forward pass over given ids or text, printing the top
 * logits of the last (or every) position, optionally dumping raw logits. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "app/cli.h"
#include "app/text.h"
#include "infer/model.h"
#include "infer/tokenizer.h"

enum { OPT_IDS = OPT_CMD_BASE, OPT_TOP, OPT_ALL, OPT_LOGITS_OUT, OPT_JSON, OPT_PROMPT = 'p' };

static int eval_exec(int argc, char **argv);

const struct cmd cmd_eval = {
    .name = "eval",
    .summary = "logits of a prompt (conformance, debugging)",
    .usage = "usage: ponder eval -m MODEL (--ids \"1 2 3\" | -p TEXT) [--top K] [--all]\n"
             "                   [--logits-out FILE] [--json]\n\n"
             "Feeds the ids (or the text, tokenized with BOS and special tokens) in one pass\n"
             "and prints the top K logits (default 10) of the last position, or of every\n"
             "position with --all, as 'pos rank id logit piece' lines.  --logits-out writes\n"
             "the raw little-endian float32 logits, n_vocab per printed position.\n"
             "The KV cache is F32 unless --kv-type says otherwise.\n",
    .exec = eval_exec,
};

struct ranked {
    int32_t id;
    float logit;
};

static int by_logit(const void *a, const void *b)
{
    const struct ranked *x = a, *y = b;
    if (x->logit != y->logit)
        return x->logit < y->logit ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int parse_ids(const char *s, struct tokens *out)
{
    while (*s) {
        while (*s == ' ' || *s == ',' || *s == '\t' || *s == '\n')
            s++;
        if (!*s)
            break;
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (errno || end == s || v < 0 || v > INT32_MAX)
            return EINVAL;
        if (tokens_push(out, (int32_t)v))
            return ENOMEM;
        s = end;
    }
    return out->n ? 0 : EINVAL;
}

static int eval_exec(int argc, char **argv)
{
    static const struct option longopts[] = {
        CLI_COMMON_LONG_OPTIONS,
        {"ids", required_argument, 0, OPT_IDS},
        {"prompt", required_argument, 0, OPT_PROMPT},
        {"top", required_argument, 0, OPT_TOP},
        {"all", no_argument, 0, OPT_ALL},
        {"logits-out", required_argument, 0, OPT_LOGITS_OUT},
        {"json", no_argument, 0, OPT_JSON},
        {0, 0, 0, 0},
    };
    struct cli_opts o;
    cli_defaults(&o);
    const char *ids_text = NULL, *prompt = NULL, *logits_out = NULL;
    long top = 10;
    bool all = false, json = false;
    int c, rc;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, CLI_COMMON_SHORT "p:", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_IDS: ids_text = optarg; break;
        case OPT_PROMPT: prompt = optarg; break;
        case OPT_TOP:
            if (cli_parse_int(optarg, 1, 1 << 24, &top))
                return cli_usage_error(&cmd_eval, "--top wants a number >= 1, not '%s'", optarg);
            break;
        case OPT_ALL: all = true; break;
        case OPT_LOGITS_OUT: logits_out = optarg; break;
        case OPT_JSON: json = true; break;
        case '?': return cli_bad_option(&cmd_eval, argc, argv);
        default:
            rc = cli_common(&cmd_eval, c, optarg, &o);
            if (rc < 0) {
                fputs(cmd_eval.usage, stdout);
                return 0;
            }
            if (rc)
                return rc;
        }
    }
    if (optind < argc)
        return cli_usage_error(&cmd_eval, "unexpected argument '%s'", argv[optind]);
    if (!o.model)
        return cli_usage_error(&cmd_eval, "which model? give -m MODEL");
    if (!ids_text == !prompt)
        return cli_usage_error(&cmd_eval, "give either --ids or -p TEXT");

    struct tokens ids = {0};
    if (ids_text && (rc = parse_ids(ids_text, &ids))) {
        tokens_free(&ids);
        return cli_usage_error(&cmd_eval, "--ids wants token ids separated by spaces");
    }
    struct model *m = NULL;
    float *logits = NULL;
    FILE *lf = NULL;
    json_t *arr = NULL;
    int status = 1;
    if (cli_load_model(&o, KV_TYPE_F32, &m))
        goto out;
    const struct tokenizer *tok = model_tokenizer(m);
    char err[512] = "";
    if (prompt && (rc = tokenizer_encode(tok, prompt, strlen(prompt), true, true, &ids, err,
                                         sizeof err))) {
        cli_error("%s", err);
        goto out;
    }
    if (ids.n == 0) {
        cli_error("the prompt gives no tokens");
        goto out;
    }
    int n_vocab = model_info(m)->n_vocab;
    if (ids.n > (size_t)model_info(m)->n_ctx) {
        cli_error("%zu tokens do not fit the context of %d (use --ctx)", ids.n,
                  model_info(m)->n_ctx);
        goto out;
    }
    size_t n_rows = all ? ids.n : 1;
    logits = malloc(n_rows * (size_t)n_vocab * sizeof(float));
    struct ranked *rank = malloc((size_t)n_vocab * sizeof *rank);
    if (!logits || !rank) {
        free(rank);
        cli_error("out of memory");
        goto out;
    }
    if ((rc = model_decode(m, ids.ids, (int)ids.n, logits, all, err, sizeof err))) {
        free(rank);
        cli_error("%s", err);
        goto out;
    }
    if (logits_out) {
        lf = fopen(logits_out, "wb");
        if (!lf || fwrite(logits, sizeof(float), n_rows * (size_t)n_vocab, lf) !=
                       n_rows * (size_t)n_vocab || fclose(lf)) {
            lf = NULL;
            free(rank);
            cli_error("%s: %s", logits_out, strerror(errno));
            goto out;
        }
        lf = NULL;
    }
    if (json)
        arr = json_array();
    if (top > n_vocab)
        top = n_vocab;
    for (size_t r = 0; r < n_rows; r++) {
        size_t pos = all ? r : ids.n - 1;
        const float *row = logits + r * (size_t)n_vocab;
        for (int i = 0; i < n_vocab; i++)
            rank[i] = (struct ranked){i, row[i]};
        qsort(rank, (size_t)n_vocab, sizeof *rank, by_logit);
        for (long k = 0; k < top; k++) {
            char piece[256], shown[1024];
            int len = tokenizer_piece(tok, rank[k].id, true, piece, sizeof piece);
            text_escape(piece, len < 0 ? 0 : len > (int)sizeof piece ? sizeof piece : (size_t)len,
                        shown, sizeof shown);
            if (json)
                json_array_append_new(arr, json_pack("{s:i, s:i, s:i, s:f, s:s}", "pos", (int)pos,
                                                     "rank", (int)k, "id", (int)rank[k].id,
                                                     "logit", (double)rank[k].logit, "piece",
                                                     shown));
            else
                printf("%zu %ld %d %.6f %s\n", pos, k, rank[k].id, (double)rank[k].logit, shown);
        }
    }
    free(rank);
    if (json) {
        char *s = json_dumps(arr, JSON_COMPACT);
        if (s)
            puts(s);
        free(s);
    }
    status = fflush(stdout) ? cli_error("writing the output: %s", strerror(errno)) : 0;
out:
    json_decref(arr);
    free(logits);
    tokens_free(&ids);
    model_free(m);
    return status;
}
