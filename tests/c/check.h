/* Small assertion helpers shared by the C tests. */
#ifndef FLUX_TEST_CHECK_H
#define FLUX_TEST_CHECK_H
#include <stdio.h>
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

#endif
