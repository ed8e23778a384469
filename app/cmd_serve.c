/* ponder serve: placeholder while it is being built (session 2). */
#include "app/cli.h"

static int serve_exec(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_error("'serve' is not built yet in this version");
}

const struct cmd cmd_serve = {
    .name = "serve",
    .summary = "(being built)",
    .usage = "usage: ponder serve\n",
    .exec = serve_exec,
};
