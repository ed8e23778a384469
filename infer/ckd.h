/* Overflow-checked size arithmetic, in the argument order of C23 <stdckdint.h>.
 * Each returns true when the exact result does not fit (and *r is then
 * unspecified), false when *r holds the result. */
#ifndef PONDER_CKD_H
#define PONDER_CKD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline bool ckd_add_size(size_t *r, size_t a, size_t b) { return __builtin_add_overflow(a, b, r); }
static inline bool ckd_mul_size(size_t *r, size_t a, size_t b) { return __builtin_mul_overflow(a, b, r); }
static inline bool ckd_add_u64(uint64_t *r, uint64_t a, uint64_t b) { return __builtin_add_overflow(a, b, r); }
static inline bool ckd_mul_u64(uint64_t *r, uint64_t a, uint64_t b) { return __builtin_mul_overflow(a, b, r); }
static inline bool ckd_mul_i64(int64_t *r, int64_t a, int64_t b) { return __builtin_mul_overflow(a, b, r); }

#endif
