// framehub_vad: per-frame mean square over Int16Array / Float32Array, batched.
//
// One call covers a whole chunk and returns one value per complete frame, so the
// JS/C++ boundary is crossed once per chunk, not once per frame. Samples are read
// in place (no copy; see ViewOf); the trailing partial frame is left for the caller
// to carry into the next chunk.
//
// exports.kernels: [{ name, frameEnergyI16, frameEnergyF32 }] for every kernel this
// CPU can run, fastest first. The loader (native/index.ts) picks one.
#include <napi.h>

#include <cstdint>
#include <vector>

#include "kernels.h"

namespace framehub {
namespace {

// Frames longer than this could make an int16 sum inexact in a double (n * 2^30 < 2^53).
constexpr size_t kMaxFrameLen = size_t{1} << 20;
constexpr double kInvI16FullScale2 = 1.0 / (32768.0 * 32768.0);

template <typename T>
struct Traits;
template <>
struct Traits<int16_t> {
  static constexpr napi_typedarray_type kType = napi_int16_array;
  static constexpr const char* kName = "Int16Array";
  static constexpr double kScale = kInvI16FullScale2;
};
template <>
struct Traits<float> {
  static constexpr napi_typedarray_type kType = napi_float32_array;
  static constexpr const char* kName = "Float32Array";
  static constexpr double kScale = 1.0;
};

// The baton: JS values are checked and converted before any work starts.
template <typename T>
struct FrameEnergyJob {
  const T* samples;
  size_t frames;
  size_t frame_len;
  double* out;
};

template <typename T>
struct View {
  T* data;
  size_t length;
};

// The pointer TypedArrayOf<T>::Data() would return (the JS memory itself, at the
// view's byte offset; no copy), from one napi_get_typedarray_info. Going through
// Value::As<TypedArrayOf<T>>() plus a type check makes three such calls per argument:
// that measured ~280 ns per call against ~140 ns this way, next to ~750 ns of work
// for a 1 s float32 chunk at 16 kHz.
template <typename T>
bool ViewOf(napi_env env, napi_value value, napi_typedarray_type want, View<T>* view) {
  napi_typedarray_type type;
  void* data;
  if (napi_get_typedarray_info(env, value, &type, &view->length, &data, nullptr, nullptr) != napi_ok || type != want) {
    return false;
  }
  view->data = static_cast<T*>(data);
  return true;
}

template <typename T>
FrameEnergyJob<T> ParseArgs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  View<const T> samples{};
  View<double> out{};
  double frame_len = 0;
  if (info.Length() < 3) throw Napi::TypeError::New(env, "expected (samples, frameLen, out)");
  if (!ViewOf(env, info[0], Traits<T>::kType, &samples)) {
    throw Napi::TypeError::New(env, std::string("samples must be an ") + Traits<T>::kName);
  }
  if (napi_get_value_double(env, info[1], &frame_len) != napi_ok) throw Napi::TypeError::New(env, "frameLen must be a number");
  if (!(frame_len >= 1 && frame_len <= static_cast<double>(kMaxFrameLen)) ||
      frame_len != static_cast<double>(static_cast<size_t>(frame_len))) {
    throw Napi::RangeError::New(env, "frameLen must be an integer in [1, 2^20]");
  }
  if (!ViewOf(env, info[2], napi_float64_array, &out)) throw Napi::TypeError::New(env, "out must be a Float64Array");
  const FrameEnergyJob<T> job{samples.data, samples.length / static_cast<size_t>(frame_len), static_cast<size_t>(frame_len),
                              out.data};
  if (out.length < job.frames) throw Napi::RangeError::New(env, "out is shorter than the number of complete frames");
  return job;
}

template <typename T, typename Fn>
Napi::Value FrameEnergy(const Napi::CallbackInfo& info, Fn kernel) {
  const FrameEnergyJob<T> job = ParseArgs<T>(info);
  if (job.frames > 0) kernel(job.samples, job.frames, job.frame_len, job.out);
  // Same two operations, in the same order, as src/vad/energy.ts, so int16 results
  // are bit-identical between the backends (and -32768 gives exactly 1.0).
  const double len = static_cast<double>(job.frame_len);
  for (size_t f = 0; f < job.frames; f++) job.out[f] = job.out[f] / len * Traits<T>::kScale;
  return Napi::Number::New(info.Env(), static_cast<double>(job.frames));
}

Napi::Value FrameEnergyI16(const Napi::CallbackInfo& info) {
  return FrameEnergy<int16_t>(info, static_cast<const Kernel*>(info.Data())->i16);
}

Napi::Value FrameEnergyF32(const Napi::CallbackInfo& info) {
  return FrameEnergy<float>(info, static_cast<const Kernel*>(info.Data())->f32);
}

// Fastest first. Static storage: the function data pointers outlive every call.
std::vector<Kernel> SupportedKernels() {
  std::vector<Kernel> kernels;
#ifdef FH_HAVE_AVX
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) {
    kernels.push_back({"avx512", SumSqI16Avx512, SumSqF32Avx512});
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    kernels.push_back({"avx2", SumSqI16Avx2, SumSqF32Avx2});
  }
#endif
#ifdef FH_X86_64
  kernels.push_back({"sse2", SumSqI16Sse2, SumSqF32Sse2});
#endif
#ifdef FH_ARM64
  kernels.push_back({"neon", SumSqI16Neon, SumSqF32Neon});
#endif
  kernels.push_back({"scalar", SumSqI16Scalar, SumSqF32Scalar});
  return kernels;
}

const std::vector<Kernel>& Kernels() {
  static const std::vector<Kernel> kernels = SupportedKernels();
  return kernels;
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  const std::vector<Kernel>& kernels = Kernels();
  Napi::Array list = Napi::Array::New(env, kernels.size());
  for (size_t k = 0; k < kernels.size(); k++) {
    void* data = const_cast<Kernel*>(&kernels[k]);
    Napi::Object entry = Napi::Object::New(env);
    entry.Set("name", kernels[k].name);
    entry.Set("frameEnergyI16", Napi::Function::New(env, FrameEnergyI16, "frameEnergyI16", data));
    entry.Set("frameEnergyF32", Napi::Function::New(env, FrameEnergyF32, "frameEnergyF32", data));
    list.Set(static_cast<uint32_t>(k), entry);
  }
  exports.Set("kernels", list);
  return exports;
}

}  // namespace framehub

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return framehub::Init(env, exports); }

NODE_API_MODULE(framehub_vad, InitAddon)
