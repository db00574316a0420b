/* The C ABI end to end on the tiny model: load, generate (pixels written for comparison with
 * the Rust API), events in order, results written in every format (padded and bottom-up rows),
 * a Kontext edit and an image-to-image from one request, cancel of a queued
 * and a running job, destroy with jobs in flight and while another thread waits on the engine.
 * C11 (atomics, threads through pthreads): the callback runs on the worker and on host threads.
 * Usage: lifecycle MODEL_DIR GENERATED_RGB_OUT EDITED_RGB_OUT */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"

static int write_file(const char *path, const unsigned char *data, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) return 1;
  size_t w = fwrite(data, 1, n, f);
  fclose(f);
  return w == n ? 0 : 1;
}

static size_t pixel_bytes(int32_t format) {
  switch (format) {
    case FLUX_PIXEL_FORMAT_RGB8: return 3;
    case FLUX_PIXEL_FORMAT_RGBA16F: return 8;
    case FLUX_PIXEL_FORMAT_RGBA32F: return 16;
    default: return 4;
  }
}

/* A host image over `data` (which outlives it), rows `pitch` bytes apart. */
static FluxImage *host_image(uint32_t w, uint32_t h, int32_t format, size_t pitch, uint32_t bottom_up,
                             void *data) {
  FluxImageDesc d = image_desc(w, h, format, pitch);
  d.bottom_up = bottom_up;
  FluxImage *image = NULL;
  size_t size = pitch * (h - 1) + w * pixel_bytes(format);
  if (flux_image_create_host(&d, data, size, &image) != FLUX_RESULT_OK) {
    fprintf(stderr, "flux_image_create_host: %s\n", flux_last_error_message());
    exit(1);
  }
  return image;
}

/* An IEEE half float's value (normal numbers and zero, which is all [0, 1] needs). */
static float half_to_float(uint16_t v) {
  int exponent = (v >> 10) & 0x1f;
  float mantissa = (float)(v & 0x3ff) / 1024.0f;
  if (exponent == 0) return mantissa / 16384.0f;
  float f = 1.0f + mantissa;
  for (int i = 15; i < exponent; i++) f *= 2.0f;
  for (int i = exponent; i < 15; i++) f /= 2.0f;
  return f;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* The event callback records every event (with a callback the engine queues none for polling)
 * and tries what is forbidden there: destroying the engine or waiting. */
static FluxEngine *_Atomic g_engine = NULL;
static atomic_int g_destroy_result = -1, g_wait_result = -1;
enum { MAX_EVENTS = 256 };
static FluxJob g_event_jobs[MAX_EVENTS];
static int32_t g_event_kinds[MAX_EVENTS];
static atomic_int g_event_count = 0;

static void on_event(const FluxEvent *ev, void *user_data) {
  atomic_fetch_add((atomic_int *)user_data, 1);
  int slot = atomic_fetch_add(&g_event_count, 1);
  if (slot < MAX_EVENTS) {
    g_event_jobs[slot] = ev->job;
    g_event_kinds[slot] = ev->kind;
  }
  int untried = -1;
  FluxEngine *engine = atomic_load(&g_engine);
  if (ev->kind == FLUX_EVENT_TYPE_PROGRESS && engine != NULL &&
      atomic_compare_exchange_strong(&g_destroy_result, &untried, -2)) {
    atomic_store(&g_destroy_result, flux_engine_destroy(engine));
    atomic_store(&g_wait_result, flux_job_wait(engine, ev->job, 10, NULL));
  }
}

/* The kinds of the recorded events of `job`, in order. `flux_job_wait` returns only after the
 * job's terminal event was delivered, so after it the record is complete. */
static int events_of(FluxJob job, int32_t *kinds, int max) {
  int n = 0, count = atomic_load(&g_event_count);
  for (int i = 0; i < count && i < MAX_EVENTS; i++)
    if (g_event_jobs[i] == job && n < max) kinds[n++] = g_event_kinds[i];
  return n;
}

/* Destroying an engine while another thread waits on one of its jobs (holding the engine inside
 * a call): when destroy returns the worker has stopped, and no event arrives after it. */
static atomic_int g_destroyed = 0, g_late_events = 0;

static void count_late_events(const FluxEvent *ev, void *user_data) {
  (void)ev;
  (void)user_data;
  if (atomic_load(&g_destroyed)) atomic_fetch_add(&g_late_events, 1);
}

struct waiter {
  FluxEngine *engine;
  FluxJob job;
  FluxResult result;
};

static void *wait_for_job(void *arg) {
  struct waiter *w = arg;
  int32_t state;
  w->result = flux_job_wait(w->engine, w->job, 120000, &state);
  return NULL;
}

static int destroy_while_another_thread_waits(const char *model_dir) {
  FluxEngineDesc ed;
  flux_engine_desc_init(&ed);
  ed.callback = count_late_events;
  FluxEngine *e = NULL;
  CHECK(flux_engine_create(&ed, &e));
  FluxModelDesc md;
  flux_model_desc_init(&md);
  md.folder = model_dir;
  FluxJob job;
  int32_t state = -1;
  CHECK(flux_engine_load_model(e, &md, &job));
  CHECK(flux_job_wait(e, job, 120000, &state));
  EXPECT(state == FLUX_JOB_STATE_SUCCEEDED);
  FluxRequest *long_job = request_of("a long night", 256, 256, 500, 16);
  CHECK(flux_engine_submit(e, long_job, &job));
  CHECK(flux_request_destroy(long_job));
  FluxJobStatus st;
  st.struct_size = sizeof st;
  do {
    sleep_ms(2);
    CHECK(flux_job_status(e, job, &st));
  } while (st.step < 1);
  struct waiter w = {e, job, FLUX_RESULT_OK};
  pthread_t thread;
  EXPECT(pthread_create(&thread, NULL, wait_for_job, &w) == 0);
  sleep_ms(20); /* the waiter is inside flux_job_wait */
  CHECK(flux_engine_destroy(e));
  atomic_store(&g_destroyed, 1);
  EXPECT(pthread_join(thread, NULL) == 0);
  sleep_ms(50);
  EXPECT(atomic_load(&g_late_events) == 0);
  /* The waiter saw its job cancelled, or the engine already gone. */
  EXPECT(w.result == FLUX_RESULT_OK || w.result == FLUX_RESULT_INVALID_HANDLE);
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 4) return 2;
  FluxEngineDesc ed;
  flux_engine_desc_init(&ed);
  ed.preview_every = 1;
  atomic_int user_counter = 0;
  ed.callback = on_event;
  ed.user_data = &user_counter;
  FluxEngine *e = NULL;
  CHECK(flux_engine_create(&ed, &e));

  FluxModelDesc md;
  flux_model_desc_init(&md);
  md.folder = argv[1];
  FluxJob load;
  int32_t state = -1;
  CHECK(flux_engine_load_model(e, &md, &load));
  CHECK(flux_job_wait(e, load, 120000, &state));
  EXPECT(state == FLUX_JOB_STATE_SUCCEEDED);
  int32_t kinds[64];
  g_engine = e;

  FluxRequest *req = request_of("a red lighthouse at dusk", 64, 48, 3, 32);
  CHECK(flux_request_set_seed(req, 7));
  FluxJob job;
  CHECK(flux_engine_submit(e, req, &job));
  CHECK(flux_job_wait(e, job, 120000, &state));
  EXPECT(state == FLUX_JOB_STATE_SUCCEEDED);
  int n = events_of(job, kinds, 64);
  const int32_t want[] = {FLUX_EVENT_TYPE_QUEUED,   FLUX_EVENT_TYPE_STARTED,  FLUX_EVENT_TYPE_PROGRESS,
                          FLUX_EVENT_TYPE_PREVIEW,  FLUX_EVENT_TYPE_PROGRESS, FLUX_EVENT_TYPE_PREVIEW,
                          FLUX_EVENT_TYPE_PROGRESS, FLUX_EVENT_TYPE_FINISHED};
  EXPECT(n == (int)(sizeof want / sizeof want[0]));
  for (int i = 0; i < n; i++) EXPECT(kinds[i] == want[i]);

  /* The callback saw the events with its user data, and was refused destroy and wait. */
  EXPECT(atomic_load(&user_counter) > 0 && atomic_load(&user_counter) == atomic_load(&g_event_count));
  FluxEvent polled;
  polled.struct_size = sizeof polled;
  FluxResult polled_result = flux_engine_poll_event(e, &polled);
  EXPECT(polled_result == FLUX_RESULT_NO_EVENT);
  EXPECT(atomic_load(&g_destroy_result) == FLUX_RESULT_WRONG_THREAD);
  EXPECT(atomic_load(&g_wait_result) == FLUX_RESULT_WRONG_THREAD);

  FluxJobStatus st;
  st.struct_size = sizeof st;
  CHECK(flux_job_status(e, job, &st));
  EXPECT(st.state == FLUX_JOB_STATE_SUCCEEDED && st.step == 3 && st.total == 3 && st.has_result == 1);

  uint32_t w = 0, h = 0;
  CHECK(flux_job_image_size(e, job, &w, &h));
  EXPECT(w == 64 && h == 48);
  unsigned char *rgb = malloc((size_t)w * h * 3);
  FluxImage *rgb_image = host_image(w, h, FLUX_PIXEL_FORMAT_RGB8, (size_t)w * 3, 0, rgb);
  CHECK(flux_job_write_image(e, job, rgb_image, 0));
  EXPECT(write_file(argv[2], rgb, (size_t)w * h * 3) == 0);

  /* RGBA8 with a padded stride, BGRA8 bottom-up, RGBA16F and RGBA32F agree with RGB8. */
  size_t stride = (size_t)w * 4 + 12;
  unsigned char *rgba = malloc(stride * h), *bgra = malloc((size_t)w * h * 4);
  uint16_t *rgbah = malloc((size_t)w * h * 8);
  float *rgbaf = malloc((size_t)w * h * 16);
  FluxImage *outs[] = {
      host_image(w, h, FLUX_PIXEL_FORMAT_RGBA8, stride, 0, rgba),
      host_image(w, h, FLUX_PIXEL_FORMAT_BGRA8, (size_t)w * 4, 1, bgra),
      host_image(w, h, FLUX_PIXEL_FORMAT_RGBA16F, (size_t)w * 8, 0, rgbah),
      host_image(w, h, FLUX_PIXEL_FORMAT_RGBA32F, (size_t)w * 16, 0, rgbaf),
  };
  for (int i = 0; i < 4; i++) {
    CHECK(flux_job_write_image(e, job, outs[i], 0));
    CHECK(flux_image_destroy(outs[i]));
  }
  for (uint32_t y = 0; y < h; y++)
    for (uint32_t x = 0; x < w; x++) {
      size_t flipped = ((size_t)(h - 1 - y) * w + x) * 4;
      for (int c = 0; c < 3; c++) {
        unsigned char v = rgb[(y * w + x) * 3 + c];
        EXPECT(rgba[y * stride + x * 4 + c] == v);
        EXPECT(bgra[flipped + 2 - c] == v);
        EXPECT(half_to_float(rgbah[(y * w + x) * 4 + c]) - v / 255.0f < 1e-3f);
        EXPECT(v / 255.0f - half_to_float(rgbah[(y * w + x) * 4 + c]) < 1e-3f);
        EXPECT(rgbaf[(y * w + x) * 4 + c] == v / 255.0f);
      }
      EXPECT(rgba[y * stride + x * 4 + 3] == 255 && bgra[flipped + 3] == 255);
      EXPECT(rgbaf[(y * w + x) * 4 + 3] == 1.0f);
    }

  /* Kontext edit of that image (the tiny dev model stands in for a Kontext model), then the same
   * request as image-to-image: its images choose the kind of job. */
  CHECK(flux_request_set_prompt(req, "make it night"));
  CHECK(flux_request_add_reference(req, rgb_image, 0));
  CHECK(flux_request_set_reference_snap(req, false));
  CHECK(flux_request_set_steps(req, 2));
  CHECK(flux_request_set_t5_length(req, 16));
  EXPECT(flux_request_set_init_image(req, rgb_image, 0, 0.5f) == FLUX_RESULT_INVALID_ARGUMENT);
  FluxJob edit_job, i2i_job;
  CHECK(flux_engine_submit(e, req, &edit_job));
  CHECK(flux_request_clear_images(req));
  CHECK(flux_request_set_init_image(req, rgb_image, 0, 0.5f));
  CHECK(flux_engine_submit(e, req, &i2i_job));
  CHECK(flux_request_destroy(req));
  CHECK(flux_job_wait(e, edit_job, 120000, &state));
  EXPECT(state == FLUX_JOB_STATE_SUCCEEDED);
  unsigned char *edited = malloc((size_t)w * h * 3);
  FluxImage *edited_image = host_image(w, h, FLUX_PIXEL_FORMAT_RGB8, (size_t)w * 3, 0, edited);
  CHECK(flux_job_write_image(e, edit_job, edited_image, 0));
  EXPECT(write_file(argv[3], edited, (size_t)w * h * 3) == 0);
  CHECK(flux_job_release(e, edit_job));
  CHECK(flux_job_wait(e, i2i_job, 120000, &state));
  EXPECT(state == FLUX_JOB_STATE_SUCCEEDED);
  CHECK(flux_job_image_size(e, i2i_job, &w, &h));
  EXPECT(w == 64 && h == 48);
  CHECK(flux_image_destroy(edited_image));
  CHECK(flux_image_destroy(rgb_image));

  /* Cancel: a running job stops within a step, a queued one never starts. */
  FluxRequest *big = request_of("a red lighthouse at dusk", 256, 256, 500, 32);
  FluxJob running, queued;
  CHECK(flux_engine_submit(e, big, &running));
  CHECK(flux_engine_submit(e, big, &queued));
  do {
    sleep_ms(2);
    CHECK(flux_job_status(e, running, &st));
  } while (st.step < 1);
  int32_t outcome = -1;
  CHECK(flux_job_cancel(e, queued, &outcome));
  EXPECT(outcome == FLUX_CANCEL_OUTCOME_DEQUEUED);
  CHECK(flux_job_cancel(e, running, &outcome));
  EXPECT(outcome == FLUX_CANCEL_OUTCOME_REQUESTED);
  uint32_t step_at_cancel = st.step;
  CHECK(flux_job_wait(e, running, 120000, &state));
  EXPECT(state == FLUX_JOB_STATE_CANCELLED);
  CHECK(flux_job_status(e, running, &st));
  EXPECT(st.step <= step_at_cancel + 2);
  CHECK(flux_job_cancel(e, job, &outcome));
  EXPECT(outcome == FLUX_CANCEL_OUTCOME_ALREADY_FINISHED);

  /* Destroy with jobs queued and running. */
  for (int i = 0; i < 3; i++) CHECK(flux_engine_submit(e, big, &queued));
  CHECK(flux_request_destroy(big));
  sleep_ms(20);
  CHECK(flux_engine_destroy(e));
  EXPECT(flux_job_status(e, job, &st) == FLUX_RESULT_INVALID_HANDLE);
  if (destroy_while_another_thread_waits(argv[1]) != 0) return 1;

  free(rgb);
  free(rgba);
  free(bgra);
  free(rgbah);
  free(rgbaf);
  free(edited);
  printf("lifecycle: ok\n");
  return 0;
}
