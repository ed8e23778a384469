/* ponder: chat with DeepSeek-R1 models in the terminal, offline.
 * main() picks the command; each command parses its own options. */
#include <stdio.h>
#include <string.h>

#include "app/cli.h"

#ifndef PONDER_VERSION
#define PONDER_VERSION "0.1.0"
#endif

static const struct cmd *const commands[] = {
    &cmd_chat,    &cmd_run,   &cmd_tokenize, &cmd_eval, &cmd_bench, &cmd_history,
    &cmd_stats,   &cmd_devices, &cmd_models, &cmd_fit,  &cmd_serve};


static void usage(FILE *f)
{
    fprintf(f, "usage: ponder [COMMAND] [OPTIONS]\n\n"
               "Chat with DeepSeek-R1 reasoning models on this machine, offline.\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
    fprintf(f, "\n'ponder COMMAND --help' describes a command; 'man ponder' has the rest.\n");
}

int main(int argc, char **argv)
{
    const char *name = argc > 1 ? argv[1] : "chat";
    if (!strcmp(name, "--version") || !strcmp(name, "-V")) {
        printf("ponder %s\n", PONDER_VERSION);
        return 0;
    }
    if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(name, commands[i]->name))
            return commands[i]->exec(argc - 1, argv + 1);
    if (name[0] == '-')     /* options without a command are chat's: ponder -c, ponder -m X */
        return cmd_chat.exec(argc, argv);
    return cli_usage_error(NULL, "unknown command '%s'", name);
}
