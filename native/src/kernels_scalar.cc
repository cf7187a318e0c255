// Portable fallback; also the reference the SIMD kernels are tested against.
#include "kernels.h"

namespace framehub {

void SumSqI16Scalar(const int16_t* x, size_t frames, size_t frame_len, double* out) {
  for (size_t f = 0; f < frames; f++, x += frame_len) {
    int64_t acc = 0;
    for (size_t i = 0; i < frame_len; i++) acc += int32_t{x[i]} * int32_t{x[i]};
    out[f] = static_cast<double>(acc);
  }
}

void SumSqF32Scalar(const float* x, size_t frames, size_t frame_len, double* out) {
  for (size_t f = 0; f < frames; f++, x += frame_len) {
    // Four chains: without -ffast-math the compiler may not reorder a double sum,
    // so a single accumulator waits on each add's latency.
    double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    size_t i = 0;
    for (; i + 4 <= frame_len; i += 4) {
      const double v0 = x[i], v1 = x[i + 1], v2 = x[i + 2], v3 = x[i + 3];
      a0 += v0 * v0;
      a1 += v1 * v1;
      a2 += v2 * v2;
      a3 += v3 * v3;
    }
    for (; i < frame_len; i++) {
      const double v = x[i];
      a0 += v * v;
    }
    out[f] = (a0 + a1) + (a2 + a3);
  }
}

}  // namespace framehub
