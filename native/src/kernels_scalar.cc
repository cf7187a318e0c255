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
    double acc = 0;
    for (size_t i = 0; i < frame_len; i++) {
      const double v = x[i];
      acc += v * v;
    }
    out[f] = acc;
  }
}

}  // namespace framehub
