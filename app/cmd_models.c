/* ponder models: placeholder while it is being built (session 2). */
#include "app/cli.h"

static int models_exec(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return cli_error("'models' is not built yet in this version");
}

const struct cmd cmd_models = {
    .name = "models",
    .summary = "(being built)",
    .usage = "usage: ponder models\n",
    .exec = models_exec,
};
