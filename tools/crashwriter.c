/* crashwriter: writes into a history store the way ponder does, for the
 * command-line tests: a fixed set of conversations with runs (fixture), or one
 * reply streamed piece by piece until the process is killed (stream). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "history/store.h"

static int fail(const char *what, const char *err)
{
    fprintf(stderr, "crashwriter: %s: %s\n", what, err);
    return 1;
}

struct reply {
    int64_t model;
    const char *reasoning, *answer;
    double gen_tps, prompt_tps, ttft_ms;
    const char *backend, *device;
};

static int add_reply(struct store *s, int64_t conv, const struct reply *r, char *err,
                     size_t errlen)
{
    int64_t msg;
    int rc = store_reply_begin(s, conv, r->model, &msg, err, errlen);
    if (!rc)
        rc = store_reply_append(s, msg, STORE_PART_REASONING, r->reasoning,
                                strlen(r->reasoning), err, errlen);
    if (!rc)
        rc = store_reply_append(s, msg, STORE_PART_ANSWER, r->answer, strlen(r->answer), err,
                                errlen);
    struct store_run run = {
        .model_id = r->model, .backend = r->backend, .device = r->device, .driver = "",
        .n_ctx = 4096, .n_threads = 8, .prompt_tokens = 20, .reasoning_tokens = 30,
        .answer_tokens = 10, .prompt_tps = r->prompt_tps, .gen_tps = r->gen_tps,
        .ttft_ms = r->ttft_ms, .stop_reason = "eos", .temp = 0.6, .top_p = 0.95,
        .repeat_penalty = 1, .seed = 7,
    };
    if (!rc)
        rc = store_reply_finish(s, msg, STORE_STATUS_COMPLETE, NULL, &run, err, errlen);
    return rc;
}

/* Two models, three conversations (one pinned), runs on two devices. */
static int fixture(struct store *s)
{
    char err[512] = "";
    int64_t qwen, llama, c1, c2, c3;
    struct store_model mq = {.path = "/models/qwen.gguf", .name = "R1-Distill-Qwen-1.5B",
                             .arch = "qwen2", .n_params = 1777088000, .weight_type = "Q4_K_M",
                             .file_size = 1117320736, .fingerprint = "fixture-qwen"};
    struct store_model ml = {.path = "/models/llama.gguf", .name = "R1-Distill-Llama-8B",
                             .arch = "llama", .n_params = 8030261248, .weight_type = "Q8_0",
                             .file_size = 8540775680, .fingerprint = "fixture-llama"};
    if (store_model_use(s, &mq, &qwen, err, sizeof err) ||
        store_model_use(s, &ml, &llama, err, sizeof err))
        return fail("models", err);

    if (store_conv_create(s, NULL, &c1, err, sizeof err) ||
        store_message_add(s, c1, STORE_ROLE_USER, "Why do zebras have stripes?", NULL, 0, NULL,
                          err, sizeof err))
        return fail("conversation 1", err);
    const struct reply r1[] = {
        {qwen, "The user asks about zebras. Camouflage, flies, heat.",
         "Zebra stripes most likely keep biting flies away.", 40, 500, 60, "cpu", "EPYC 7B13"},
        {qwen, "Recall the horsefly study.", "Flies fail to land on striped surfaces.", 44, 520,
         58, "cpu", "EPYC 7B13"},
    };
    for (size_t i = 0; i < 2; i++) {
        if (i && store_message_add(s, c1, STORE_ROLE_USER, "Tell me more.", NULL, 0, NULL, err,
                                   sizeof err))
            return fail("conversation 1", err);
        if (add_reply(s, c1, &r1[i], err, sizeof err))
            return fail("conversation 1", err);
    }

    if (store_conv_create(s, NULL, &c2, err, sizeof err) ||
        store_message_add(s, c2, STORE_ROLE_USER, "What is 17 * 23?", NULL, 0, NULL, err,
                          sizeof err))
        return fail("conversation 2", err);
    const struct reply r2 = {llama, "17 * 20 = 340, 17 * 3 = 51, sum 391.", "17 * 23 = 391.",
                             120, 3000, 15, "vulkan", "RTX 4090"};
    if (add_reply(s, c2, &r2, err, sizeof err))
        return fail("conversation 2", err);

    if (store_conv_create(s, "Pinned notes", &c3, err, sizeof err) ||
        store_message_add(s, c3, STORE_ROLE_USER, "Remember: penguins.", NULL, 0, NULL, err,
                          sizeof err) ||
        store_conv_pin(s, c3, true, err, sizeof err))
        return fail("conversation 3", err);
    return 0;
}

/* Streams "piece N " forever, printing N on stdout after each commit. */
static int stream(struct store *s)
{
    char err[512] = "";
    int64_t conv, msg;
    if (store_conv_create(s, NULL, &conv, err, sizeof err) ||
        store_message_add(s, conv, STORE_ROLE_USER, "Stream until killed", NULL, 0, NULL, err,
                          sizeof err) ||
        store_reply_begin(s, conv, 0, &msg, err, sizeof err))
        return fail("stream", err);
    printf("conversation %lld\n", (long long)conv);
    fflush(stdout);
    for (long i = 0;; i++) {
        char piece[32];
        int n = snprintf(piece, sizeof piece, "piece %ld ", i);
        if (store_reply_append(s, msg, i < 10 ? STORE_PART_REASONING : STORE_PART_ANSWER, piece,
                               (size_t)n, err, sizeof err))
            return fail("stream", err);
        printf("%ld\n", i);
        fflush(stdout);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "fixture") && strcmp(argv[1], "stream"))) {
        fprintf(stderr, "usage: crashwriter fixture|stream DB\n");
        return 2;
    }
    char err[512] = "";
    struct store *s = NULL;
    if (store_open(argv[2], STORE_CREATE, &s, err, sizeof err))
        return fail(argv[2], err);
    int rc = !strcmp(argv[1], "fixture") ? fixture(s) : stream(s);
    store_close(s);
    return rc;
}
