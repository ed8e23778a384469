/* Run-time kernel selection: the portable table, overlaid by the AVX2 and
 * AVX-512 tables where this CPU runs them and the caller's cap allows. */
#include "cpu.h"

#include <string.h>

enum cpu_isa cpu_detect(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx2") &&
        __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
        return CPU_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
        __builtin_cpu_supports("f16c"))
        return CPU_ISA_AVX2;
    return CPU_ISA_PORTABLE;
}

void cpu_select(struct cpu_kernels *k, enum cpu_isa max)
{
    enum cpu_isa have = cpu_detect();
    memset(k, 0, sizeof *k);
    cpu_ref_fill(k);
    k->isa = CPU_ISA_PORTABLE;
    k->isa_name = "portable";
    if (have >= CPU_ISA_AVX2 && max >= CPU_ISA_AVX2)
        cpu_avx2_fill(k);
    if (have >= CPU_ISA_AVX512 && max >= CPU_ISA_AVX512)
        cpu_avx512_fill(k);
}
