# The optional VAD accelerator. Built by scripts/build-native.mjs on `npm install`;
# when this fails the install still succeeds and native/index.ts falls back to JS.
{
  "targets": [
    {
      "target_name": "framehub_vad",
      "sources": [
        "src/addon.cc",
        "src/kernels_scalar.cc",
        "src/kernels_sse2.cc",
        "src/kernels_avx2.cc",
        "src/kernels_avx512.cc",
        "src/kernels_neon.cc"
      ],
      # node_addon_api_except turns on C++ exceptions (NAPI_CPP_EXCEPTIONS) and adds the headers.
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      # No global -m flags: AVX2/AVX-512 are enabled per function (see src/kernels.h).
      "cflags_cc!": ["-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-O3"],
      "xcode_settings": {
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "GCC_OPTIMIZATION_LEVEL": "3"
      },
      "msvs_settings": {
        "VCCLCompilerTool": { "AdditionalOptions": ["/std:c++17"] }
      }
    }
  ]
}
