/* flux-c: a small command-line tool over the Flux Engine C API.
 *
 *   flux-c generate MODEL_DIR "PROMPT" OUT.png [WIDTH HEIGHT STEPS SEED]
 *   flux-c edit     MODEL_DIR "PROMPT" IN.rgb IN_WIDTH IN_HEIGHT OUT.png [STEPS SEED]
 *
 * IN.rgb is raw RGB8 (tightly packed). Progress is printed from polled events; Ctrl-C cancels
 * the job (the engine stops within one step) and a second Ctrl-C is not needed. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flux_engine.h"

static volatile sig_atomic_t interrupted = 0;

static void on_sigint(int sig) {
  (void)sig;
  interrupted = 1;
}

static int fail(const char *what, FluxResult r) {
  fprintf(stderr, "flux-c: %s failed (%d): %s\n", what, (int)r, flux_last_error_message());
  return 1;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Polls events until `job` ends, printing progress and logs; cancels on Ctrl-C. */
static int32_t follow(FluxEngine *engine, FluxJob job) {
  int cancel_sent = 0;
  for (;;) {
    FluxEvent ev;
    ev.struct_size = sizeof ev;
    while (flux_engine_poll_event(engine, &ev) == FLUX_RESULT_OK) {
      if (ev.kind == FLUX_EVENT_TYPE_LOG && ev.log_level <= FLUX_LOG_LEVEL_WARN) {
        fprintf(stderr, "log: %s\n", ev.message);
      } else if (ev.job != job) {
        continue;
      } else if (ev.kind == FLUX_EVENT_TYPE_PROGRESS) {
        fprintf(stderr, "\rstep %u/%u  (%.1f s, ~%.1f s left)", ev.step, ev.total, ev.elapsed_ms / 1000.0,
                ev.eta_ms / 1000.0);
      } else if (ev.kind == FLUX_EVENT_TYPE_FINISHED) {
        fprintf(stderr, "\ndone: text %.0f ms, denoise %.0f ms, decode %.0f ms\n", ev.text_ms, ev.denoise_ms,
                ev.decode_ms);
      } else if (ev.kind == FLUX_EVENT_TYPE_FAILED) {
        fprintf(stderr, "\nfailed: %s\n", ev.message);
      } else if (ev.kind == FLUX_EVENT_TYPE_CANCELLED) {
        fprintf(stderr, "\ncancelled\n");
      }
    }
    if (interrupted && !cancel_sent) {
      flux_job_cancel(engine, job, NULL);
      cancel_sent = 1;
    }
    int32_t state = -1;
    FluxResult r = flux_job_wait(engine, job, 50, &state);
    if (r == FLUX_RESULT_OK) {
      /* Print what arrived with the end. */
      while (flux_engine_poll_event(engine, &ev) == FLUX_RESULT_OK) {
      }
      return state;
    }
    if (r != FLUX_RESULT_TIMEOUT) return -1;
    sleep_ms(1);
  }
}

static unsigned char *read_rgb(const char *path, size_t n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  unsigned char *buf = malloc(n);
  size_t got = buf ? fread(buf, 1, n, f) : 0;
  fclose(f);
  if (got != n) {
    free(buf);
    return NULL;
  }
  return buf;
}

int main(int argc, char **argv) {
  if (argc < 5 || (strcmp(argv[1], "generate") != 0 && strcmp(argv[1], "edit") != 0)) {
    fprintf(stderr,
            "usage: flux-c generate MODEL_DIR PROMPT OUT.png [WIDTH HEIGHT STEPS SEED]\n"
            "       flux-c edit MODEL_DIR PROMPT IN.rgb IN_WIDTH IN_HEIGHT OUT.png [STEPS SEED]\n");
    return 2;
  }
  signal(SIGINT, on_sigint);
  printf("Flux Engine %s (ABI %u)\n", flux_version(), flux_abi_version());

  FluxEngineDesc desc;
  flux_engine_desc_init(&desc);
  FluxEngine *engine = NULL;
  FluxResult r = flux_engine_create(&desc, &engine);
  if (r != FLUX_RESULT_OK) return fail("creating the engine", r);

  FluxModelDesc model;
  flux_model_desc_init(&model);
  model.folder = argv[2];
  FluxJob job;
  r = flux_engine_load_model(engine, &model, &job);
  if (r != FLUX_RESULT_OK) return fail("loading the model", r);
  if (follow(engine, job) != FLUX_JOB_STATE_SUCCEEDED) return fail("loading the model", flux_job_error(engine, job));

  /* One request describes every kind of job: the images added to it choose the kind. Settings
   * never set keep their defaults (the model variant's steps and guidance). */
  FluxRequest *request = NULL;
  r = flux_request_create(&request);
  if (r != FLUX_RESULT_OK) return fail("creating the request", r);
  r = flux_request_set_prompt(request, argv[3]);
  const char *out;
  unsigned char *pixels = NULL;
  if (strcmp(argv[1], "generate") == 0) {
    out = argv[4];
    if (r == FLUX_RESULT_OK && argc > 6) r = flux_request_set_size(request, (uint32_t)atoi(argv[5]), (uint32_t)atoi(argv[6]));
    if (r == FLUX_RESULT_OK && argc > 7) r = flux_request_set_steps(request, (uint32_t)atoi(argv[7]));
    if (r == FLUX_RESULT_OK && argc > 8) r = flux_request_set_seed(request, strtoull(argv[8], NULL, 10));
  } else {
    if (argc < 8) return 2;
    uint32_t w = (uint32_t)atoi(argv[5]), h = (uint32_t)atoi(argv[6]);
    pixels = read_rgb(argv[4], (size_t)w * h * 3);
    if (!pixels) {
      fprintf(stderr, "flux-c: cannot read %ux%u RGB pixels from %s\n", w, h, argv[4]);
      return 1;
    }
    out = argv[7];
    FluxImageDesc layout;
    flux_image_desc_init(&layout);
    layout.width = w;
    layout.height = h;
    layout.format = FLUX_PIXEL_FORMAT_RGB8;
    layout.row_pitch = (uint64_t)w * 3;
    FluxImage *image = NULL;
    if (r == FLUX_RESULT_OK) r = flux_image_create_host(&layout, pixels, (size_t)w * h * 3, &image);
    /* The request copies the pixels: the image can go right after. */
    if (r == FLUX_RESULT_OK) r = flux_request_add_reference(request, image, 0);
    flux_image_destroy(image);
    if (r == FLUX_RESULT_OK && argc > 8) r = flux_request_set_steps(request, (uint32_t)atoi(argv[8]));
    if (r == FLUX_RESULT_OK && argc > 9) r = flux_request_set_seed(request, strtoull(argv[9], NULL, 10));
  }
  if (r != FLUX_RESULT_OK) return fail("describing the job", r);
  r = flux_engine_submit(engine, request, &job);
  flux_request_destroy(request);
  if (r != FLUX_RESULT_OK) return fail("submitting the job", r);
  int32_t state = follow(engine, job);
  int status = 0;
  if (state == FLUX_JOB_STATE_SUCCEEDED) {
    r = flux_job_save_image(engine, job, out);
    if (r != FLUX_RESULT_OK) status = fail("saving the image", r);
    else printf("wrote %s\n", out);
  } else {
    status = state == FLUX_JOB_STATE_CANCELLED ? 130 : fail("the job", flux_job_error(engine, job));
  }
  free(pixels);
  flux_engine_destroy(engine);
  return status;
}
