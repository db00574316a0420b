/*
 * Flux Engine for Godot 3: a GDNative library (NativeScript class "FluxEngine", a Reference) over
 * the SDK's C ABI. A script creates one, opens a model, submits jobs and polls them from
 * _process: the engine computes on its own worker thread, so the game loop never waits.
 *
 *   open(model_folder) -> int               FluxResult (0: OK); the model loads on the worker
 *   generate(prompt, w, h, steps, seed, t5) -> int   job id, 0 on error (see last_error())
 *   edit(prompt, rgba, w, h, steps, seed, t5) -> int a Kontext edit of RGBA8 pixels
 *   status(job) -> [state, step, total]     FluxJobState (0 queued, 1 running, 2 succeeded,
 *                                           3 failed, 4 cancelled)
 *   image(job) -> PoolByteArray             the finished job's pixels, RGBA8, top row first
 *   image_size(job) -> Vector2
 *   cancel(job), release(job)
 *   last_error() -> String                  the last failure's sentence (a job's error when a
 *                                           status call finds it failed)
 *
 * Built by samples/godot/build.sh against the GDNative headers of Godot 3.x (core API 1.0).
 */

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <gdnative_api_struct.gen.h>

#include "flux_engine.h"

static const godot_gdnative_core_api_struct *api = NULL;
static const godot_gdnative_ext_nativescript_api_struct *nativescript = NULL;

typedef struct {
  FluxEngine *engine;
  FluxJob load; /* the model's load job (a failed load is why later jobs fail) */
  char error[512];
} Flux;

/* ---- helpers */

static void keep_error(Flux *flux, const char *what) {
  const char *message = flux_last_error_message();
  snprintf(flux->error, sizeof flux->error, "%s: %s", what, message ? message : "(no message)");
}

static godot_variant int_variant(int64_t value) {
  godot_variant v;
  api->godot_variant_new_int(&v, value);
  return v;
}

/* The UTF-8 bytes of a String argument, in `out` (cut to its size). */
static void string_arg(godot_variant *arg, char *out, size_t size) {
  godot_string s = api->godot_variant_as_string(arg);
  godot_char_string utf8 = api->godot_string_utf8(&s);
  snprintf(out, size, "%s", api->godot_char_string_get_data(&utf8));
  api->godot_char_string_destroy(&utf8);
  api->godot_string_destroy(&s);
}

static int64_t int_arg(godot_variant **args, int count, int index) {
  return index < count ? api->godot_variant_as_int(args[index]) : 0;
}

/* A request with the settings every job takes: prompt, size, steps, seed, T5 tokens. */
static FluxRequest *request_from(Flux *flux, int count, godot_variant **args, int first) {
  char prompt[2048];
  FluxRequest *request = NULL;
  if (count < first + 5) {
    snprintf(flux->error, sizeof flux->error, "expected %d arguments, got %d", first + 5, count);
    return NULL;
  }
  string_arg(args[0], prompt, sizeof prompt);
  if (flux_request_create(&request) != FLUX_RESULT_OK ||
      flux_request_set_prompt(request, prompt) != FLUX_RESULT_OK ||
      flux_request_set_size(request, (uint32_t)int_arg(args, count, first),
                            (uint32_t)int_arg(args, count, first + 1)) != FLUX_RESULT_OK ||
      flux_request_set_steps(request, (uint32_t)int_arg(args, count, first + 2)) != FLUX_RESULT_OK ||
      flux_request_set_seed(request, (uint64_t)int_arg(args, count, first + 3)) != FLUX_RESULT_OK ||
      flux_request_set_t5_length(request, (uint32_t)int_arg(args, count, first + 4)) != FLUX_RESULT_OK) {
    keep_error(flux, "request");
    flux_request_destroy(request);
    return NULL;
  }
  return request;
}

static godot_variant submit(Flux *flux, FluxRequest *request) {
  FluxJob job = 0;
  if (request != NULL && flux_engine_submit(flux->engine, request, &job) != FLUX_RESULT_OK) {
    keep_error(flux, "submit");
    job = 0;
  }
  flux_request_destroy(request);
  return int_variant((int64_t)job);
}

/* ---- methods */

static godot_variant flux_open(godot_object *self, void *data, void *user, int count, godot_variant **args) {
  Flux *flux = user;
  char folder[4096];
  FluxEngineDesc desc;
  FluxModelDesc model;
  FluxResult r;
  (void)self, (void)data;
  if (count < 1) return int_variant(FLUX_RESULT_INVALID_ARGUMENT);
  string_arg(args[0], folder, sizeof folder);
  if (flux->engine == NULL) {
    flux_engine_desc_init(&desc);
    if ((r = flux_engine_create(&desc, &flux->engine)) != FLUX_RESULT_OK) {
      keep_error(flux, "engine");
      return int_variant(r);
    }
  }
  flux_model_desc_init(&model);
  model.folder = folder;
  if (flux->load != 0) flux_job_release(flux->engine, flux->load);
  flux->load = 0;
  if ((r = flux_engine_load_model(flux->engine, &model, &flux->load)) != FLUX_RESULT_OK) {
    keep_error(flux, "model");
    return int_variant(r);
  }
  return int_variant(FLUX_RESULT_OK);
}

static godot_variant flux_generate(godot_object *self, void *data, void *user, int count, godot_variant **args) {
  (void)self, (void)data;
  return submit(user, request_from(user, count, args, 1));
}

static godot_variant flux_edit(godot_object *self, void *data, void *user, int count, godot_variant **args) {
  Flux *flux = user;
  FluxRequest *request = request_from(flux, count, args, 2);
  godot_pool_byte_array pixels;
  godot_pool_byte_array_read_access *read;
  FluxImageDesc desc;
  FluxImage *image = NULL;
  (void)self, (void)data;
  if (request == NULL) return int_variant(0);
  pixels = api->godot_variant_as_pool_byte_array(args[1]);
  read = api->godot_pool_byte_array_read(&pixels);
  flux_image_desc_init(&desc);
  desc.width = (uint32_t)int_arg(args, count, 2);
  desc.height = (uint32_t)int_arg(args, count, 3);
  desc.format = FLUX_PIXEL_FORMAT_RGBA8;
  desc.row_pitch = (uint64_t)desc.width * 4;
  /* The library checks the size against width × height × 4 and copies the pixels when the
     image is added to the request. */
  if (flux_image_create_host(&desc, (void *)api->godot_pool_byte_array_read_access_ptr(read),
                             (size_t)api->godot_pool_byte_array_size(&pixels), &image) != FLUX_RESULT_OK ||
      flux_request_add_reference(request, image, 0) != FLUX_RESULT_OK ||
      flux_request_set_reference_snap(request, false) != FLUX_RESULT_OK) {
    keep_error(flux, "edit");
    flux_request_destroy(request);
    request = NULL;
  }
  flux_image_destroy(image);
  api->godot_pool_byte_array_read_access_destroy(read);
  api->godot_pool_byte_array_destroy(&pixels);
  return submit(flux, request);
}

static godot_variant flux_status(godot_object *self, void *data, void *user, int count, godot_variant **args) {
  Flux *flux = user;
  FluxJobStatus status;
  godot_array out;
  godot_variant v;
  int64_t fields[3] = {FLUX_JOB_STATE_FAILED, 0, 0};
  (void)self, (void)data;
  memset(&status, 0, sizeof status);
  status.struct_size = sizeof status;
  if (flux_job_status(flux->engine, (FluxJob)int_arg(args, count, 0), &status) == FLUX_RESULT_OK) {
    fields[0] = status.state, fields[1] = status.step, fields[2] = status.total;
    if (status.state == FLUX_JOB_STATE_FAILED) {
      if (flux->load != 0 && flux_job_error(flux->engine, flux->load) != FLUX_RESULT_OK)
        keep_error(flux, "loading the model");
      else if (flux_job_error(flux->engine, (FluxJob)int_arg(args, count, 0)) != FLUX_RESULT_OK)
        keep_error(flux, "job");
    }
  } else {
    keep_error(flux, "status");
  }
  api->godot_array_new(&out);
  for (int i = 0; i < 3; i++) {
    v = int_variant(fields[i]);
    api->godot_array_append(&out, &v);
    api->godot_variant_destroy(&v);
  }
  api->godot_variant_new_array(&v, &out);
  api->godot_array_destroy(&out);
  return v;
}

static godot_variant flux_image_size_of(godot_object *self, void *data, void *user, int count, godot_variant **args) {
  Flux *flux = user;
  uint32_t width = 0, height = 0;
  godot_vector2 size;
  godot_variant v;
  (void)self, (void)data;
  if (flux_job_image_size(flux->engine, (FluxJob)int_arg(args, count, 0), &width, &height) != FLUX_RESULT_OK)
    keep_error(flux, "image size");
  api->godot_vector2_new(&size, (godot_real)width, (godot_real)height);
  api->godot_variant_new_vector2(&v, &size);
  return v;
}

static godot_variant flux_image(godot_object *self, void *data, void *user, int count, godot_variant **args) {
  Flux *flux = user;
  FluxJob job = (FluxJob)int_arg(args, count, 0);
  uint32_t width = 0, height = 0;
  godot_pool_byte_array pixels;
  godot_pool_byte_array_write_access *write;
  FluxImageDesc desc;
  FluxImage *image = NULL;
  godot_variant v;
  (void)self, (void)data;
  api->godot_pool_byte_array_new(&pixels);
  if (flux_job_image_size(flux->engine, job, &width, &height) == FLUX_RESULT_OK) {
    api->godot_pool_byte_array_resize(&pixels, (godot_int)width * height * 4);
    write = api->godot_pool_byte_array_write(&pixels);
    flux_image_desc_init(&desc);
    desc.width = width, desc.height = height, desc.format = FLUX_PIXEL_FORMAT_RGBA8;
    desc.row_pitch = (uint64_t)width * 4;
    if (flux_image_create_host(&desc, api->godot_pool_byte_array_write_access_ptr(write),
                               (size_t)width * height * 4, &image) != FLUX_RESULT_OK ||
        flux_job_write_image(flux->engine, job, image, 0) != FLUX_RESULT_OK) {
      keep_error(flux, "image");
      api->godot_pool_byte_array_resize(&pixels, 0);
    }
    flux_image_destroy(image);
    api->godot_pool_byte_array_write_access_destroy(write);
  } else {
    keep_error(flux, "image");
  }
  api->godot_variant_new_pool_byte_array(&v, &pixels);
  api->godot_pool_byte_array_destroy(&pixels);
  return v;
}

static godot_variant flux_cancel(godot_object *self, void *data, void *user, int count, godot_variant **args) {
  Flux *flux = user;
  int32_t outcome = 0;
  (void)self, (void)data;
  return int_variant(flux_job_cancel(flux->engine, (FluxJob)int_arg(args, count, 0), &outcome));
}

static godot_variant flux_release(godot_object *self, void *data, void *user, int count, godot_variant **args) {
  Flux *flux = user;
  (void)self, (void)data;
  return int_variant(flux_job_release(flux->engine, (FluxJob)int_arg(args, count, 0)));
}

static godot_variant flux_last_error(godot_object *self, void *data, void *user, int count, godot_variant **args) {
  Flux *flux = user;
  godot_string s;
  godot_variant v;
  (void)self, (void)data, (void)count, (void)args;
  s = api->godot_string_chars_to_utf8(flux->error);
  api->godot_variant_new_string(&v, &s);
  api->godot_string_destroy(&s);
  return v;
}

/* ---- the class */

static void *flux_new(godot_object *self, void *data) {
  Flux *flux = api->godot_alloc(sizeof(Flux));
  (void)self, (void)data;
  memset(flux, 0, sizeof *flux);
  return flux;
}

static void flux_delete(godot_object *self, void *data, void *user) {
  Flux *flux = user;
  (void)self, (void)data;
  flux_engine_destroy(flux->engine); /* cancels running jobs, joins the worker */
  api->godot_free(flux);
}

void GDN_EXPORT godot_gdnative_init(godot_gdnative_init_options *options) {
  api = options->api_struct;
  for (unsigned i = 0; i < api->num_extensions; i++)
    if (api->extensions[i]->type == GDNATIVE_EXT_NATIVESCRIPT)
      nativescript = (const godot_gdnative_ext_nativescript_api_struct *)api->extensions[i];
}

void GDN_EXPORT godot_gdnative_terminate(godot_gdnative_terminate_options *options) {
  (void)options;
  api = NULL;
  nativescript = NULL;
}

void GDN_EXPORT godot_nativescript_init(void *handle) {
  static const struct {
    const char *name;
    godot_variant (*method)(godot_object *, void *, void *, int, godot_variant **);
  } methods[] = {
      {"open", flux_open},       {"generate", flux_generate}, {"edit", flux_edit},
      {"status", flux_status},   {"image", flux_image},       {"image_size", flux_image_size_of},
      {"cancel", flux_cancel},   {"release", flux_release},   {"last_error", flux_last_error},
  };
  godot_instance_create_func create = {flux_new, NULL, NULL};
  godot_instance_destroy_func destroy = {flux_delete, NULL, NULL};
  godot_method_attributes attributes = {GODOT_METHOD_RPC_MODE_DISABLED};
  nativescript->godot_nativescript_register_class(handle, "FluxEngine", "Reference", create, destroy);
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
    godot_instance_method method = {methods[i].method, NULL, NULL};
    nativescript->godot_nativescript_register_method(handle, "FluxEngine", methods[i].name, attributes, method);
  }
}
