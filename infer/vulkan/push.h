/* The parameters every pipeline reads, mirrored from shaders/common.glsl:
 * u[] counts and offsets (in 4-byte words), f[] float parameters; each
 * shader documents what its fields mean.  A dispatch's parameters are
 * written to a slot of the parameter buffer (binding 6, std430: slots of
 * 80 bytes) whose index is the only push constant. */
#ifndef PONDER_VK_PUSH_H
#define PONDER_VK_PUSH_H

#include <assert.h>
#include <stdint.h>

struct vk_push {
    uint32_t u[16];
    float f[4];
};
static_assert(sizeof(struct vk_push) == 80, "parameters must match common.glsl");

#endif
