// NEON (AArch64, where Advanced SIMD is mandatory, so no runtime check is needed).
#include "kernels.h"

#ifdef FH_ARM64
#include <arm_neon.h>

namespace framehub {

void SumSqI16Neon(const int16_t* x, size_t frames, size_t frame_len, double* out) {
  for (size_t f = 0; f < frames; f++, x += frame_len) {
    // smull gives exact int32 squares (at most 2^30); sadalp widens pairs into int64.
    int64x2_t a0 = vdupq_n_s64(0);
    int64x2_t a1 = vdupq_n_s64(0);
    size_t i = 0;
    for (; i + 8 <= frame_len; i += 8) {
      const int16x8_t v = vld1q_s16(x + i);
      a0 = vpadalq_s32(a0, vmull_s16(vget_low_s16(v), vget_low_s16(v)));
      a1 = vpadalq_s32(a1, vmull_high_s16(v, v));
    }
    int64_t acc = vaddvq_s64(vaddq_s64(a0, a1));
    for (; i < frame_len; i++) acc += int32_t{x[i]} * int32_t{x[i]};
    out[f] = static_cast<double>(acc);
  }
}

void SumSqF32Neon(const float* x, size_t frames, size_t frame_len, double* out) {
  for (size_t f = 0; f < frames; f++, x += frame_len) {
    float64x2_t a0 = vdupq_n_f64(0);
    float64x2_t a1 = vdupq_n_f64(0);
    float64x2_t a2 = vdupq_n_f64(0);
    float64x2_t a3 = vdupq_n_f64(0);
    size_t i = 0;
    for (; i + 8 <= frame_len; i += 8) {
      const float32x4_t v0 = vld1q_f32(x + i);
      const float32x4_t v1 = vld1q_f32(x + i + 4);
      const float64x2_t d0 = vcvt_f64_f32(vget_low_f32(v0));
      const float64x2_t d1 = vcvt_high_f64_f32(v0);
      const float64x2_t d2 = vcvt_f64_f32(vget_low_f32(v1));
      const float64x2_t d3 = vcvt_high_f64_f32(v1);
      a0 = vfmaq_f64(a0, d0, d0);
      a1 = vfmaq_f64(a1, d1, d1);
      a2 = vfmaq_f64(a2, d2, d2);
      a3 = vfmaq_f64(a3, d3, d3);
    }
    double acc = vaddvq_f64(vaddq_f64(vaddq_f64(a0, a1), vaddq_f64(a2, a3)));
    for (; i < frame_len; i++) {
      const double v = x[i];
      acc += v * v;
    }
    out[f] = acc;
  }
}

}  // namespace framehub
#endif
