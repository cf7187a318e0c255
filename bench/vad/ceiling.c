/*
 * The speed ceiling for bench:vad: plain C sum-of-squares loops over the same data,
 * chunks and frames as the addon, compiled at bench time with
 * `gcc -O3 -march=native -ffast-math` so the compiler vectorises them for this CPU
 * (without -ffast-math gcc keeps a float sum in order, i.e. scalar).
 *
 *   usage: ceiling <file> <i16|f32|f32d> <frameLen> <chunkLen> <seconds>
 *   f32 accumulates in float (the fastest loop); f32d in double, as the addon does.
 * Prints one JSON line: {"samples":N,"wallNs":N,"cpuNs":N,"check":X}
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ns(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

__attribute__((noinline)) static void frames_i16(const int16_t *x, size_t frames, size_t len, double *out) {
  for (size_t f = 0; f < frames; f++, x += len) {
    int64_t acc = 0;
    for (size_t i = 0; i < len; i++) acc += (int32_t)x[i] * x[i];
    out[f] = (double)acc;
  }
}

__attribute__((noinline)) static void frames_f32(const float *x, size_t frames, size_t len, double *out) {
  for (size_t f = 0; f < frames; f++, x += len) {
    float acc = 0;
    for (size_t i = 0; i < len; i++) acc += x[i] * x[i];
    out[f] = acc;
  }
}

__attribute__((noinline)) static void frames_f32d(const float *x, size_t frames, size_t len, double *out) {
  for (size_t f = 0; f < frames; f++, x += len) {
    double acc = 0;
    for (size_t i = 0; i < len; i++) acc += (double)x[i] * x[i];
    out[f] = acc;
  }
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: %s <file> <i16|f32|f32d> <frameLen> <chunkLen> <seconds>\n", argv[0]);
    return 2;
  }
  const char *kind = argv[2];
  const size_t frame_len = strtoul(argv[3], NULL, 10);
  const size_t chunk = strtoul(argv[4], NULL, 10);
  const double budget_ns = atof(argv[5]) * 1e9;
  const size_t width = strcmp(kind, "i16") == 0 ? 2 : 4;

  FILE *fp = fopen(argv[1], "rb");
  if (!fp) {
    perror(argv[1]);
    return 1;
  }
  fseek(fp, 0, SEEK_END);
  const size_t bytes = (size_t)ftell(fp);
  fseek(fp, 0, SEEK_SET);
  void *data = aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (!data || fread(data, 1, bytes, fp) != bytes) return 1;
  fclose(fp);
  const size_t n = bytes / width;
  const size_t chunks = n / chunk;
  double *out = malloc(sizeof(double) * (chunk / frame_len + 1));
  double check = 0;

  /* One warm-up pass, then whole passes until the time budget is spent. */
  size_t samples = 0;
  double wall0 = 0, cpu0 = 0;
  for (int pass = 0;; pass++) {
    if (pass == 1) {
      wall0 = now_ns(CLOCK_MONOTONIC);
      cpu0 = now_ns(CLOCK_PROCESS_CPUTIME_ID);
    }
    for (size_t c = 0; c < chunks; c++) {
      const size_t frames = chunk / frame_len;
      if (width == 2) frames_i16((const int16_t *)data + c * chunk, frames, frame_len, out);
      else if (kind[3] == 'd') frames_f32d((const float *)data + c * chunk, frames, frame_len, out);
      else frames_f32((const float *)data + c * chunk, frames, frame_len, out);
      check += out[0];
    }
    if (pass >= 1) {
      samples += chunks * chunk;
      if (now_ns(CLOCK_MONOTONIC) - wall0 >= budget_ns) break;
    }
  }
  printf("{\"samples\":%zu,\"wallNs\":%.0f,\"cpuNs\":%.0f,\"check\":%g}\n", samples, now_ns(CLOCK_MONOTONIC) - wall0,
         now_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0, check);
  free(out);
  free(data);
  return 0;
}
