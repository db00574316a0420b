/* Small assertion helpers shared by the C tests. */
#ifndef FLUX_TEST_CHECK_H
#define FLUX_TEST_CHECK_H
#include <stdio.h>
#include <stdlib.h>
#include "flux_engine.h"

#define CHECK(x)                                                                              \
  do {                                                                                        \
    FluxResult r_ = (x);                                                                      \
    if (r_ != FLUX_RESULT_OK) {                                                               \
      fprintf(stderr, "%s:%d: %s -> %d: %s\n", __FILE__, __LINE__, #x, (int)r_,               \
              flux_last_error_message());                                                     \
      return 1;                                                                               \
    }                                                                                         \
  } while (0)

#define EXPECT(c)                                                                             \
  do {                                                                                        \
    if (!(c)) {                                                                               \
      fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #c);                        \
      return 1;                                                                               \
    }                                                                                         \
  } while (0)

/* A request for `prompt` at `w` × `h` with `steps` steps and `t5_len` T5 tokens (the caller
 * destroys it); exits the test if the library refuses it. */
static inline FluxRequest *request_of(const char *prompt, uint32_t w, uint32_t h, uint32_t steps,
                                      uint32_t t5_len) {
  FluxRequest *r = NULL;
  if (flux_request_create(&r) != FLUX_RESULT_OK || flux_request_set_prompt(r, prompt) != FLUX_RESULT_OK ||
      flux_request_set_size(r, w, h) != FLUX_RESULT_OK || flux_request_set_steps(r, steps) != FLUX_RESULT_OK ||
      flux_request_set_t5_length(r, t5_len) != FLUX_RESULT_OK) {
    fprintf(stderr, "request_of: %s\n", flux_last_error_message());
    exit(1);
  }
  return r;
}

/* A host image layout: `w` × `h` pixels of `format`, rows `pitch` bytes apart, top row first. */
static inline FluxImageDesc image_desc(uint32_t w, uint32_t h, int32_t format, uint64_t pitch) {
  FluxImageDesc d;
  flux_image_desc_init(&d);
  d.width = w;
  d.height = h;
  d.format = format;
  d.row_pitch = pitch;
  return d;
}

#endif
