// Per-frame sum-of-squares kernels, one translation unit per instruction set.
//
// Each kernel writes, for `frames` consecutive frames of `frame_len` samples
// starting at `x`, the exact-as-possible sum of squares of that frame to out[f].
// Int16 sums are exact: squares are widened to 64 bits before they are added
// (a pair of full-scale squares, 2 * 32768^2 = 2^31, already overflows int32).
// Float32 samples are widened to double before squaring, so each square is exact
// and only the additions round; this keeps every kernel within ~1e-15 relative
// of the sequential JS loop, at the cost of half the lanes of a float32 sum.
#pragma once

#include <cstddef>
#include <cstdint>

namespace framehub {

using SumSqI16 = void (*)(const int16_t* x, size_t frames, size_t frame_len, double* out);
using SumSqF32 = void (*)(const float* x, size_t frames, size_t frame_len, double* out);

struct Kernel {
  const char* name;
  SumSqI16 i16;
  SumSqF32 f32;
};

// The ISA kernels are compiled with function-level target attributes rather than
// global -m flags, so the addon still loads on CPUs that lack them; addon.cc only
// calls a kernel after the CPU says it supports it.
#if defined(__GNUC__) || defined(__clang__)
#define FH_TARGET(isa) __attribute__((target(isa)))
#else
#define FH_TARGET(isa)
#endif

#if defined(__x86_64__) || defined(_M_X64)
#define FH_X86_64 1
#endif
#if defined(__aarch64__) || defined(_M_ARM64)
#define FH_ARM64 1
#endif
#if defined(FH_X86_64) && (defined(__GNUC__) || defined(__clang__))
// __builtin_cpu_supports is how the AVX kernels are gated; MSVC builds use SSE2.
#define FH_HAVE_AVX 1
#endif

void SumSqI16Scalar(const int16_t* x, size_t frames, size_t frame_len, double* out);
void SumSqF32Scalar(const float* x, size_t frames, size_t frame_len, double* out);

#ifdef FH_X86_64
void SumSqI16Sse2(const int16_t* x, size_t frames, size_t frame_len, double* out);
void SumSqF32Sse2(const float* x, size_t frames, size_t frame_len, double* out);
#endif
#ifdef FH_HAVE_AVX
void SumSqI16Avx2(const int16_t* x, size_t frames, size_t frame_len, double* out);
void SumSqF32Avx2(const float* x, size_t frames, size_t frame_len, double* out);
void SumSqI16Avx512(const int16_t* x, size_t frames, size_t frame_len, double* out);
void SumSqF32Avx512(const float* x, size_t frames, size_t frame_len, double* out);
#endif
#ifdef FH_ARM64
void SumSqI16Neon(const int16_t* x, size_t frames, size_t frame_len, double* out);
void SumSqF32Neon(const float* x, size_t frames, size_t frame_len, double* out);
#endif

}  // namespace framehub
