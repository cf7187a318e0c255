// SSE2: the x86-64 baseline, so no target attribute is needed.
#include "kernels.h"

#ifdef FH_X86_64
#include <emmintrin.h>

namespace framehub {

void SumSqI16Sse2(const int16_t* x, size_t frames, size_t frame_len, double* out) {
  const __m128i low32 = _mm_set1_epi64x(0xFFFFFFFF);
  for (size_t f = 0; f < frames; f++, x += frame_len) {
    __m128i acc_lo = _mm_setzero_si128();
    __m128i acc_hi = _mm_setzero_si128();
    size_t i = 0;
    for (; i + 8 <= frame_len; i += 8) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i));
      // pmaddwd adds two squares per int32 lane; at -32768 twice that is 2^31, which
      // only fits when read as unsigned, so split each lane into 64-bit halves.
      const __m128i pairs = _mm_madd_epi16(v, v);
      acc_lo = _mm_add_epi64(acc_lo, _mm_and_si128(pairs, low32));
      acc_hi = _mm_add_epi64(acc_hi, _mm_srli_epi64(pairs, 32));
    }
    alignas(16) int64_t lanes[2];
    _mm_store_si128(reinterpret_cast<__m128i*>(lanes), _mm_add_epi64(acc_lo, acc_hi));
    int64_t acc = lanes[0] + lanes[1];
    for (; i < frame_len; i++) acc += int32_t{x[i]} * int32_t{x[i]};
    out[f] = static_cast<double>(acc);
  }
}

void SumSqF32Sse2(const float* x, size_t frames, size_t frame_len, double* out) {
  for (size_t f = 0; f < frames; f++, x += frame_len) {
    __m128d a0 = _mm_setzero_pd();
    __m128d a1 = _mm_setzero_pd();
    size_t i = 0;
    for (; i + 4 <= frame_len; i += 4) {
      const __m128 v = _mm_loadu_ps(x + i);
      const __m128d lo = _mm_cvtps_pd(v);
      const __m128d hi = _mm_cvtps_pd(_mm_movehl_ps(v, v));
      a0 = _mm_add_pd(a0, _mm_mul_pd(lo, lo));
      a1 = _mm_add_pd(a1, _mm_mul_pd(hi, hi));
    }
    alignas(16) double lanes[2];
    _mm_store_pd(lanes, _mm_add_pd(a0, a1));
    double acc = lanes[0] + lanes[1];
    for (; i < frame_len; i++) {
      const double v = x[i];
      acc += v * v;
    }
    out[f] = acc;
  }
}

}  // namespace framehub
#endif
