/* A table of bad inputs through the C ABI: each row asserts its documented code and its own
 * message (non-empty after a failure, empty after a success: every call sets or clears it);
 * afterwards the engine still generates an image.
 * Usage: bad_inputs MODEL_DIR EMPTY_DIR TRUNCATED_MODEL_DIR LORA_FILE */
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

/* A 16×16, one-step request (the caller destroys it). */
static FluxRequest *t2i(void) { return request_of("a cat", 16, 16, 1, 8); }

int main(int argc, char **argv) {
  if (argc != 5) return 2;
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
  md.kontext = -1; /* ABI 1's "detect" is no FluxKontext */
  ROW(flux_engine_load_model(e, &md, &job), FLUX_RESULT_INVALID_ARGUMENT);
  md.kontext = FLUX_KONTEXT_DETECT;
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
  FluxRequest *td = t2i();
  ROW(flux_engine_submit(e, td, &job), FLUX_RESULT_OK);
  ROW(flux_job_wait(e, job, 60000, &state), FLUX_RESULT_OK);
  EXPECT(state == FLUX_JOB_STATE_FAILED);
  md.folder = argv[1];
  CHECK(flux_engine_load_model(e, &md, &job));
  CHECK(flux_job_wait(e, job, 60000, &state));
  EXPECT(state == FLUX_JOB_STATE_SUCCEEDED);

  /* Request settings: each is checked when set, and a refused one leaves the request as it was. */
  FluxRequest *none = NULL;
  ROW(flux_request_create(NULL), FLUX_RESULT_NULL_POINTER);
  ROW(flux_request_create(&none), FLUX_RESULT_OK);
  ROW(flux_engine_submit(e, none, &job), FLUX_RESULT_INVALID_ARGUMENT); /* no prompt */
  EXPECT(strstr(flux_last_error_message(), "prompt") != NULL);
  ROW(flux_request_destroy(none), FLUX_RESULT_OK);
  ROW(flux_request_destroy(none), FLUX_RESULT_INVALID_HANDLE);
  ROW(flux_request_set_steps(none, 4), FLUX_RESULT_INVALID_HANDLE);
  ROW(flux_request_set_seed((FluxRequest *)e, 4), FLUX_RESULT_INVALID_HANDLE);
  ROW(flux_request_set_seed(NULL, 4), FLUX_RESULT_NULL_POINTER);
  ROW(flux_engine_submit(e, NULL, &job), FLUX_RESULT_NULL_POINTER);
  ROW(flux_engine_submit(e, td, NULL), FLUX_RESULT_NULL_POINTER);
  ROW(flux_engine_submit(dead, td, &job), FLUX_RESULT_INVALID_HANDLE);
  ROW(flux_request_set_prompt(td, NULL), FLUX_RESULT_NULL_POINTER);
  ROW(flux_request_set_prompt(td, BAD_UTF8), FLUX_RESULT_INVALID_UTF8);
  ROW(flux_request_set_size(td, 70, 16), FLUX_RESULT_INVALID_ARGUMENT);
  EXPECT(strstr(flux_last_error_message(), "64x16") != NULL);
  ROW(flux_request_set_size(td, 0, 16), FLUX_RESULT_INVALID_ARGUMENT);
  ROW(flux_request_set_size(td, 100000, 100000), FLUX_RESULT_INVALID_ARGUMENT);
  ROW(flux_request_set_steps(td, 0), FLUX_RESULT_INVALID_ARGUMENT);
  ROW(flux_request_set_steps(td, 5000), FLUX_RESULT_INVALID_ARGUMENT);
  ROW(flux_request_set_t5_length(td, 1), FLUX_RESULT_INVALID_ARGUMENT);
  ROW(flux_request_set_t5_length(td, 100000), FLUX_RESULT_INVALID_ARGUMENT);
  ROW(flux_request_set_guidance(td, NAN), FLUX_RESULT_INVALID_ARGUMENT);
  EXPECT(strstr(flux_last_error_message(), "guidance") != NULL);
  ROW(flux_request_set_guidance(td, INFINITY), FLUX_RESULT_INVALID_ARGUMENT);
  ROW(flux_request_set_guidance(td, -1.0f), FLUX_RESULT_INVALID_ARGUMENT);
  ROW(flux_request_set_guidance(td, 0.0f), FLUX_RESULT_OK);
  /* After the refusals, the request still is the 16×16 one-step job. */
  ROW(flux_engine_submit(e, td, &job), FLUX_RESULT_OK);
  ROW(flux_job_wait(e, job, 60000, &state), FLUX_RESULT_OK);
  EXPECT(state == FLUX_JOB_STATE_SUCCEEDED);
  uint32_t w, h;
  ROW(flux_job_image_size(e, job, &w, &h), FLUX_RESULT_OK);
  EXPECT(w == 16 && h == 16);

  /* Images: the layout and the buffer's size are checked when the image is made. */
  static unsigned char pixels[64 * 48 * 16];
  FluxImage *img = NULL, *bad = NULL;
  FluxImageDesc desc = image_desc(64, 48, FLUX_PIXEL_FORMAT_RGB8, 64 * 3);
  ROW(flux_image_create_host(NULL, pixels, sizeof pixels, &img), FLUX_RESULT_NULL_POINTER);
  ROW(flux_image_create_host(&desc, NULL, sizeof pixels, &img), FLUX_RESULT_NULL_POINTER);
  ROW(flux_image_create_host(&desc, pixels, sizeof pixels, NULL), FLUX_RESULT_NULL_POINTER);
  ROW(flux_image_create_host(&desc, pixels, 64 * 3 * 48 - 1, &bad), FLUX_RESULT_BUFFER_TOO_SMALL);
  desc.row_pitch = 64 * 3 - 1;
  ROW(flux_image_create_host(&desc, pixels, sizeof pixels, &bad), FLUX_RESULT_INVALID_ARGUMENT);
  desc = image_desc(0, 48, FLUX_PIXEL_FORMAT_RGB8, 64 * 3);
  ROW(flux_image_create_host(&desc, pixels, sizeof pixels, &bad), FLUX_RESULT_INVALID_ARGUMENT);
  desc = image_desc(20000, 20000, FLUX_PIXEL_FORMAT_RGB8, 20000 * 3);
  ROW(flux_image_create_host(&desc, pixels, sizeof pixels, &bad), FLUX_RESULT_INVALID_ARGUMENT);
  desc = image_desc(64, 48, 9, 64 * 4);
  ROW(flux_image_create_host(&desc, pixels, sizeof pixels, &bad), FLUX_RESULT_INVALID_ARGUMENT);
  desc = image_desc(64, 48, FLUX_PIXEL_FORMAT_RGB8, 64 * 3);
  desc.struct_size = 8;
  ROW(flux_image_create_host(&desc, pixels, sizeof pixels, &bad), FLUX_RESULT_BAD_STRUCT_SIZE);
  /* A pitch whose 47 row offsets wrap around. */
  desc = image_desc(64, 48, FLUX_PIXEL_FORMAT_RGB8, UINT64_MAX / 47 + 1);
  ROW(flux_image_create_host(&desc, pixels, sizeof pixels, &bad), FLUX_RESULT_INVALID_ARGUMENT);
  EXPECT(bad == NULL);
  desc = image_desc(64, 48, FLUX_PIXEL_FORMAT_RGB8, 64 * 3);
  ROW(flux_image_create_host(&desc, pixels, sizeof pixels, &img), FLUX_RESULT_OK);
  ROW(flux_image_create_cuda(e, &desc, 0x1000, NULL, &bad), FLUX_RESULT_INVALID_ARGUMENT); /* RGB8 */
  FluxImageDesc rgba = image_desc(64, 48, FLUX_PIXEL_FORMAT_RGBA8, 64 * 4);
  ROW(flux_image_create_cuda(e, &rgba, 0x1000, NULL, &bad), FLUX_RESULT_UNSUPPORTED); /* a CPU engine */

  /* Edits and image-to-image: at most 4 references, never beside an init image. */
  FluxRequest *edit = t2i();
  ROW(flux_request_add_reference(edit, NULL, 0), FLUX_RESULT_NULL_POINTER);
  ROW(flux_request_add_reference(edit, (FluxImage *)e, 0), FLUX_RESULT_INVALID_HANDLE);
  for (int i = 0; i < 4; i++) ROW(flux_request_add_reference(edit, img, 0), FLUX_RESULT_OK);
  ROW(flux_request_add_reference(edit, img, 0), FLUX_RESULT_INVALID_ARGUMENT);
  ROW(flux_request_set_init_image(edit, img, 0, 0.5f), FLUX_RESULT_INVALID_ARGUMENT);
  ROW(flux_request_clear_images(edit), FLUX_RESULT_OK);
  ROW(flux_request_set_init_image(edit, img, 0, 0.0f), FLUX_RESULT_INVALID_ARGUMENT);
  ROW(flux_request_set_init_image(edit, img, 0, 1.5f), FLUX_RESULT_INVALID_ARGUMENT);
  ROW(flux_request_set_init_image(edit, img, 0, NAN), FLUX_RESULT_INVALID_ARGUMENT);
  ROW(flux_request_set_init_image(edit, img, 0, 0.5f), FLUX_RESULT_OK);
  ROW(flux_request_add_reference(edit, img, 0), FLUX_RESULT_INVALID_ARGUMENT);
  /* The request copied the pixels: it outlives the image. */
  ROW(flux_image_destroy(img), FLUX_RESULT_OK);
  ROW(flux_image_destroy(img), FLUX_RESULT_INVALID_HANDLE);
  ROW(flux_image_destroy(NULL), FLUX_RESULT_NULL_POINTER);
  ROW(flux_request_set_init_image(edit, img, 0, 0.5f), FLUX_RESULT_INVALID_HANDLE);
  ROW(flux_request_set_size(edit, 64, 48), FLUX_RESULT_OK);
  ROW(flux_engine_submit(e, edit, &job), FLUX_RESULT_OK);
  ROW(flux_job_wait(e, job, 60000, &state), FLUX_RESULT_OK);
  EXPECT(state == FLUX_JOB_STATE_SUCCEEDED);
  CHECK(flux_request_destroy(edit));

  /* LoRAs: the path and strength are checked when added, the file when the job runs. */
  FluxRequest *styled = t2i();
  ROW(flux_request_add_lora(styled, NULL, 1.0f), FLUX_RESULT_NULL_POINTER);
  ROW(flux_request_add_lora(styled, BAD_UTF8, 1.0f), FLUX_RESULT_INVALID_UTF8);
  ROW(flux_request_add_lora(styled, "/nonexistent/style.safetensors", 1.0f), FLUX_RESULT_INVALID_ARGUMENT);
  ROW(flux_request_add_lora(styled, argv[4], NAN), FLUX_RESULT_INVALID_ARGUMENT);
  ROW(flux_request_add_lora(none, argv[4], 1.0f), FLUX_RESULT_INVALID_HANDLE);
  /* This program is no LoRA file: its job fails, and the engine goes on. */
  ROW(flux_request_add_lora(styled, argv[0], 1.0f), FLUX_RESULT_OK);
  ROW(flux_engine_submit(e, styled, &job), FLUX_RESULT_OK);
  ROW(flux_job_wait(e, job, 60000, &state), FLUX_RESULT_OK);
  EXPECT(state == FLUX_JOB_STATE_FAILED);
  ROW(flux_request_clear_loras(styled), FLUX_RESULT_OK);
  ROW(flux_request_add_lora(styled, argv[4], 0.5f), FLUX_RESULT_OK);
  ROW(flux_engine_submit(e, styled, &job), FLUX_RESULT_OK);
  ROW(flux_job_wait(e, job, 60000, &state), FLUX_RESULT_OK);
  EXPECT(state == FLUX_JOB_STATE_SUCCEEDED);
  CHECK(flux_request_destroy(styled));

  /* FLUX.1 tools and true CFG: inputs checked when set; a Fill job on a plain model fails
   * alone. */
  FluxRequest *tool = t2i();
  FluxImage *picture = NULL, *narrow = NULL;
  desc = image_desc(64, 48, FLUX_PIXEL_FORMAT_RGB8, 64 * 3);
  CHECK(flux_image_create_host(&desc, pixels, sizeof pixels, &picture));
  desc = image_desc(32, 48, FLUX_PIXEL_FORMAT_RGB8, 32 * 3);
  CHECK(flux_image_create_host(&desc, pixels, sizeof pixels, &narrow));
  ROW(flux_request_set_fill(tool, NULL, 0, picture), FLUX_RESULT_NULL_POINTER);
  ROW(flux_request_set_fill(tool, picture, 0, NULL), FLUX_RESULT_NULL_POINTER);
  ROW(flux_request_set_fill(tool, picture, 0, narrow), FLUX_RESULT_INVALID_ARGUMENT);
  ROW(flux_request_set_fill(none, picture, 0, picture), FLUX_RESULT_INVALID_HANDLE);
  FluxImage *grey = NULL;
  desc = image_desc(64, 48, FLUX_PIXEL_FORMAT_R8, 64);
  CHECK(flux_image_create_host(&desc, pixels, sizeof pixels, &grey));
  ROW(flux_request_set_fill(tool, picture, 0, grey), FLUX_RESULT_OK); /* a one-channel mask */
  CHECK(flux_image_destroy(grey));
  ROW(flux_request_set_fill(tool, picture, 0, picture), FLUX_RESULT_OK);
  ROW(flux_request_set_control_image(tool, picture, 0), FLUX_RESULT_INVALID_ARGUMENT);
  ROW(flux_request_add_reference(tool, picture, 0), FLUX_RESULT_INVALID_ARGUMENT);
  ROW(flux_engine_submit(e, tool, &job), FLUX_RESULT_OK);
  ROW(flux_job_wait(e, job, 60000, &state), FLUX_RESULT_OK);
  EXPECT(state == FLUX_JOB_STATE_FAILED); /* the tiny model is no Fill model */
  ROW(flux_request_clear_images(tool), FLUX_RESULT_OK);
  ROW(flux_request_set_control_image(tool, NULL, 0), FLUX_RESULT_NULL_POINTER);
  ROW(flux_request_add_redux_image(tool, NULL, 0), FLUX_RESULT_NULL_POINTER);
  ROW(flux_request_add_redux_image(none, picture, 0), FLUX_RESULT_INVALID_HANDLE);
  for (int i = 0; i < 4; i++) ROW(flux_request_add_redux_image(tool, picture, 0), FLUX_RESULT_OK);
  ROW(flux_request_add_redux_image(tool, picture, 0), FLUX_RESULT_INVALID_ARGUMENT);
  ROW(flux_request_add_reference(tool, picture, 0), FLUX_RESULT_INVALID_ARGUMENT);
  ROW(flux_engine_submit(e, tool, &job), FLUX_RESULT_OK);
  ROW(flux_job_wait(e, job, 60000, &state), FLUX_RESULT_OK);
  EXPECT(state == FLUX_JOB_STATE_FAILED); /* no Redux files beside the tiny model */
  ROW(flux_request_clear_images(tool), FLUX_RESULT_OK);
  ROW(flux_request_set_negative_prompt(tool, NULL, 4.0f), FLUX_RESULT_NULL_POINTER);
  ROW(flux_request_set_negative_prompt(tool, BAD_UTF8, 4.0f), FLUX_RESULT_INVALID_UTF8);
  ROW(flux_request_set_negative_prompt(tool, "fog", NAN), FLUX_RESULT_INVALID_ARGUMENT);
  ROW(flux_request_set_negative_prompt(tool, "fog", 0.5f), FLUX_RESULT_INVALID_ARGUMENT);
  ROW(flux_request_set_negative_prompt(none, "fog", 4.0f), FLUX_RESULT_INVALID_HANDLE);
  ROW(flux_request_set_negative_prompt(tool, "fog", 4.0f), FLUX_RESULT_OK);
  ROW(flux_engine_submit(e, tool, &job), FLUX_RESULT_OK);
  ROW(flux_job_wait(e, job, 60000, &state), FLUX_RESULT_OK);
  EXPECT(state == FLUX_JOB_STATE_SUCCEEDED);
  CHECK(flux_image_destroy(picture));
  CHECK(flux_image_destroy(narrow));
  CHECK(flux_request_destroy(tool));

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
  FluxRequest *slow_request = t2i();
  CHECK(flux_request_set_size(slow_request, 256, 256));
  CHECK(flux_request_set_steps(slow_request, 400));
  FluxJob slow;
  CHECK(flux_engine_submit(e, slow_request, &slow));
  CHECK(flux_request_destroy(slow_request));
  state = -1;
  ROW(flux_job_wait(e, slow, 1, &state), FLUX_RESULT_TIMEOUT);
  EXPECT(state == FLUX_JOB_STATE_QUEUED || state == FLUX_JOB_STATE_RUNNING);
  static unsigned char out[64 * 64 * 16];
  desc = image_desc(16, 16, FLUX_PIXEL_FORMAT_RGB8, 16 * 3);
  FluxImage *dst = NULL;
  CHECK(flux_image_create_host(&desc, out, sizeof out, &dst));
  ROW(flux_job_write_image(e, slow, dst, 0), FLUX_RESULT_NOT_READY);
  CHECK(flux_job_cancel(e, slow, NULL));
  CHECK(flux_job_wait(e, slow, 60000, &state));
  ROW(flux_job_write_image(e, slow, dst, 0), FLUX_RESULT_NOT_READY);
  FluxJob done;
  CHECK(flux_engine_submit(e, td, &done));
  CHECK(flux_job_wait(e, done, 60000, &state));
  ROW(flux_job_write_image(e, done, NULL, 0), FLUX_RESULT_NULL_POINTER);
  ROW(flux_job_write_image(e, done, (FluxImage *)td, 0), FLUX_RESULT_INVALID_HANDLE);
  ROW(flux_job_write_image(e, done, dst, 0), FLUX_RESULT_OK);
  CHECK(flux_image_destroy(dst));
  /* A destination of another size than the result. */
  desc = image_desc(32, 16, FLUX_PIXEL_FORMAT_RGBA8, 32 * 4);
  CHECK(flux_image_create_host(&desc, out, sizeof out, &dst));
  ROW(flux_job_write_image(e, done, dst, 0), FLUX_RESULT_INVALID_ARGUMENT);
  CHECK(flux_image_destroy(dst));
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
  CHECK(flux_engine_submit(e, td, &job));
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
  CHECK(flux_engine_submit(e, td, &job));
  CHECK(flux_job_wait(e, job, 60000, &state));
  EXPECT(state == FLUX_JOB_STATE_SUCCEEDED);
  CHECK(flux_engine_get_residency(e, &res));
  EXPECT(res.stream_window == 1 && res.release_text_encoders == 1);
  ROW(flux_engine_set_residency_plan(e, NULL), FLUX_RESULT_OK);
  CHECK(flux_request_destroy(td));
  CHECK(flux_engine_destroy(e));
  printf("bad_inputs: %d rows, %d failures\n", rows, failures);
  return failures == 0 && rows >= 40 ? 0 : 1;
}
