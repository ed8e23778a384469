/* ponder fit: placeholder while it is being built (session 2). */
#include "app/cli.h"

static int fit_exec(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_error("'fit' is not built yet in this version");
}

const struct cmd cmd_fit = {
    .name = "fit",
    .summary = "(being built)",
    .usage = "usage: ponder fit\n",
    .exec = fit_exec,
};
