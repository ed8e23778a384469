/* ponder devices: the Vulkan devices the loader finds, with the limits and
 * optional features the Vulkan backend probes once per device. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/cli.h"
#include "infer/vulkan/vk.h"

static int devices_exec(int argc, char **argv);

const struct cmd cmd_devices = {
    .name = "devices",
    .summary = "Vulkan devices, their limits and features",
    .usage = "usage: ponder devices\n\n"
             "Lists the Vulkan devices (index for --device, name, type, driver), their\n"
             "memory heaps and budget, subgroup size, buffer and shared-memory limits,\n"
             "and which optional features the backend can use.  The default device is\n"
             "marked with '*': the discrete GPU with the most memory, else integrated,\n"
             "else software.\n",
    .exec = devices_exec,
};

static const char *yn(bool b) { return b ? "yes" : "no"; }

static int devices_exec(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(cmd_devices.usage, stdout);
            return 0;
        }
        return cli_usage_error(&cmd_devices, "unexpected argument '%s'", argv[i]);
    }
    struct vk_device_desc d[16];
    int n = 0;
    char err[256] = "";
    int rc = vk_list_devices(d, 16, &n, err, sizeof err);
    if (rc)
        return cli_error("%s", err);
    if (n > 16)
        n = 16;
    int def = vk_default_device(d, n);
    for (int i = 0; i < n; i++) {
        const struct vk_device_desc *x = &d[i];
        printf("%c%d: %s (%s)\n", i == def ? '*' : ' ', i, x->name, x->type);
        printf("    driver: %s, Vulkan %u.%u.%u, vendor 0x%04x device 0x%04x\n",
               x->driver[0] ? x->driver : "?", (x->api_version >> 22) & 0x7f,
               (x->api_version >> 12) & 0x3ff, x->api_version & 0xfff, x->vendor_id, x->device_id);
        for (int h = 0; h < x->n_heaps; h++) {
            printf("    heap %d: %.2f GB%s", h, (double)x->heap_size[h] / 1e9,
                   x->heap_device_local[h] ? " device-local" : "");
            if (x->heap_budget[h])
                printf(", budget %.2f GB", (double)x->heap_budget[h] / 1e9);
            printf("\n");
        }
        printf("    limits: storage buffer range %.0f MiB, max allocation %.0f MiB, "
               "shared memory %u KiB, push constants %u B, subgroup %u\n",
               (double)x->max_storage_range / 1048576.0, (double)x->max_alloc / 1048576.0,
               x->max_shared / 1024, x->max_push, x->subgroup_size);
        printf("    features: 16-bit storage %s, 8-bit storage %s, float16 %s, int8 %s, "
               "integer dot product %s,\n"
               "              subgroup arithmetic %s, subgroup shuffle %s, cooperative matrix %s, "
               "memory budget %s\n",
               yn(x->storage16), yn(x->storage8), yn(x->float16), yn(x->int8), yn(x->int_dot),
               yn(x->subgroup_arith), yn(x->subgroup_shuffle), yn(x->coopmat),
               yn(x->memory_budget));
    }
    return 0;
}
