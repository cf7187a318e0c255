// AVX-512 F+BW. Tails use masked loads, which never fault on the masked-off lanes,
// so frames that are not a multiple of the vector width need no scalar loop.
#include "kernels.h"

#ifdef FH_HAVE_AVX
#include <immintrin.h>

// GCC 12's AVX-512 intrinsics seed their pass-through operand with a self-initialised
// _mm512_undefined_*(), which trips -Wmaybe-uninitialized wherever they inline
// (GCC PR 105593, fixed in GCC 13). The warning is about the header, not this code.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace framehub {

FH_TARGET("avx512f,avx512bw")
void SumSqI16Avx512(const int16_t* x, size_t frames, size_t frame_len, double* out) {
  const __m512i low32 = _mm512_set1_epi64(0xFFFFFFFF);
  for (size_t f = 0; f < frames; f++, x += frame_len) {
    __m512i a0 = _mm512_setzero_si512();
    __m512i a1 = _mm512_setzero_si512();
    size_t i = 0;
    for (; i + 64 <= frame_len; i += 64) {
      const __m512i p0 = _mm512_madd_epi16(_mm512_loadu_si512(x + i), _mm512_loadu_si512(x + i));
      const __m512i p1 = _mm512_madd_epi16(_mm512_loadu_si512(x + i + 32), _mm512_loadu_si512(x + i + 32));
      // Unsigned int32 pair sums (up to 2^31), widened as in kernels_sse2.cc.
      a0 = _mm512_add_epi64(a0, _mm512_and_si512(p0, low32));
      a1 = _mm512_add_epi64(a1, _mm512_srli_epi64(p0, 32));
      a0 = _mm512_add_epi64(a0, _mm512_and_si512(p1, low32));
      a1 = _mm512_add_epi64(a1, _mm512_srli_epi64(p1, 32));
    }
    for (; i < frame_len; i += 32) {
      const size_t left = frame_len - i;
      const __mmask32 m = left >= 32 ? ~__mmask32{0} : static_cast<__mmask32>((uint32_t{1} << left) - 1);
      const __m512i v = _mm512_maskz_loadu_epi16(m, x + i);
      const __m512i p = _mm512_madd_epi16(v, v);
      a0 = _mm512_add_epi64(a0, _mm512_and_si512(p, low32));
      a1 = _mm512_add_epi64(a1, _mm512_srli_epi64(p, 32));
    }
    out[f] = static_cast<double>(_mm512_reduce_add_epi64(_mm512_add_epi64(a0, a1)));
  }
}

FH_TARGET("avx512f")
void SumSqF32Avx512(const float* x, size_t frames, size_t frame_len, double* out) {
  for (size_t f = 0; f < frames; f++, x += frame_len) {
    // Float FMAs over blocks of kFloatBlock x 64 samples (each lane adds at most
    // kFloatBlock squares before the block is widened into the double sums); see kernels.h.
    __m512d d0 = _mm512_setzero_pd();
    __m512d d1 = _mm512_setzero_pd();
    size_t i = 0;
    while (i + 64 <= frame_len) {
      __m512 a0 = _mm512_setzero_ps();
      __m512 a1 = _mm512_setzero_ps();
      __m512 a2 = _mm512_setzero_ps();
      __m512 a3 = _mm512_setzero_ps();
      for (int b = 0; b < kFloatBlock && i + 64 <= frame_len; b++, i += 64) {
        const __m512 v0 = _mm512_loadu_ps(x + i);
        const __m512 v1 = _mm512_loadu_ps(x + i + 16);
        const __m512 v2 = _mm512_loadu_ps(x + i + 32);
        const __m512 v3 = _mm512_loadu_ps(x + i + 48);
        a0 = _mm512_fmadd_ps(v0, v0, a0);
        a1 = _mm512_fmadd_ps(v1, v1, a1);
        a2 = _mm512_fmadd_ps(v2, v2, a2);
        a3 = _mm512_fmadd_ps(v3, v3, a3);
      }
      const __m512 a = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
      d0 = _mm512_add_pd(d0, _mm512_cvtps_pd(_mm512_castps512_ps256(a)));
      d1 = _mm512_add_pd(d1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1))));
    }
    // Tail (< 64 samples) straight in double, 8 at a time with a masked load.
    for (; i < frame_len; i += 8) {
      const size_t left = frame_len - i;
      const __mmask8 m = left >= 8 ? __mmask8{0xFF} : static_cast<__mmask8>((1u << left) - 1);
      const __m512 v = _mm512_maskz_loadu_ps(static_cast<__mmask16>(m), x + i);
      const __m512d w = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
      d0 = _mm512_fmadd_pd(w, w, d0);
    }
    const double sum = _mm512_reduce_add_pd(_mm512_add_pd(d0, d1));
    out[f] = FloatSumUsable(sum) ? sum : SumSqF32Double(x, frame_len);
  }
}

}  // namespace framehub
#endif
