/* Device bandwidth probe: how fast the Vulkan device streams its own memory,
 * the figure the advisor divides a token's device bytes by.
 *
 * membw_vk_read() creates its own instance and device on physical device
 * `device` (vk_list_devices' index), two device-local buffers of `bytes`
 * (0: 256 MiB, less where the heap or the allocation limit is smaller),
 * and times `reps` (0: 4) buffer-to-buffer copies with GPU timestamps (the
 * host clock where the queue has none), best of three submissions.  The rate
 * is the bytes moved (read + written) per second in GB/s (1e9 bytes): a
 * copy's traffic is what a memory-bound shader reaches.  Everything is
 * released before it returns.  Returns 0, or ENODEV (no loader, no such
 * device, no device-local memory), ENOMEM, EIO, with one line in err. */
#ifndef PONDER_MEMBW_VK_H
#define PONDER_MEMBW_VK_H

#include <stddef.h>

int membw_vk_read(int device, size_t bytes, int reps, double *gb_per_s, char *err,
                  size_t errlen);

#endif
