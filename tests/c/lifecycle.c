/* The C ABI end to end on the tiny model: load, generate (pixels written for comparison with
 * the Rust API), events in order, copies in every format, a Kontext edit, cancel of a queued
 * and a running job, destroy with jobs in flight.
 * Usage: lifecycle MODEL_DIR GENERATED_RGB_OUT EDITED_RGB_OUT */
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

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* The event callback records every event (with a callback the engine queues none for polling)
 * and tries what is forbidden there: destroying the engine or waiting. */
static FluxEngine *g_engine = NULL;
static volatile int g_destroy_result = -1, g_wait_result = -1;
enum { MAX_EVENTS = 256 };
static FluxJob g_event_jobs[MAX_EVENTS];
static int32_t g_event_kinds[MAX_EVENTS];
static volatile int g_event_count = 0;

static void on_event(const FluxEvent *ev, void *user_data) {
  int *counter = (int *)user_data;
  (*counter)++;
  if (g_event_count < MAX_EVENTS) {
    g_event_jobs[g_event_count] = ev->job;
    g_event_kinds[g_event_count] = ev->kind;
    g_event_count++;
  }
  if (ev->kind == FLUX_EVENT_TYPE_PROGRESS && g_destroy_result == -1 && g_engine != NULL) {
    g_destroy_result = flux_engine_destroy(g_engine);
    g_wait_result = flux_job_wait(g_engine, ev->job, 10, NULL);
  }
}

/* The kinds of the recorded events of `job`, in order. `flux_job_wait` returns only after the
 * job's terminal event was delivered, so after it the record is complete. */
static int events_of(FluxJob job, int32_t *kinds, int max) {
  int n = 0;
  for (int i = 0; i < g_event_count; i++)
    if (g_event_jobs[i] == job && n < max) kinds[n++] = g_event_kinds[i];
  return n;
}

int main(int argc, char **argv) {
  if (argc != 4) return 2;
  FluxEngineDesc ed;
  flux_engine_desc_init(&ed);
  ed.preview_every = 1;
  int user_counter = 0;
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

  FluxTextToImageDesc td;
  flux_text_to_image_desc_init(&td);
  td.prompt = "a red lighthouse at dusk";
  td.width = 64;
  td.height = 48;
  td.seed = 7;
  td.steps = 3;
  td.t5_len = 32;
  FluxJob job;
  CHECK(flux_engine_submit_text_to_image(e, &td, &job));
  CHECK(flux_job_wait(e, job, 120000, &state));
  EXPECT(state == FLUX_JOB_STATE_SUCCEEDED);
  int n = events_of(job, kinds, 64);
  const int32_t want[] = {FLUX_EVENT_TYPE_QUEUED,   FLUX_EVENT_TYPE_STARTED,  FLUX_EVENT_TYPE_PROGRESS,
                          FLUX_EVENT_TYPE_PREVIEW,  FLUX_EVENT_TYPE_PROGRESS, FLUX_EVENT_TYPE_PREVIEW,
                          FLUX_EVENT_TYPE_PROGRESS, FLUX_EVENT_TYPE_FINISHED};
  EXPECT(n == (int)(sizeof want / sizeof want[0]));
  for (int i = 0; i < n; i++) EXPECT(kinds[i] == want[i]);

  /* The callback saw the events with its user data, and was refused destroy and wait. */
  EXPECT(user_counter > 0 && user_counter == g_event_count);
  FluxEvent polled;
  polled.struct_size = sizeof polled;
  FluxResult polled_result = flux_engine_poll_event(e, &polled);
  EXPECT(polled_result == FLUX_RESULT_NO_EVENT);
  EXPECT(g_destroy_result == FLUX_RESULT_WRONG_THREAD);
  EXPECT(g_wait_result == FLUX_RESULT_WRONG_THREAD);

  FluxJobStatus st;
  st.struct_size = sizeof st;
  CHECK(flux_job_status(e, job, &st));
  EXPECT(st.state == FLUX_JOB_STATE_SUCCEEDED && st.step == 3 && st.total == 3 && st.has_result == 1);

  uint32_t w = 0, h = 0;
  CHECK(flux_job_image_size(e, job, &w, &h));
  EXPECT(w == 64 && h == 48);
  unsigned char *rgb = malloc((size_t)w * h * 3);
  CHECK(flux_job_copy_image(e, job, FLUX_PIXEL_FORMAT_RGB8, rgb, (size_t)w * 3, (size_t)w * h * 3));
  EXPECT(write_file(argv[2], rgb, (size_t)w * h * 3) == 0);

  /* RGBA8 with a padded stride and RGBA32F agree with RGB8. */
  size_t stride = (size_t)w * 4 + 12;
  unsigned char *rgba = malloc(stride * h);
  float *rgbaf = malloc((size_t)w * h * 16);
  CHECK(flux_job_copy_image(e, job, FLUX_PIXEL_FORMAT_RGBA8, rgba, stride, stride * h));
  CHECK(flux_job_copy_image(e, job, FLUX_PIXEL_FORMAT_RGBA32F, (uint8_t *)rgbaf, (size_t)w * 16, (size_t)w * h * 16));
  for (uint32_t y = 0; y < h; y++)
    for (uint32_t x = 0; x < w; x++)
      for (int c = 0; c < 3; c++) {
        unsigned char v = rgb[(y * w + x) * 3 + c];
        EXPECT(rgba[y * stride + x * 4 + c] == v);
        EXPECT(rgba[y * stride + x * 4 + 3] == 255);
        EXPECT(rgbaf[(y * w + x) * 4 + c] == v / 255.0f);
      }

  /* Kontext edit of that image (the tiny dev model stands in for a Kontext model). */
  FluxImageView view = {w, h, w * 3, FLUX_PIXEL_FORMAT_RGB8, rgb};
  FluxEditDesc edit;
  flux_edit_desc_init(&edit);
  edit.prompt = "make it night";
  edit.images = &view;
  edit.image_count = 1;
  edit.snap = 0;
  edit.steps = 2;
  edit.t5_len = 16;
  FluxJob edit_job;
  CHECK(flux_engine_submit_edit(e, &edit, &edit_job));
  CHECK(flux_job_wait(e, edit_job, 120000, &state));
  EXPECT(state == FLUX_JOB_STATE_SUCCEEDED);
  unsigned char *edited = malloc((size_t)w * h * 3);
  CHECK(flux_job_copy_image(e, edit_job, FLUX_PIXEL_FORMAT_RGB8, edited, (size_t)w * 3, (size_t)w * h * 3));
  EXPECT(write_file(argv[3], edited, (size_t)w * h * 3) == 0);
  CHECK(flux_job_release(e, edit_job));

  /* Cancel: a running job stops within a step, a queued one never starts. */
  td.width = 256;
  td.height = 256;
  td.steps = 500;
  FluxJob running, queued;
  CHECK(flux_engine_submit_text_to_image(e, &td, &running));
  CHECK(flux_engine_submit_text_to_image(e, &td, &queued));
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
  for (int i = 0; i < 3; i++) CHECK(flux_engine_submit_text_to_image(e, &td, &queued));
  sleep_ms(20);
  CHECK(flux_engine_destroy(e));
  EXPECT(flux_job_status(e, job, &st) == FLUX_RESULT_INVALID_HANDLE);

  free(rgb);
  free(rgba);
  free(rgbaf);
  free(edited);
  printf("lifecycle: ok\n");
  return 0;
}
