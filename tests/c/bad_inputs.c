/* A table of bad inputs through the C ABI: each row asserts its documented code and its own
 * message (non-empty after a failure, empty after a success: every call sets or clears it);
 * afterwards the engine still generates an image.
 * Usage: bad_inputs MODEL_DIR EMPTY_DIR TRUNCATED_MODEL_DIR */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static int rows = 0, failures = 0;

#define ROW(expr, code)                                                                          \
  do {                                                                                           \
    FluxResult r_ = (expr);                                                                      \
    rows++;                                                                                      \
    if (r_ != (code)) {                                                                          \
      fprintf(stderr, "row %d: %s -> %d, expected %d (%s)\n", rows, #expr, (int)r_, (int)(code), \
              flux_last_error_message());                                                        \
      failures++;                                                                                \
    } else if (((code) != FLUX_RESULT_OK) != (flux_last_error_message()[0] != '\0')) {          \
      fprintf(stderr, "row %d: %s left the message \"%s\"\n", rows, #expr,                       \
              flux_last_error_message());                                                        \
      failures++;                                                                                \
    }                                                                                            \
  } while (0)

static const char BAD_UTF8[] = {(char)0xff, (char)0xfe, 'x', 0};

static FluxTextToImageDesc t2i(void) {
  FluxTextToImageDesc d;
  flux_text_to_image_desc_init(&d);
  d.prompt = "a cat";
  d.width = 16;
  d.height = 16;
  d.steps = 1;
  d.t5_len = 8;
  return d;
}

int main(int argc, char **argv) {
  if (argc != 4) return 2;
  FluxEngine *e = NULL, *dead = NULL;
  FluxEngineDesc ed;
  FluxJob job = 0;
  int32_t state;

  /* Engine creation. */
  flux_engine_desc_init(&ed);
  ROW(flux_engine_create(NULL, &e), FLUX_RESULT_NULL_POINTER);
  ROW(flux_engine_create(&ed, NULL), FLUX_RESULT_NULL_POINTER);
  ed.struct_size = 4;
  ROW(flux_engine_create(&ed, &e), FLUX_RESULT_BAD_STRUCT_SIZE);
  ed.struct_size = 1u << 20;
  ROW(flux_engine_create(&ed, &e), FLUX_RESULT_BAD_STRUCT_SIZE);
  flux_engine_desc_init(&ed);
  ed.abi_version = FLUX_ABI_VERSION + 1;
  ROW(flux_engine_create(&ed, &e), FLUX_RESULT_ABI_MISMATCH);
  flux_engine_desc_init(&ed);
  ed.device = 7;
  ROW(flux_engine_create(&ed, &e), FLUX_RESULT_INVALID_ARGUMENT);
  flux_engine_desc_init(&ed);
  ed.log_level = 99;
  ROW(flux_engine_create(&ed, &e), FLUX_RESULT_INVALID_ARGUMENT);
  /* An older caller whose struct ends after abi_version gets defaults for the rest. */
  flux_engine_desc_init(&ed);
  ed.struct_size = offsetof(FluxEngineDesc, device);
  ed.device = 7; /* beyond the caller's size: ignored */
  ROW(flux_engine_create(&ed, &dead), FLUX_RESULT_OK);
  ROW(flux_engine_destroy(dead), FLUX_RESULT_OK);
  ROW(flux_engine_destroy(dead), FLUX_RESULT_INVALID_HANDLE);
  ROW(flux_engine_destroy(NULL), FLUX_RESULT_OK);
  flux_engine_desc_init(&ed);
  CHECK(flux_engine_create(&ed, &e));

  /* Model loading. */
  FluxModelDesc md;
  flux_model_desc_init(&md);
  md.folder = argv[1];
  ROW(flux_engine_load_model(NULL, &md, &job), FLUX_RESULT_NULL_POINTER);
  ROW(flux_engine_load_model(dead, &md, &job), FLUX_RESULT_INVALID_HANDLE);
  ROW(flux_engine_load_model((FluxEngine *)&md, &md, &job), FLUX_RESULT_INVALID_HANDLE);
  ROW(flux_engine_load_model(e, NULL, &job), FLUX_RESULT_NULL_POINTER);
  ROW(flux_engine_load_model(e, &md, NULL), FLUX_RESULT_NULL_POINTER);
  md.folder = "/nonexistent/flux";
  ROW(flux_engine_load_model(e, &md, &job), FLUX_RESULT_IO);
  md.folder = argv[2];
  ROW(flux_engine_load_model(e, &md, &job), FLUX_RESULT_UNKNOWN_LAYOUT);
  md.folder = BAD_UTF8;
  ROW(flux_engine_load_model(e, &md, &job), FLUX_RESULT_INVALID_UTF8);
  md.folder = NULL;
  ROW(flux_engine_load_model(e, &md, &job), FLUX_RESULT_NULL_POINTER);
  md.folder = argv[1];
  md.dtype = 9;
  ROW(flux_engine_load_model(e, &md, &job), FLUX_RESULT_INVALID_ARGUMENT);
  md.dtype = 0;
  md.kontext = 5;
  ROW(flux_engine_load_model(e, &md, &job), FLUX_RESULT_INVALID_ARGUMENT);
  md.kontext = -1;
  md.struct_size = 2;
  ROW(flux_engine_load_model(e, &md, &job), FLUX_RESULT_BAD_STRUCT_SIZE);
  md.struct_size = sizeof md;
  /* A truncated weight file fails the load job, naming the file. */
  md.folder = argv[3];
  ROW(flux_engine_load_model(e, &md, &job), FLUX_RESULT_OK);
  ROW(flux_job_wait(e, job, 60000, &state), FLUX_RESULT_OK);
  ROW(flux_job_error(e, job), FLUX_RESULT_JOB_FAILED);
  EXPECT(strstr(flux_last_error_message(), "truncated") != NULL);
  /* Generating without a model fails the job, not the call. */
  FluxTextToImageDesc td = t2i();
  ROW(flux_engine_submit_text_to_image(e, &td, &job), FLUX_RESULT_OK);
  ROW(flux_job_wait(e, job, 60000, &state), FLUX_RESULT_OK);
  EXPECT(state == FLUX_JOB_STATE_FAILED);
  md.folder = argv[1];
  CHECK(flux_engine_load_model(e, &md, &job));
  CHECK(flux_job_wait(e, job, 60000, &state));
  EXPECT(state == FLUX_JOB_STATE_SUCCEEDED);

  /* Text-to-image requests. */
  ROW(flux_engine_submit_text_to_image(e, NULL, &job), FLUX_RESULT_NULL_POINTER);
  td.prompt = NULL;
  ROW(flux_engine_submit_text_to_image(e, &td, &job), FLUX_RESULT_NULL_POINTER);
  td.prompt = BAD_UTF8;
  ROW(flux_engine_submit_text_to_image(e, &td, &job), FLUX_RESULT_INVALID_UTF8);
  td = t2i();
  td.width = 70;
  ROW(flux_engine_submit_text_to_image(e, &td, &job), FLUX_RESULT_INVALID_ARGUMENT);
  EXPECT(strstr(flux_last_error_message(), "64x16") != NULL);
  td.width = 0;
  ROW(flux_engine_submit_text_to_image(e, &td, &job), FLUX_RESULT_INVALID_ARGUMENT);
  td.width = 100000;
  td.height = 100000;
  ROW(flux_engine_submit_text_to_image(e, &td, &job), FLUX_RESULT_INVALID_ARGUMENT);
  td = t2i();
  td.steps = 5000;
  ROW(flux_engine_submit_text_to_image(e, &td, &job), FLUX_RESULT_INVALID_ARGUMENT);
  td = t2i();
  td.t5_len = 100000;
  ROW(flux_engine_submit_text_to_image(e, &td, &job), FLUX_RESULT_INVALID_ARGUMENT);
  td = t2i();
  td.guidance = NAN; /* not the default (that is a negative value) */
  ROW(flux_engine_submit_text_to_image(e, &td, &job), FLUX_RESULT_INVALID_ARGUMENT);
  EXPECT(strstr(flux_last_error_message(), "guidance") != NULL);
  td.guidance = INFINITY;
  ROW(flux_engine_submit_text_to_image(e, &td, &job), FLUX_RESULT_INVALID_ARGUMENT);
  td = t2i();
  td.struct_size = 0;
  ROW(flux_engine_submit_text_to_image(e, &td, &job), FLUX_RESULT_BAD_STRUCT_SIZE);
  /* An older, smaller struct: fields past struct_size take defaults (1024 x 1024, not 70). */
  td = t2i();
  td.struct_size = offsetof(FluxTextToImageDesc, width);
  td.width = 70;
  ROW(flux_engine_submit_text_to_image(e, &td, &job), FLUX_RESULT_OK);
  ROW(flux_job_cancel(e, job, NULL), FLUX_RESULT_OK);
  /* A newer, larger struct: unknown trailing bytes are ignored. */
  struct {
    FluxTextToImageDesc d;
    unsigned char future[64];
  } big;
  memset(&big, 0xAB, sizeof big);
  big.d = t2i();
  big.d.struct_size = sizeof big;
  ROW(flux_engine_submit_text_to_image(e, &big.d, &job), FLUX_RESULT_OK);
  ROW(flux_job_wait(e, job, 60000, &state), FLUX_RESULT_OK);
  EXPECT(state == FLUX_JOB_STATE_SUCCEEDED);

  /* Edits. */
  static unsigned char pixels[64 * 48 * 4];
  FluxImageView img = {64, 48, 64 * 3, FLUX_PIXEL_FORMAT_RGB8, pixels};
  FluxEditDesc edit;
  flux_edit_desc_init(&edit);
  edit.prompt = "make it night";
  edit.images = &img;
  edit.image_count = 1;
  edit.snap = 0;
  edit.images = NULL;
  ROW(flux_engine_submit_edit(e, &edit, &job), FLUX_RESULT_NULL_POINTER);
  edit.images = &img;
  edit.image_count = 0;
  ROW(flux_engine_submit_edit(e, &edit, &job), FLUX_RESULT_INVALID_ARGUMENT);
  edit.image_count = 5;
  ROW(flux_engine_submit_edit(e, &edit, &job), FLUX_RESULT_INVALID_ARGUMENT);
  edit.image_count = 1;
  img.data = NULL;
  ROW(flux_engine_submit_edit(e, &edit, &job), FLUX_RESULT_NULL_POINTER);
  img.data = pixels;
  img.stride = 64 * 3 - 1;
  ROW(flux_engine_submit_edit(e, &edit, &job), FLUX_RESULT_INVALID_ARGUMENT);
  img.stride = 64 * 3;
  img.width = 0;
  ROW(flux_engine_submit_edit(e, &edit, &job), FLUX_RESULT_INVALID_ARGUMENT);
  img.width = 20000;
  img.height = 20000;
  img.stride = 20000 * 3;
  ROW(flux_engine_submit_edit(e, &edit, &job), FLUX_RESULT_INVALID_ARGUMENT);
  img.width = 64;
  img.height = 48;
  img.stride = 64 * 3;
  img.format = 9;
  ROW(flux_engine_submit_edit(e, &edit, &job), FLUX_RESULT_INVALID_ARGUMENT);
  img.format = FLUX_PIXEL_FORMAT_RGBA32F;
  ROW(flux_engine_submit_edit(e, &edit, &job), FLUX_RESULT_INVALID_ARGUMENT);
  img.format = FLUX_PIXEL_FORMAT_RGB8;
  edit.width = 50;
  edit.height = 64;
  ROW(flux_engine_submit_edit(e, &edit, &job), FLUX_RESULT_INVALID_ARGUMENT);
  edit.width = 0;
  edit.height = 0;
  edit.prompt = BAD_UTF8;
  ROW(flux_engine_submit_edit(e, &edit, &job), FLUX_RESULT_INVALID_UTF8);

  /* Image-to-image. */
  FluxImageToImageDesc i2i;
  flux_image_to_image_desc_init(&i2i);
  i2i.prompt = "a cat";
  i2i.init = img;
  i2i.strength = 0.0f;
  ROW(flux_engine_submit_image_to_image(e, &i2i, &job), FLUX_RESULT_INVALID_ARGUMENT);
  i2i.strength = 1.5f;
  ROW(flux_engine_submit_image_to_image(e, &i2i, &job), FLUX_RESULT_INVALID_ARGUMENT);
  i2i.strength = 0.5f;
  i2i.init.data = NULL;
  ROW(flux_engine_submit_image_to_image(e, &i2i, &job), FLUX_RESULT_NULL_POINTER);

  /* Jobs and results. */
  FluxJobStatus st;
  st.struct_size = sizeof st;
  ROW(flux_job_cancel(e, 123456, NULL), FLUX_RESULT_UNKNOWN_JOB);
  ROW(flux_job_status(e, 123456, &st), FLUX_RESULT_UNKNOWN_JOB);
  ROW(flux_job_status(e, job, NULL), FLUX_RESULT_NULL_POINTER);
  st.struct_size = 0;
  ROW(flux_job_status(e, job, &st), FLUX_RESULT_BAD_STRUCT_SIZE);
  st.struct_size = sizeof st;
  ROW(flux_job_wait(e, 123456, 10, &state), FLUX_RESULT_UNKNOWN_JOB);
  td = t2i();
  td.width = 256;
  td.height = 256;
  td.steps = 400;
  FluxJob slow;
  CHECK(flux_engine_submit_text_to_image(e, &td, &slow));
  state = -1;
  ROW(flux_job_wait(e, slow, 1, &state), FLUX_RESULT_TIMEOUT);
  EXPECT(state == FLUX_JOB_STATE_QUEUED || state == FLUX_JOB_STATE_RUNNING);
  static unsigned char out[64 * 64 * 16];
  ROW(flux_job_copy_image(e, slow, FLUX_PIXEL_FORMAT_RGB8, out, 64 * 3, sizeof out), FLUX_RESULT_NOT_READY);
  CHECK(flux_job_cancel(e, slow, NULL));
  CHECK(flux_job_wait(e, slow, 60000, &state));
  ROW(flux_job_copy_image(e, slow, FLUX_PIXEL_FORMAT_RGB8, out, 64 * 3, sizeof out), FLUX_RESULT_NOT_READY);
  td = t2i();
  FluxJob done;
  CHECK(flux_engine_submit_text_to_image(e, &td, &done));
  CHECK(flux_job_wait(e, done, 60000, &state));
  ROW(flux_job_copy_image(e, done, 9, out, 16 * 3, sizeof out), FLUX_RESULT_INVALID_ARGUMENT);
  ROW(flux_job_copy_image(e, done, FLUX_PIXEL_FORMAT_RGB8, NULL, 16 * 3, sizeof out), FLUX_RESULT_NULL_POINTER);
  ROW(flux_job_copy_image(e, done, FLUX_PIXEL_FORMAT_RGB8, out, 16 * 3, 16 * 3 * 15), FLUX_RESULT_BUFFER_TOO_SMALL);
  ROW(flux_job_copy_image(e, done, FLUX_PIXEL_FORMAT_RGBA8, out, 16 * 3, sizeof out), FLUX_RESULT_INVALID_ARGUMENT);
  /* A stride whose 15 row offsets wrap around to 14 bytes. */
  ROW(flux_job_copy_image(e, done, FLUX_PIXEL_FORMAT_RGB8, out, SIZE_MAX / 15 + 1, sizeof out), FLUX_RESULT_INVALID_ARGUMENT);
  uint32_t w, h;
  ROW(flux_job_image_size(e, 123456, &w, &h), FLUX_RESULT_UNKNOWN_JOB);
  ROW(flux_job_image_size(e, done, NULL, &h), FLUX_RESULT_NULL_POINTER);
  ROW(flux_job_release(e, done), FLUX_RESULT_OK);
  ROW(flux_job_release(e, done), FLUX_RESULT_UNKNOWN_JOB);
  ROW(flux_job_status(e, done, &st), FLUX_RESULT_UNKNOWN_JOB);

  /* Events and memory. */
  FluxEvent ev;
  ROW(flux_engine_poll_event(e, NULL), FLUX_RESULT_NULL_POINTER);
  ev.struct_size = sizeof ev;
  while (flux_engine_poll_event(e, &ev) == FLUX_RESULT_OK) {
  }
  ROW(flux_engine_poll_event(e, &ev), FLUX_RESULT_NO_EVENT);
  /* A bad struct_size is refused before the event is taken: the next poll still gets it. */
  CHECK(flux_engine_submit_text_to_image(e, &td, &job));
  CHECK(flux_job_wait(e, job, 60000, &state));
  ev.struct_size = 2;
  ROW(flux_engine_poll_event(e, &ev), FLUX_RESULT_BAD_STRUCT_SIZE);
  /* A newer caller's larger struct: the fields this library does not know read as zero. */
  struct {
    FluxEvent ev;
    unsigned char newer[24];
  } newer_event;
  memset(&newer_event, 0xab, sizeof newer_event);
  newer_event.ev.struct_size = sizeof newer_event;
  ROW(flux_engine_poll_event(e, &newer_event.ev), FLUX_RESULT_OK);
  EXPECT(newer_event.ev.job == job && newer_event.ev.kind == FLUX_EVENT_TYPE_QUEUED);
  for (size_t i = 0; i < sizeof newer_event.newer; i++) EXPECT(newer_event.newer[i] == 0);
  FluxJobStatus big_status[2];
  memset(big_status, 0xab, sizeof big_status);
  big_status[0].struct_size = sizeof big_status;
  ROW(flux_job_status(e, job, &big_status[0]), FLUX_RESULT_OK);
  EXPECT(big_status[0].state == FLUX_JOB_STATE_SUCCEEDED);
  for (size_t i = 0; i < sizeof big_status[1]; i++) EXPECT(((unsigned char *)&big_status[1])[i] == 0);
  CHECK(flux_job_release(e, job));
  ev.struct_size = sizeof ev;
  while (flux_engine_poll_event(e, &ev) == FLUX_RESULT_OK) {
  }
  FluxResidency res;
  res.struct_size = sizeof res;
  ROW(flux_engine_get_residency(NULL, &res), FLUX_RESULT_NULL_POINTER);
  ROW(flux_engine_get_residency(e, NULL), FLUX_RESULT_NULL_POINTER);
  ROW(flux_engine_set_memory_budget(dead, 1), FLUX_RESULT_INVALID_HANDLE);
  ROW(flux_engine_get_residency(e, &res), FLUX_RESULT_OK);
  EXPECT(res.transformer > 0 && res.text_encoders > 0);
  EXPECT(res.stream_window == 0 && res.text_placement == FLUX_TEXT_PLACEMENT_RESIDENT);
  ROW(flux_engine_set_memory_reserve(dead, 1), FLUX_RESULT_INVALID_HANDLE);
  FluxResidencyPlan plan;
  flux_residency_plan_init(&plan);
  plan.text_placement = 7;
  ROW(flux_engine_set_residency_plan(e, &plan), FLUX_RESULT_INVALID_ARGUMENT);
  plan.text_placement = FLUX_TEXT_PLACEMENT_RESIDENT;
  plan.tiled_vae = 2;
  ROW(flux_engine_set_residency_plan(e, &plan), FLUX_RESULT_INVALID_ARGUMENT);
  plan.struct_size = 2;
  ROW(flux_engine_set_residency_plan(e, &plan), FLUX_RESULT_BAD_STRUCT_SIZE);
  ROW(flux_engine_set_residency_plan(dead, NULL), FLUX_RESULT_INVALID_HANDLE);
  /* One block at a time, encoders released: the next job runs streamed. */
  flux_residency_plan_init(&plan);
  plan.text_placement = FLUX_TEXT_PLACEMENT_RELEASED;
  plan.stream_window = 1;
  ROW(flux_engine_set_residency_plan(e, &plan), FLUX_RESULT_OK);

  /* The engine still works after all of that. */
  td = t2i();
  CHECK(flux_engine_submit_text_to_image(e, &td, &job));
  CHECK(flux_job_wait(e, job, 60000, &state));
  EXPECT(state == FLUX_JOB_STATE_SUCCEEDED);
  CHECK(flux_engine_get_residency(e, &res));
  EXPECT(res.stream_window == 1 && res.release_text_encoders == 1);
  ROW(flux_engine_set_residency_plan(e, NULL), FLUX_RESULT_OK);
  CHECK(flux_engine_destroy(e));
  printf("bad_inputs: %d rows, %d failures\n", rows, failures);
  return failures == 0 && rows >= 40 ? 0 : 1;
}
