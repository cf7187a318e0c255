// AVX2 + FMA, enabled per function so the rest of the addon stays baseline x86-64.
#include "kernels.h"

#ifdef FH_HAVE_AVX
#include <immintrin.h>

namespace framehub {

FH_TARGET("avx2")
static inline __m256i SquarePairs64(__m256i v, __m256i* hi) {
  // See kernels_sse2.cc: the int32 pair sums are unsigned, so widen before adding.
  const __m256i pairs = _mm256_madd_epi16(v, v);
  *hi = _mm256_srli_epi64(pairs, 32);
  return _mm256_and_si256(pairs, _mm256_set1_epi64x(0xFFFFFFFF));
}

FH_TARGET("avx2")
void SumSqI16Avx2(const int16_t* x, size_t frames, size_t frame_len, double* out) {
  for (size_t f = 0; f < frames; f++, x += frame_len) {
    __m256i a0 = _mm256_setzero_si256();
    __m256i a1 = _mm256_setzero_si256();
    __m256i hi;
    size_t i = 0;
    for (; i + 32 <= frame_len; i += 32) {
      const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i));
      const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i + 16));
      a0 = _mm256_add_epi64(a0, SquarePairs64(v0, &hi));
      a1 = _mm256_add_epi64(a1, hi);
      a0 = _mm256_add_epi64(a0, SquarePairs64(v1, &hi));
      a1 = _mm256_add_epi64(a1, hi);
    }
    for (; i + 16 <= frame_len; i += 16) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i));
      a0 = _mm256_add_epi64(a0, SquarePairs64(v, &hi));
      a1 = _mm256_add_epi64(a1, hi);
    }
    const __m256i s = _mm256_add_epi64(a0, a1);
    const __m128i s2 = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    int64_t acc = _mm_cvtsi128_si64(s2) + _mm_cvtsi128_si64(_mm_unpackhi_epi64(s2, s2));
    for (; i < frame_len; i++) acc += int32_t{x[i]} * int32_t{x[i]};
    out[f] = static_cast<double>(acc);
  }
}

FH_TARGET("avx2,fma")
void SumSqF32Avx2(const float* x, size_t frames, size_t frame_len, double* out) {
  for (size_t f = 0; f < frames; f++, x += frame_len) {
    // Four chains hide the FMA latency; cvtps2pd is the throughput limit anyway.
    __m256d a0 = _mm256_setzero_pd();
    __m256d a1 = _mm256_setzero_pd();
    __m256d a2 = _mm256_setzero_pd();
    __m256d a3 = _mm256_setzero_pd();
    size_t i = 0;
    for (; i + 16 <= frame_len; i += 16) {
      const __m256d d0 = _mm256_cvtps_pd(_mm_loadu_ps(x + i));
      const __m256d d1 = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4));
      const __m256d d2 = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 8));
      const __m256d d3 = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 12));
      a0 = _mm256_fmadd_pd(d0, d0, a0);
      a1 = _mm256_fmadd_pd(d1, d1, a1);
      a2 = _mm256_fmadd_pd(d2, d2, a2);
      a3 = _mm256_fmadd_pd(d3, d3, a3);
    }
    for (; i + 4 <= frame_len; i += 4) {
      const __m256d d = _mm256_cvtps_pd(_mm_loadu_ps(x + i));
      a0 = _mm256_fmadd_pd(d, d, a0);
    }
    const __m256d s = _mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3));
    const __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
    double acc = _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
    for (; i < frame_len; i++) {
      const double v = x[i];
      acc += v * v;
    }
    out[f] = acc;
  }
}

}  // namespace framehub
#endif
