/* The CPU backend: the operations of backend.h on host memory, run by a team
 * of threads with the kernels cpu_select() picks for this CPU.  Weights are
 * used in place in the mapped file; activations come from a grow-only arena
 * (no allocation per token once the first pass has sized it); the KV cache is
 * F16 or F32. */
#ifndef PONDER_BACKEND_CPU_H
#define PONDER_BACKEND_CPU_H

#include <stddef.h>
#include <stdint.h>

#include "../backend.h"
#include "cpu.h"

/* 0 or an errno (ENOMEM, or the pool's); n_threads >= 1; max caps the ISA
 * (CPU_ISA_COUNT: the best this CPU has). */
int cpu_backend_create(int n_threads, enum cpu_isa max, struct backend **out, char *err,
                       size_t errlen);
const struct cpu_kernels *cpu_backend_kernels(const struct backend *b);
int cpu_backend_threads(const struct backend *b);
/* Bytes allocated for the KV cache by the last kv_init (no value rows with
 * kv_shape.v_in_k). */
uint64_t cpu_backend_kv_bytes(const struct backend *b);

#endif
