// Per-frame sum-of-squares kernels, one translation unit per instruction set.
//
// Each kernel writes, for `frames` consecutive frames of `frame_len` samples
// starting at `x`, the sum of squares of that frame to out[f].
//
// Int16 sums are exact: squares are widened to 64 bits before they are added
// (a pair of full-scale squares, 2 * 32768^2 = 2^31, already overflows int32).
//
// Float32: the scalar, SSE2 and NEON kernels widen each sample to double, so
// squares are exact and only the additions round (~1e-15 from the JS loop). Widening
// costs a conversion per 8 samples, which halved AVX throughput, so the AVX2 and
// AVX-512 kernels square and add in float32 for at most kFloatBlock terms per lane,
// add the four accumulators pairwise, and only then widen into double sums. Each
// float lane value is off by at most (kFloatBlock + 2) * 2^-24 = 3.6e-7 relative,
// so the frame is too (all terms are >= 0). Float32 range is the catch: squares
// above 3.4e38 overflow and below 1.2e-38 lose bits, so a frame whose sum is not
// finite or is under kFloatSumMin (-300 dBFS, never real audio) is redone in double.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

namespace framehub {

constexpr int kFloatBlock = 4;
constexpr double kFloatSumMin = 1e-30;

inline bool FloatSumUsable(double sum) { return sum >= kFloatSumMin && std::isfinite(sum); }

inline double SumSqF32Double(const float* x, size_t len) {
  double acc = 0;
  for (size_t i = 0; i < len; i++) {
    const double v = x[i];
    acc += v * v;
  }
  return acc;
}

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
