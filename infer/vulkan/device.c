/* The Vulkan instance, the list of devices and the probe of their limits
 * and optional features, done once per device. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/err.h"
#include "infer/vulkan/vk_impl.h"

const char *vk_result_text(VkResult r)
{
    switch (r) {
    case VK_SUCCESS: return "success";
    case VK_ERROR_OUT_OF_HOST_MEMORY: return "out of host memory";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "out of device memory";
    case VK_ERROR_INITIALIZATION_FAILED: return "initialization failed";
    case VK_ERROR_DEVICE_LOST: return "device lost";
    case VK_ERROR_LAYER_NOT_PRESENT: return "layer not present";
    case VK_ERROR_EXTENSION_NOT_PRESENT: return "extension not present";
    case VK_ERROR_FEATURE_NOT_PRESENT: return "feature not present";
    case VK_ERROR_INCOMPATIBLE_DRIVER: return "no compatible Vulkan driver";
    case VK_ERROR_TOO_MANY_OBJECTS: return "too many objects";
    case VK_ERROR_OUT_OF_POOL_MEMORY: return "out of descriptor pool memory";
    default: return "Vulkan error";
    }
}

static VKAPI_ATTR VkBool32 VKAPI_CALL on_message(VkDebugUtilsMessageSeverityFlagBitsEXT sev,
                                                 VkDebugUtilsMessageTypeFlagsEXT type,
                                                 const VkDebugUtilsMessengerCallbackDataEXT *data,
                                                 void *user)
{
    (void)type;
    struct vk_inst *vi = user;
    if (sev & (VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
               VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT)) {
        if (atomic_fetch_add(&vi->n_messages, 1) == 0)
            snprintf(vi->first_message, sizeof vi->first_message, "%s",
                     data && data->pMessage ? data->pMessage : "?");
    }
    return VK_FALSE;
}

static bool has_layer(const char *name)
{
    uint32_t n = 0;
    if (vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || n == 0)
        return false;
    VkLayerProperties *p = calloc(n, sizeof *p);
    bool found = false;
    if (p && vkEnumerateInstanceLayerProperties(&n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++)
            found |= !strcmp(p[i].layerName, name);
    free(p);
    return found;
}

static bool has_instance_ext(const char *name)
{
    uint32_t n = 0;
    if (vkEnumerateInstanceExtensionProperties(NULL, &n, NULL) != VK_SUCCESS || n == 0)
        return false;
    VkExtensionProperties *p = calloc(n, sizeof *p);
    bool found = false;
    if (p && vkEnumerateInstanceExtensionProperties(NULL, &n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++)
            found |= !strcmp(p[i].extensionName, name);
    free(p);
    return found;
}

int vk_inst_create(struct vk_inst *vi, bool validation, char *err, size_t errlen)
{
    memset(vi, 0, sizeof *vi);
    atomic_init(&vi->n_messages, 0);
    const char *exts[2], *layers[1];
    uint32_t n_ext = 0, n_layer = 0;
    VkInstanceCreateFlags flags = 0;
    if (has_instance_ext("VK_KHR_portability_enumeration")) {
        exts[n_ext++] = "VK_KHR_portability_enumeration";
        flags |= 0x00000001; /* VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR */
    }
    if (validation && has_layer("VK_LAYER_KHRONOS_validation") &&
        has_instance_ext(VK_EXT_DEBUG_UTILS_EXTENSION_NAME)) {
        layers[n_layer++] = "VK_LAYER_KHRONOS_validation";
        exts[n_ext++] = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
        vi->validating = true;
    }
    VkApplicationInfo app = {
        .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
        .pApplicationName = "ponder",
        .pEngineName = "ponder",
        .apiVersion = VK_API_VERSION_1_2,
    };
    VkDebugUtilsMessengerCreateInfoEXT mci = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
        .pfnUserCallback = on_message,
        .pUserData = vi,
    };
    VkInstanceCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
        .pNext = vi->validating ? &mci : NULL,
        .flags = flags,
        .pApplicationInfo = &app,
        .enabledLayerCount = n_layer,
        .ppEnabledLayerNames = layers,
        .enabledExtensionCount = n_ext,
        .ppEnabledExtensionNames = exts,
    };
    VkResult r = vkCreateInstance(&ci, NULL, &vi->instance);
    if (r != VK_SUCCESS) {
        vi->instance = VK_NULL_HANDLE;
        return err_set(err, errlen, r == VK_ERROR_OUT_OF_HOST_MEMORY ? ENOMEM : ENODEV,
                    "no Vulkan: cannot create an instance (%s)", vk_result_text(r));
    }
    if (vi->validating) {
        PFN_vkCreateDebugUtilsMessengerEXT create = (PFN_vkCreateDebugUtilsMessengerEXT)
            vkGetInstanceProcAddr(vi->instance, "vkCreateDebugUtilsMessengerEXT");
        if (!create || create(vi->instance, &mci, NULL, &vi->messenger) != VK_SUCCESS)
            vi->messenger = VK_NULL_HANDLE;
    }
    return 0;
}

void vk_inst_destroy(struct vk_inst *vi)
{
    if (!vi->instance)
        return;
    if (vi->messenger) {
        PFN_vkDestroyDebugUtilsMessengerEXT destroy = (PFN_vkDestroyDebugUtilsMessengerEXT)
            vkGetInstanceProcAddr(vi->instance, "vkDestroyDebugUtilsMessengerEXT");
        if (destroy)
            destroy(vi->instance, vi->messenger, NULL);
    }
    vkDestroyInstance(vi->instance, NULL);
    vi->instance = VK_NULL_HANDLE;
}

static bool has_device_ext(VkPhysicalDevice pd, const char *name)
{
    uint32_t n = 0;
    if (vkEnumerateDeviceExtensionProperties(pd, NULL, &n, NULL) != VK_SUCCESS || n == 0)
        return false;
    VkExtensionProperties *p = calloc(n, sizeof *p);
    bool found = false;
    if (p && vkEnumerateDeviceExtensionProperties(pd, NULL, &n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++)
            found |= !strcmp(p[i].extensionName, name);
    free(p);
    return found;
}

void vk_probe(VkPhysicalDevice pd, int i, struct vk_device_desc *d)
{
    memset(d, 0, sizeof *d);
    d->index = i;
    VkPhysicalDeviceProperties pr;
    vkGetPhysicalDeviceProperties(pd, &pr);
    snprintf(d->name, sizeof d->name, "%s", pr.deviceName);
    static const char *const types[] = {"other", "integrated", "discrete", "virtual", "cpu"};
    snprintf(d->type, sizeof d->type, "%s",
             pr.deviceType <= VK_PHYSICAL_DEVICE_TYPE_CPU ? types[pr.deviceType] : "other");
    d->api_version = pr.apiVersion;
    d->vendor_id = pr.vendorID;
    d->device_id = pr.deviceID;
    d->max_storage_range = pr.limits.maxStorageBufferRange;
    d->max_shared = pr.limits.maxComputeSharedMemorySize;
    d->max_push = pr.limits.maxPushConstantsSize;
    bool v12 = VK_API_VERSION_MINOR(pr.apiVersion) >= 2 || VK_API_VERSION_MAJOR(pr.apiVersion) > 1;
    bool v13 = VK_API_VERSION_MINOR(pr.apiVersion) >= 3 || VK_API_VERSION_MAJOR(pr.apiVersion) > 1;

    /* properties: subgroups, maintenance3 (max allocation), driver */
    VkPhysicalDeviceDriverProperties drv = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
    VkPhysicalDeviceMaintenance3Properties m3 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES,
        .pNext = v12 ? &drv : NULL};
    VkPhysicalDeviceSubgroupProperties sg = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES, .pNext = &m3};
    VkPhysicalDeviceProperties2 pr2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
                                       .pNext = &sg};
    vkGetPhysicalDeviceProperties2(pd, &pr2);
    d->subgroup_size = sg.subgroupSize;
    d->subgroup_arith = (sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                        (sg.supportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT);
    d->subgroup_shuffle = (sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                          (sg.supportedOperations & VK_SUBGROUP_FEATURE_SHUFFLE_BIT);
    d->max_alloc = m3.maxMemoryAllocationSize;
    if (v12)
        snprintf(d->driver, sizeof d->driver, "%.60s %.60s", drv.driverName, drv.driverInfo);

    /* features */
    VkPhysicalDeviceVulkan13Features f13 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES};
    VkPhysicalDeviceVulkan12Features f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
                                            .pNext = v13 ? &f13 : NULL};
    VkPhysicalDevice16BitStorageFeatures s16 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES, .pNext = v12 ? &f12 : NULL};
    VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &s16};
    vkGetPhysicalDeviceFeatures2(pd, &f2);
    d->storage16 = s16.storageBuffer16BitAccess;
    d->storage8 = v12 && f12.storageBuffer8BitAccess;
    d->float16 = v12 && f12.shaderFloat16;
    d->int8 = v12 && f12.shaderInt8;
    d->int_dot = (v13 && f13.shaderIntegerDotProduct) ||
                 has_device_ext(pd, "VK_KHR_shader_integer_dot_product");
    d->coopmat = has_device_ext(pd, "VK_KHR_cooperative_matrix") ||
                 has_device_ext(pd, "VK_NV_cooperative_matrix");
    d->memory_budget = has_device_ext(pd, VK_EXT_MEMORY_BUDGET_EXTENSION_NAME);

    /* memory heaps, with the budget when the driver reports it */
    VkPhysicalDeviceMemoryBudgetPropertiesEXT bud = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT};
    VkPhysicalDeviceMemoryProperties2 mp2 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2,
        .pNext = d->memory_budget ? &bud : NULL};
    vkGetPhysicalDeviceMemoryProperties2(pd, &mp2);
    const VkPhysicalDeviceMemoryProperties *mp = &mp2.memoryProperties;
    d->n_heaps = (int)(mp->memoryHeapCount < VK_DESC_MAX_HEAPS ? mp->memoryHeapCount : VK_DESC_MAX_HEAPS);
    for (int h = 0; h < d->n_heaps; h++) {
        d->heap_size[h] = mp->memoryHeaps[h].size;
        d->heap_budget[h] = d->memory_budget ? bud.heapBudget[h] : 0;
        d->heap_device_local[h] = mp->memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT;
        if (d->heap_device_local[h] && d->heap_size[h] > d->device_local_bytes)
            d->device_local_bytes = d->heap_size[h];
    }
}

int vk_list_devices(struct vk_device_desc *out, int max, int *n, char *err, size_t errlen)
{
    *n = 0;
    struct vk_inst vi;
    int rc = vk_inst_create(&vi, false, err, errlen);
    if (rc)
        return rc;
    uint32_t count = 0;
    VkResult r = vkEnumeratePhysicalDevices(vi.instance, &count, NULL);
    VkPhysicalDevice *pds = count ? calloc(count, sizeof *pds) : NULL;
    if (r == VK_SUCCESS && count && !pds)
        rc = err_set(err, errlen, ENOMEM, "out of memory");
    else if (r == VK_SUCCESS && count)
        r = vkEnumeratePhysicalDevices(vi.instance, &count, pds);
    if (!rc && r != VK_SUCCESS && r != VK_INCOMPLETE)
        rc = err_set(err, errlen, EIO, "cannot list Vulkan devices: %s", vk_result_text(r));
    if (!rc && count == 0)
        rc = err_set(err, errlen, ENODEV, "no Vulkan device found");
    for (uint32_t i = 0; !rc && i < count; i++)
        if ((int)i < max)
            vk_probe(pds[i], (int)i, &out[i]);
    if (!rc)
        *n = (int)count;
    free(pds);
    vk_inst_destroy(&vi);
    return rc;
}

int vk_default_device(const struct vk_device_desc *d, int n)
{
    static const char *const order[] = {"discrete", "integrated", "virtual", "cpu", "other"};
    for (size_t o = 0; o < sizeof order / sizeof order[0]; o++) {
        int best = -1;
        for (int i = 0; i < n; i++)
            if (!strcmp(d[i].type, order[o]) &&
                (best < 0 || d[i].device_local_bytes > d[best].device_local_bytes))
                best = i;
        if (best >= 0)
            return best;
    }
    return -1;
}
