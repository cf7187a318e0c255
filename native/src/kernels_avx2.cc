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
    // Float FMAs in blocks, widened into double sums per block; see kernels.h.
    __m256d d0 = _mm256_setzero_pd();
    __m256d d1 = _mm256_setzero_pd();
    size_t i = 0;
    while (i + 32 <= frame_len) {
      __m256 a0 = _mm256_setzero_ps();
      __m256 a1 = _mm256_setzero_ps();
      __m256 a2 = _mm256_setzero_ps();
      __m256 a3 = _mm256_setzero_ps();
      for (int b = 0; b < kFloatBlock && i + 32 <= frame_len; b++, i += 32) {
        const __m256 v0 = _mm256_loadu_ps(x + i);
        const __m256 v1 = _mm256_loadu_ps(x + i + 8);
        const __m256 v2 = _mm256_loadu_ps(x + i + 16);
        const __m256 v3 = _mm256_loadu_ps(x + i + 24);
        a0 = _mm256_fmadd_ps(v0, v0, a0);
        a1 = _mm256_fmadd_ps(v1, v1, a1);
        a2 = _mm256_fmadd_ps(v2, v2, a2);
        a3 = _mm256_fmadd_ps(v3, v3, a3);
      }
      const __m256 a = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
      d0 = _mm256_add_pd(d0, _mm256_cvtps_pd(_mm256_castps256_ps128(a)));
      d1 = _mm256_add_pd(d1, _mm256_cvtps_pd(_mm256_extractf128_ps(a, 1)));
    }
    // Tail (< 32 samples) straight in double.
    for (; i + 4 <= frame_len; i += 4) {
      const __m256d w = _mm256_cvtps_pd(_mm_loadu_ps(x + i));
      d0 = _mm256_fmadd_pd(w, w, d0);
    }
    const __m256d s = _mm256_add_pd(d0, d1);
    const __m128d s2 = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
    double sum = _mm_cvtsd_f64(_mm_add_sd(s2, _mm_unpackhi_pd(s2, s2)));
    for (; i < frame_len; i++) {
      const double v = x[i];
      sum += v * v;
    }
    out[f] = FloatSumUsable(sum) ? sum : SumSqF32Double(x, frame_len);
  }
}

}  // namespace framehub
#endif
