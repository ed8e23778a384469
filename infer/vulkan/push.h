/* The push constants every pipeline uses, mirrored from shaders/common.glsl:
 * u[] counts and offsets (in 4-byte words), f[] float parameters; each
 * shader documents what its fields mean. */
#ifndef PONDER_VK_PUSH_H
#define PONDER_VK_PUSH_H

#include <assert.h>
#include <stdint.h>

struct vk_push {
    uint32_t u[16];
    float f[4];
};
static_assert(sizeof(struct vk_push) == 80, "push constants must match common.glsl");

#endif
