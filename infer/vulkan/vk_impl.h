/* Inside infer/vulkan/: the instance (with its validation messenger) and
 * the capability probe shared by device.c and backend_vk.c. */
#ifndef PONDER_VK_IMPL_H
#define PONDER_VK_IMPL_H

#include <stdatomic.h>

#include <vulkan/vulkan.h>

#include "infer/vulkan/vk.h"

struct vk_inst {
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger;
    bool validating;
    atomic_uint n_messages;     /* validation warnings and errors */
    char first_message[512];
};

/* Creates the instance (portability enumeration when the loader offers it,
 * the validation layer when asked and installed).  ENODEV, ENOMEM, EIO. */
int vk_inst_create(struct vk_inst *vi, bool validation, char *err, size_t errlen);
void vk_inst_destroy(struct vk_inst *vi);
/* Fills d from physical device pd (index i). */
void vk_probe(VkPhysicalDevice pd, int i, struct vk_device_desc *d);
/* "out of device memory", "device lost", ... for a VkResult */
const char *vk_result_text(VkResult r);

#endif
