/* The config file: key = value parsing, comments, quotes, and the warnings
 * for unknown keys and bad values (which are skipped, never fatal). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/fixture.h"
#include "app/config.h"
#include "infer/model.h"

/* Parses text with warnings captured into a memory stream. */
static int parse(struct config *c, const char *text, char *warn, size_t cap)
{
    FILE *w = fmemopen(warn, cap, "w");
    assert_non_null(w);
    config_init(c);
    int n = config_parse(c, text, strlen(text), "cfg", w);
    fclose(w);
    return n;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void test_config_reads_every_key(void **state)
{
    (void)state;
    struct config c;
    char warn[1024] = "";
    const char *text = "model_dirs = /a:/b\n"
                       "default_model = r1-7b\n"
                       "favourites = r1-7b, r1-14b\n"
                       "ctx = 8192\n"
                       "threads = 6\n"
                       "backend = cpu\n"
                       "temp = 0\n"
                       "top_p = 0.9\n"
                       "top_k = 40\n"
                       "min_p = 0.05\n"
                       "fold_reasoning = false\n"
                       "mouse = off\n";
    assert_int_equal(parse(&c, text, warn, sizeof warn), 0);
    assert_string_equal(warn, "");
    assert_string_equal(c.model_dirs, "/a:/b");
    assert_string_equal(c.default_model, "r1-7b");
    assert_string_equal(c.favourites, "r1-7b, r1-14b");
    assert_true(c.has_ctx && c.has_threads && c.has_backend && c.has_temp && c.has_top_p &&
                c.has_top_k && c.has_min_p && c.has_fold_reasoning && c.has_mouse);
    assert_false(c.mouse);
    assert_int_equal(c.ctx, 8192);
    assert_int_equal(c.threads, 6);
    assert_int_equal(c.backend, MODEL_BACKEND_CPU);
    assert_close(c.temp, 0.0f, 0);
    assert_close(c.top_p, 0.9f, 1e-6);
    assert_int_equal(c.top_k, 40);
    assert_close(c.min_p, 0.05f, 1e-6);
    assert_false(c.fold_reasoning);
}

static void test_config_skips_comments_blanks_and_trims(void **state)
{
    (void)state;
    struct config c;
    char warn[1024] = "";
    const char *text = "# a comment\n\n   \n\t# indented comment = 3\n"
                       "  ctx\t=   4096   \r\n"
                       "backend=vulkan";           /* no final newline */
    assert_int_equal(parse(&c, text, warn, sizeof warn), 0);
    assert_string_equal(warn, "");
    assert_true(c.has_ctx);
    assert_int_equal(c.ctx, 4096);
    assert_int_equal(c.backend, MODEL_BACKEND_VULKAN);
    assert_false(c.has_threads);
    assert_false(c.has_temp);
}

static void test_config_unquotes_values(void **state)
{
    (void)state;
    struct config c;
    char warn[1024] = "";
    const char *text = "default_model = \"/models/my model # 1.gguf\"\n"
                       "favourites = \"  spaced  \"\n"
                       "backend = \"auto\"\n";
    assert_int_equal(parse(&c, text, warn, sizeof warn), 0);
    assert_string_equal(c.default_model, "/models/my model # 1.gguf");
    assert_string_equal(c.favourites, "  spaced  ");
    assert_int_equal(c.backend, MODEL_BACKEND_AUTO);
}

static void test_config_bad_values_warn_and_are_skipped(void **state)
{
    (void)state;
    static const struct {
        const char *line, *key;
    } bad[] = {
        {"ctx = lots\n", "ctx"},
        {"ctx = 8\n", "ctx"},
        {"threads = 0\n", "threads"},
        {"threads = 4x\n", "threads"},
        {"backend = metal\n", "backend"},
        {"temp = -1\n", "temp"},
        {"temp = nan\n", "temp"},
        {"top_p = 1.5\n", "top_p"},
        {"min_p = \n", "min_p"},
        {"top_k = -3\n", "top_k"},
        {"fold_reasoning = maybe\n", "fold_reasoning"},
        {"default_model = \"unterminated\n", "default_model"},
        {"default_model =\n", "default_model"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct config c;
        char warn[1024] = "", text[256];
        snprintf(text, sizeof text, "threads = 3\n%sctx = 2048\n", bad[i].line);
        assert_int_equal(parse(&c, text, warn, sizeof warn), 1);
        assert_int_equal(count_lines(warn), 1);
        assert_non_null(strstr(warn, "cfg:2:"));
        assert_non_null(strstr(warn, bad[i].key));
        /* the good lines around it still count */
        assert_int_equal(c.ctx, 2048);
        if (strncmp(bad[i].line, "threads", 7))
            assert_int_equal(c.threads, 3);
        assert_false(c.has_backend);
        assert_false(c.has_temp);
        assert_false(c.has_fold_reasoning);
        assert_string_equal(c.default_model, "");
    }
}

static void test_config_unknown_keys_and_junk_warn(void **state)
{
    (void)state;
    struct config c;
    char warn[1024] = "";
    const char *text = "colour = blue\nthreads = 2\njust some words\n= 3\n";
    assert_int_equal(parse(&c, text, warn, sizeof warn), 3);
    assert_int_equal(count_lines(warn), 3);
    assert_non_null(strstr(warn, "ponder: cfg:1: unknown key 'colour'"));
    assert_non_null(strstr(warn, "cfg:3:"));
    assert_non_null(strstr(warn, "cfg:4:"));
    assert_int_equal(c.threads, 2);
}

static void test_config_later_lines_win(void **state)
{
    (void)state;
    struct config c;
    char warn[256] = "";
    assert_int_equal(parse(&c, "temp = 1\ntemp = 0.25\n", warn, sizeof warn), 0);
    assert_close(c.temp, 0.25f, 1e-6);
}

static void test_config_expands_home_in_paths(void **state)
{
    (void)state;
    struct config c;
    char warn[256] = "";
    const char *old = getenv("HOME");
    char *saved = old ? strdup(old) : NULL;
    setenv("HOME", "/home/me", 1);
    parse(&c, "model_dirs = ~/m::/x:\ndefault_model = ~/r1.gguf\n", warn, sizeof warn);
    if (saved) {
        setenv("HOME", saved, 1);
        free(saved);
    } else
        unsetenv("HOME");
    assert_string_equal(c.model_dirs, "/home/me/m:/x");
    assert_string_equal(c.default_model, "/home/me/r1.gguf");
    const char *cur = c.model_dirs;
    char dir[64];
    assert_true(config_next_dir(&cur, dir, sizeof dir));
    assert_string_equal(dir, "/home/me/m");
    assert_true(config_next_dir(&cur, dir, sizeof dir));
    assert_string_equal(dir, "/x");
    assert_false(config_next_dir(&cur, dir, sizeof dir));
}

static void test_config_remote_lines_add_remote_models(void **state)
{
    (void)state;
    struct config c;
    char warn[1024] = "";
    setenv("HOME", "/home/u", 1);
    const char *text = "remote = r1-671b http://10.0.0.5:8000\n"
                       "remote =  big\thttps://gpu.example/v1   ~/keys/gpu  \n";
    assert_int_equal(parse(&c, text, warn, sizeof warn), 0);
    assert_string_equal(warn, "");
    assert_int_equal(c.n_remotes, 2);
    assert_string_equal(c.remotes[0].name, "r1-671b");
    assert_string_equal(c.remotes[0].url, "http://10.0.0.5:8000");
    assert_string_equal(c.remotes[0].keyfile, "");
    assert_string_equal(c.remotes[1].name, "big");
    assert_string_equal(c.remotes[1].url, "https://gpu.example/v1");
    assert_string_equal(c.remotes[1].keyfile, "/home/u/keys/gpu");
}

static void test_config_bad_remote_lines_warn(void **state)
{
    (void)state;
    static const struct {
        const char *name, *line;
    } cases[] = {
        {"no url", "remote = only-a-name"},
        {"not http", "remote = m ftp://host"},
        {"empty", "remote = "},
        {"extra words", "remote = m http://h k extra"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct config c;
        char warn[1024] = "";
        int n = parse(&c, cases[i].line, warn, sizeof warn);
        if (n != 1 || c.n_remotes != 0 || !strstr(warn, "remote"))
            fail_msg("case %s: %d warnings, %d remotes, '%s'", cases[i].name, n, c.n_remotes,
                     warn);
    }
    /* the ninth line is one too many */
    char text[2048] = "", warn[1024] = "";
    for (int i = 0; i < CONFIG_REMOTES_MAX + 1; i++) {
        size_t l = strlen(text);
        snprintf(text + l, sizeof text - l, "remote = m%d http://h:%d\n", i, 8000 + i);
    }
    struct config c;
    assert_int_equal(parse(&c, text, warn, sizeof warn), 1);
    assert_int_equal(c.n_remotes, CONFIG_REMOTES_MAX);
    assert_non_null(strstr(warn, "more than"));
}

static void test_config_missing_file_is_fine(void **state)
{
    (void)state;
    struct config c;
    char err[256] = "";
    int w = -1;
    config_init(&c);
    assert_int_equal(config_load_file(&c, "/nonexistent/ponder/config", stderr, &w, err, sizeof err), 0);
    assert_int_equal(w, 0);
    assert_false(c.has_ctx);
}

static void test_config_load_reads_xdg_config_home(void **state)
{
    (void)state;
    char dir[] = "/tmp/ponder-config-XXXXXX", sub[128], file[160];
    assert_non_null(mkdtemp(dir));
    snprintf(sub, sizeof sub, "%s/ponder", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(file, sizeof file, "%s/config", sub);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fputs("top_k = 7\nbogus = 1\n", f);
    fclose(f);
    const char *old = getenv("XDG_CONFIG_HOME");
    char *saved = old ? strdup(old) : NULL;
    setenv("XDG_CONFIG_HOME", dir, 1);
    char path[256];
    assert_int_equal(config_default_path(path, sizeof path), 0);
    assert_string_equal(path, file);
    struct config c;
    FILE *devnull = fopen("/dev/null", "w");
    int w = config_load(&c, devnull);
    fclose(devnull);
    if (saved) {
        setenv("XDG_CONFIG_HOME", saved, 1);
        free(saved);
    } else
        unsetenv("XDG_CONFIG_HOME");
    unlink(file);
    rmdir(sub);
    rmdir(dir);
    assert_int_equal(w, 1);
    assert_true(c.has_top_k);
    assert_int_equal(c.top_k, 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_reads_every_key),
        cmocka_unit_test(test_config_skips_comments_blanks_and_trims),
        cmocka_unit_test(test_config_unquotes_values),
        cmocka_unit_test(test_config_bad_values_warn_and_are_skipped),
        cmocka_unit_test(test_config_unknown_keys_and_junk_warn),
        cmocka_unit_test(test_config_later_lines_win),
        cmocka_unit_test(test_config_expands_home_in_paths),
        cmocka_unit_test(test_config_remote_lines_add_remote_models),
        cmocka_unit_test(test_config_bad_remote_lines_warn),
        cmocka_unit_test(test_config_missing_file_is_fine),
        cmocka_unit_test(test_config_load_reads_xdg_config_home),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
