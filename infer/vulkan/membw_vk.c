/* Device memory bandwidth through Vulkan (membw_vk.h): timed copies between
 * two device-local buffers, on a device of its own so that nothing else's
 * state is touched. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <vulkan/vulkan.h>

#include "infer/clock.h"
#include "infer/err.h"
#include "infer/vulkan/membw_vk.h"

#define MEMBW_VK_DEFAULT_BYTES ((VkDeviceSize)256 << 20)
#define MEMBW_VK_MAX_DEVICES 16
#define MEMBW_VK_TRIES 3

struct probe {
    VkInstance inst;
    VkDevice dev;
    VkBuffer buf[2];
    VkDeviceMemory mem[2];
    VkCommandPool pool;
    VkQueryPool query;
    VkFence fence;
};

static void probe_free(struct probe *p)
{
    if (p->dev) {
        vkDeviceWaitIdle(p->dev);
        if (p->fence)
            vkDestroyFence(p->dev, p->fence, NULL);
        if (p->query)
            vkDestroyQueryPool(p->dev, p->query, NULL);
        if (p->pool)
            vkDestroyCommandPool(p->dev, p->pool, NULL);
        for (int i = 0; i < 2; i++) {
            if (p->buf[i])
                vkDestroyBuffer(p->dev, p->buf[i], NULL);
            if (p->mem[i])
                vkFreeMemory(p->dev, p->mem[i], NULL);
        }
        vkDestroyDevice(p->dev, NULL);
    }
    if (p->inst)
        vkDestroyInstance(p->inst, NULL);
}

/* The largest device-local heap's memory type that buffers of `usage` may use. */
static int pick_memory(VkPhysicalDevice pd, uint32_t type_bits, uint32_t *type,
                       VkDeviceSize *heap_size)
{
    VkPhysicalDeviceMemoryProperties mp;
    vkGetPhysicalDeviceMemoryProperties(pd, &mp);
    int best = -1;
    for (uint32_t i = 0; i < mp.memoryTypeCount; i++) {
        if (!(type_bits & (1u << i)) ||
            !(mp.memoryTypes[i].propertyFlags & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT))
            continue;
        uint32_t h = mp.memoryTypes[i].heapIndex;
        if (best < 0 || mp.memoryHeaps[h].size > mp.memoryHeaps[mp.memoryTypes[best].heapIndex].size)
            best = (int)i;
    }
    if (best < 0)
        return ENODEV;
    *type = (uint32_t)best;
    *heap_size = mp.memoryHeaps[mp.memoryTypes[best].heapIndex].size;
    return 0;
}

int membw_vk_read(int device, size_t bytes, int reps, double *gb_per_s, char *err,
                  size_t errlen)
{
    *gb_per_s = 0;
    if (reps < 0 || device < 0)
        return err_set(err, errlen, EINVAL, "membw_vk: bad device or repetitions");
    if (reps == 0)
        reps = 4;
    struct probe p = {0};
    int rc = 0;
    VkResult vr;
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
                             .pApplicationName = "ponder membw",
                             .apiVersion = VK_API_VERSION_1_1};
    VkInstanceCreateInfo ici = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
                                .pApplicationInfo = &app};
    if ((vr = vkCreateInstance(&ici, NULL, &p.inst)) != VK_SUCCESS) {
        p.inst = NULL;
        return err_set(err, errlen, ENODEV, "membw_vk: no Vulkan instance (%d)", (int)vr);
    }
    VkPhysicalDevice pds[MEMBW_VK_MAX_DEVICES];
    uint32_t n = MEMBW_VK_MAX_DEVICES;
    vr = vkEnumeratePhysicalDevices(p.inst, &n, pds);
    if ((vr != VK_SUCCESS && vr != VK_INCOMPLETE) || (uint32_t)device >= n) {
        rc = err_set(err, errlen, ENODEV, "membw_vk: no Vulkan device %d", device);
        goto out;
    }
    VkPhysicalDevice pd = pds[device];
    VkPhysicalDeviceProperties props;
    vkGetPhysicalDeviceProperties(pd, &props);
    VkQueueFamilyProperties qf[16];
    uint32_t nq = 16;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, qf);
    int fam = -1;
    for (uint32_t i = 0; i < nq; i++)
        if ((qf[i].queueFlags & (VK_QUEUE_COMPUTE_BIT | VK_QUEUE_GRAPHICS_BIT)) &&
            (fam < 0 || qf[i].timestampValidBits > qf[fam].timestampValidBits))
            fam = (int)i;
    if (fam < 0) {
        rc = err_set(err, errlen, ENODEV, "membw_vk: %s has no compute queue", props.deviceName);
        goto out;
    }
    bool stamps = qf[fam].timestampValidBits > 0 && props.limits.timestampPeriod > 0;
    float prio = 1;
    VkDeviceQueueCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                   .queueFamilyIndex = (uint32_t)fam, .queueCount = 1,
                                   .pQueuePriorities = &prio};
    VkDeviceCreateInfo dci = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
                              .queueCreateInfoCount = 1, .pQueueCreateInfos = &qci};
    if ((vr = vkCreateDevice(pd, &dci, NULL, &p.dev)) != VK_SUCCESS) {
        p.dev = NULL;
        rc = err_set(err, errlen, EIO, "membw_vk: vkCreateDevice failed (%d)", (int)vr);
        goto out;
    }
    VkQueue queue;
    vkGetDeviceQueue(p.dev, (uint32_t)fam, 0, &queue);

    VkDeviceSize size = bytes ? (VkDeviceSize)bytes : MEMBW_VK_DEFAULT_BYTES;
    size &= ~(VkDeviceSize)255;
    if (size < 4096) {
        rc = err_set(err, errlen, EINVAL, "membw_vk: %zu bytes is too small", bytes);
        goto out;
    }
    for (int i = 0; i < 2; i++) {
        VkBufferCreateInfo bci = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = size,
                                  .usage = VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                           VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                                  .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
        if (vkCreateBuffer(p.dev, &bci, NULL, &p.buf[i]) != VK_SUCCESS) {
            p.buf[i] = VK_NULL_HANDLE;
            rc = err_set(err, errlen, ENOMEM, "membw_vk: cannot create a %llu-byte buffer",
                      (unsigned long long)size);
            goto out;
        }
        VkMemoryRequirements req;
        vkGetBufferMemoryRequirements(p.dev, p.buf[i], &req);
        uint32_t type;
        VkDeviceSize heap;
        if (pick_memory(pd, req.memoryTypeBits, &type, &heap)) {
            rc = err_set(err, errlen, ENODEV, "membw_vk: %s has no device-local memory",
                      props.deviceName);
            goto out;
        }
        if (req.size * 4 > heap) {
            rc = err_set(err, errlen, ENOMEM, "membw_vk: the device heap is too small for %llu bytes",
                      (unsigned long long)req.size);
            goto out;
        }
        VkMemoryAllocateInfo mai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                                    .allocationSize = req.size, .memoryTypeIndex = type};
        if (vkAllocateMemory(p.dev, &mai, NULL, &p.mem[i]) != VK_SUCCESS) {
            p.mem[i] = VK_NULL_HANDLE;
            rc = err_set(err, errlen, ENOMEM, "membw_vk: cannot allocate %llu bytes of device memory",
                      (unsigned long long)req.size);
            goto out;
        }
        vkBindBufferMemory(p.dev, p.buf[i], p.mem[i], 0);
    }
    VkCommandPoolCreateInfo cpi = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                   .queueFamilyIndex = (uint32_t)fam};
    VkQueryPoolCreateInfo qpi = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                 .queryType = VK_QUERY_TYPE_TIMESTAMP, .queryCount = 2};
    VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    if (vkCreateCommandPool(p.dev, &cpi, NULL, &p.pool) != VK_SUCCESS ||
        (stamps && vkCreateQueryPool(p.dev, &qpi, NULL, &p.query) != VK_SUCCESS) ||
        vkCreateFence(p.dev, &fci, NULL, &p.fence) != VK_SUCCESS) {
        rc = err_set(err, errlen, ENOMEM, "membw_vk: cannot create the command objects");
        goto out;
    }
    VkCommandBufferAllocateInfo cai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                       .commandPool = p.pool,
                                       .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                       .commandBufferCount = 1};
    VkCommandBuffer cb;
    if (vkAllocateCommandBuffers(p.dev, &cai, &cb) != VK_SUCCESS) {
        rc = err_set(err, errlen, ENOMEM, "membw_vk: cannot allocate a command buffer");
        goto out;
    }
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    vkBeginCommandBuffer(cb, &bi);
    if (stamps) {
        vkCmdResetQueryPool(cb, p.query, 0, 2);
        vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, p.query, 0);
    }
    VkBufferCopy region = {.size = size};
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT |
                                           VK_ACCESS_TRANSFER_WRITE_BIT};
    for (int r = 0; r < reps; r++) {
        /* alternate directions, so each copy reads what the last one wrote */
        vkCmdCopyBuffer(cb, p.buf[r & 1], p.buf[!(r & 1)], 1, &region);
        vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT,
                             0, 1, &mb, 0, NULL, 0, NULL);
    }
    if (stamps)
        vkCmdWriteTimestamp(cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, p.query, 1);
    if (vkEndCommandBuffer(cb) != VK_SUCCESS) {
        rc = err_set(err, errlen, EIO, "membw_vk: recording the copies failed");
        goto out;
    }
    double best = 0;
    for (int t = 0; t < MEMBW_VK_TRIES + 1; t++) {      /* the first one warms up */
        VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1,
                           .pCommandBuffers = &cb};
        vkResetFences(p.dev, 1, &p.fence);
        double t0 = clock_now_s();
        if (vkQueueSubmit(queue, 1, &si, p.fence) != VK_SUCCESS ||
            vkWaitForFences(p.dev, 1, &p.fence, VK_TRUE, 30ull * 1000000000ull) != VK_SUCCESS) {
            rc = err_set(err, errlen, EIO, "membw_vk: the copies did not complete on %s",
                      props.deviceName);
            goto out;
        }
        double dt = clock_now_s() - t0;
        if (stamps) {
            uint64_t ts[2];
            if (vkGetQueryPoolResults(p.dev, p.query, 0, 2, sizeof ts, ts, sizeof ts[0],
                                      VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT) ==
                    VK_SUCCESS &&
                ts[1] > ts[0]) {
                uint64_t mask = qf[fam].timestampValidBits >= 64
                                    ? UINT64_MAX
                                    : (((uint64_t)1 << qf[fam].timestampValidBits) - 1);
                dt = (double)((ts[1] - ts[0]) & mask) * props.limits.timestampPeriod * 1e-9;
            }
        }
        double gbs = dt > 0 ? 2.0 * (double)size * reps / dt / 1e9 : 0;
        if (t > 0 && gbs > best)
            best = gbs;
    }
    *gb_per_s = best;
out:
    probe_free(&p);
    return rc;
}
