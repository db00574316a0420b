// The C++ API (flux/engine.hpp) end to end on the tiny model: load, text-to-image, results in
// every host format, LoRAs, a Kontext edit of two references, image-to-image, events through a
// callback (one of which throws) and by polling, errors as exceptions, cancel, priorities, wait
// timeouts, memory budget and residency plans, unload, RAII of every handle, GPU images refused by
// a CPU engine. Usage: engine_test MODEL_DIR OUT_DIR LORA_DIR (LORA_DIR: tests/fixtures/flux-lora)
// Writes generated.rgb, lora.rgb, two-loras.rgb, edited.rgb and img2img.rgb (RGB8) into OUT_DIR
// for ffi/tests/cpp_api.rs to compare with the Rust API, and prints "cpp: ok".
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "flux/engine.hpp"

namespace {

struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

#define EXPECT(c)                                                                           \
  do {                                                                                      \
    if (!(c)) throw Failure(std::string(__FILE__) + ":" + std::to_string(__LINE__) + ": expected " #c); \
  } while (0)

/// The result code `f` throws as a flux::Error (OK when it throws nothing), and its message.
template <class F>
FluxResult thrown_by(F &&f, std::string *message = nullptr) {
  try {
    f();
  } catch (const flux::Error &e) {
    if (message != nullptr) *message = e.what();
    return e.result();
  }
  return FLUX_RESULT_OK;
}

bool contains(const std::string &s, const char *part) { return s.find(part) != std::string::npos; }

void write_file(const std::string &path, const std::vector<uint8_t> &bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char *>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  EXPECT(out.good());
}

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

float half_to_float(uint16_t h) {
  const int exponent = (h >> 10) & 31, mantissa = h & 1023;
  const float magnitude = exponent == 0 ? std::ldexp(float(mantissa), -24)
                                        : std::ldexp(1.0f + float(mantissa) / 1024.0f, exponent - 15);
  return (h & 0x8000) ? -magnitude : magnitude;
}

/// Every event the callback saw (it runs on the worker and on the submitting thread).
struct Recorder {
  std::mutex mutex;
  std::vector<flux::Event> events;
  std::atomic<bool> throw_at_next_start{true};
  std::atomic<bool> try_wait_at_next_progress{true};
  std::atomic<FluxEngine *> engine{nullptr};
  std::atomic<int> wait_in_callback{-1};

  void on_event(const flux::Event &e) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      events.push_back(e);
    }
    FluxEngine *handle = engine.load();
    if (e.kind == flux::EventType::Progress && handle != nullptr && try_wait_at_next_progress.exchange(false)) {
      // Waiting inside the callback would wait for the callback itself: refused.
      flux::Job view(handle, e.job);
      wait_in_callback = thrown_by([&] { view.wait(std::chrono::milliseconds(10)); });
      view.detach();
    }
    if (e.kind == flux::EventType::Started && throw_at_next_start.exchange(false))
      throw std::runtime_error("thrown in the callback");
  }
  std::vector<flux::Event> of(FluxJob job) {
    std::lock_guard<std::mutex> lock(mutex);
    std::vector<flux::Event> out;
    std::copy_if(events.begin(), events.end(), std::back_inserter(out), [&](const flux::Event &e) { return e.job == job; });
    return out;
  }
  size_t count() {
    std::lock_guard<std::mutex> lock(mutex);
    return events.size();
  }
  /// The kind of the last event of `job` (Log, which jobs never get, if none).
  flux::EventType last_kind(FluxJob job) {
    const std::vector<flux::Event> e = of(job);
    return e.empty() ? flux::EventType::Log : e.back().kind;
  }
  /// Index of the first event of `kind` for `job` (events.size() if none).
  size_t index_of(FluxJob job, flux::EventType kind) {
    std::lock_guard<std::mutex> lock(mutex);
    size_t i = 0;
    while (i < events.size() && !(events[i].job == job && events[i].kind == kind)) i++;
    return i;
  }
};

void check_formats(const flux::Job &job, const flux::HostImage &rgb) {
  const uint32_t w = rgb.width(), h = rgb.height();
  const uint64_t pitch = uint64_t(w) * 4 + 12;
  flux::HostImage rgba(flux::ImageLayout(w, h, flux::PixelFormat::Rgba8, pitch));
  job.write_image(rgba);
  const flux::HostImage bgra = job.image(flux::PixelFormat::Bgra8, /*bottom_up=*/true);
  const flux::HostImage f32 = job.image(flux::PixelFormat::Rgba32F);
  const flux::HostImage f16 = job.image(flux::PixelFormat::Rgba16F);
  EXPECT(rgba.size() == pitch * h && bgra.size() == size_t(w) * h * 4);
  EXPECT(f32.size() == size_t(w) * h * 16 && f16.size() == size_t(w) * h * 8);
  for (uint32_t y = 0; y < h; y++)
    for (uint32_t x = 0; x < w; x++) {
      const size_t flipped = (size_t(h - 1 - y) * w + x) * 4, pixel = size_t(y) * w + x;
      EXPECT(rgba.data()[y * pitch + x * 4 + 3] == 255 && bgra.data()[flipped + 3] == 255);
      for (int c = 0; c < 3; c++) {
        const uint8_t v = rgb.data()[pixel * 3 + c];
        EXPECT(rgba.data()[y * pitch + x * 4 + c] == v);
        EXPECT(bgra.data()[flipped + 2 - c] == v);
        float f;
        std::memcpy(&f, f32.data() + pixel * 16 + c * 4, 4);
        EXPECT(f == v / 255.0f);
        uint16_t half;
        std::memcpy(&half, f16.data() + pixel * 8 + c * 2, 2);
        EXPECT(std::fabs(half_to_float(half) - v / 255.0f) <= 1.0f / 1024);
      }
    }
}

int run(const std::string &model, const std::string &out, const std::string &loras) {
  EXPECT(flux::Engine::abi_version() == FLUX_ABI_VERSION && !flux::Engine::version().empty());
  Recorder rec;
  flux::Job survivor;  // outlives the engine below
  size_t events_at_destroy = 0;
  {
    flux::Engine engine(flux::EngineOptions().preview_every(1).on_event([&](const flux::Event &e) { rec.on_event(e); }));

    // Loading; the callback's exception (at the load's STARTED) is kept, not thrown into C.
    {
      flux::Job load = engine.load_model(model);
      EXPECT(load.wait() == flux::JobState::Succeeded);
      EXPECT(load.error().empty());
    }
    std::exception_ptr thrown = engine.take_callback_exception();
    EXPECT(thrown != nullptr);
    try {
      std::rethrow_exception(thrown);
    } catch (const std::runtime_error &e) {
      EXPECT(std::string(e.what()) == "thrown in the callback");
    }
    EXPECT(engine.take_callback_exception() == nullptr);
    const flux::Residency loaded = engine.residency();
    EXPECT(loaded.budget > 0 && loaded.transformer > 0 && loaded.autoencoder > 0);
    EXPECT(loaded.plan.stream_window() == 0 && !loaded.plan.tiled_vae());
    rec.engine = engine.handle();

    // Text-to-image: the pixels the test compares with the Rust API, and the job's events.
    flux::Request req("a red lighthouse at dusk");
    req.size(64, 48).seed(7).steps(3).t5_length(32);
    flux::Job job = engine.submit(req);
    EXPECT(job.wait() == flux::JobState::Succeeded);
    const flux::HostImage rgb = job.image();
    EXPECT(rgb.width() == 64 && rgb.height() == 48 && rgb.size() == 64 * 48 * 3);
    write_file(out + "/generated.rgb", rgb.bytes());
    const flux::JobStatus st = job.status();
    EXPECT(st.state == flux::JobState::Succeeded && st.step == 3 && st.total == 3 && st.has_result);
    EXPECT(job.image_size() == std::make_pair(64u, 48u));
    EXPECT(rec.wait_in_callback == FLUX_RESULT_WRONG_THREAD);
    using K = flux::EventType;
    const std::vector<K> want = {K::Queued, K::Started, K::Progress, K::Preview,
                                 K::Progress, K::Preview, K::Progress, K::Finished};
    const std::vector<flux::Event> events = rec.of(job.id());
    EXPECT(events.size() == want.size());
    for (size_t i = 0; i < want.size(); i++) EXPECT(events[i].kind == want[i]);
    EXPECT(events[2].step == 1 && events[2].total == 3);
    EXPECT(events[3].preview_width > 0 && events[3].preview_rgb.size() == size_t(events[3].preview_width) * events[3].preview_height * 3);
    EXPECT(events.back().denoise_ms > 0.0);
    EXPECT(!engine.poll_event());  // a callback engine queues nothing

    // Results in every host format; errors writing them.
    check_formats(job, rgb);
    job.save_image(out + "/generated.png");
    {
      std::ifstream png(out + "/generated.png", std::ios::binary);
      char magic[4] = {};
      png.read(magic, 4);
      EXPECT(std::string(magic + 1, 3) == "PNG");
    }
    flux::HostImage wrong_size(32, 32);
    EXPECT(thrown_by([&] { job.write_image(wrong_size); }) != FLUX_RESULT_OK);
    const std::vector<uint8_t> constant(rgb.bytes());
    const flux::Image read_only = flux::Image::host(flux::ImageLayout(64, 48, flux::PixelFormat::Rgb8), constant.data(), constant.size());
    EXPECT(read_only.read_only() && thrown_by([&] { job.write_image(read_only); }) == FLUX_RESULT_INVALID_ARGUMENT);
    std::string message;
    EXPECT(thrown_by([&] { flux::Image::host(flux::ImageLayout(64, 48), constant.data(), 100); }, &message) ==
           FLUX_RESULT_BUFFER_TOO_SMALL);
    EXPECT(!message.empty());

    // LoRAs: a LoRA job differs from the plain one, two LoRAs from one, and clearing them gives
    // the plain pixels again, exactly (the model is restored, not reloaded).
    {
      const std::string kohya = loras + "/lora_a_kohya.safetensors";
      flux::Request lora_req("a red lighthouse at dusk");
      EXPECT(&lora_req.size(64, 48).seed(7).steps(3).t5_length(32).add_lora(kohya) == &lora_req);
      flux::Job with_lora = engine.submit(lora_req);
      EXPECT(with_lora.wait() == flux::JobState::Succeeded);
      const std::vector<uint8_t> one = with_lora.image().bytes();
      EXPECT(one.size() == rgb.size() && one != rgb.bytes());
      write_file(out + "/lora.rgb", one);
      lora_req.add_lora(loras + "/lora_d_kohya_single.safetensors", 0.7f);
      flux::Job with_two = engine.submit(lora_req);
      EXPECT(with_two.wait() == flux::JobState::Succeeded);
      const std::vector<uint8_t> two = with_two.image().bytes();
      EXPECT(two != one && two != rgb.bytes());
      write_file(out + "/two-loras.rgb", two);
      EXPECT(&lora_req.clear_loras() == &lora_req);
      flux::Job cleared = engine.submit(lora_req);
      EXPECT(cleared.wait() == flux::JobState::Succeeded);
      EXPECT(cleared.image().bytes() == rgb.bytes());
      // The same LoRA again (the file is kept): the same pixels.
      flux::Job again = engine.submit(lora_req.add_lora(kohya, 1.0f));
      EXPECT(again.wait() == flux::JobState::Succeeded && again.image().bytes() == one);

      // The library checks the path and the strength when they are added.
      lora_req.clear_loras();
      EXPECT(thrown_by([&] { lora_req.add_lora(loras + "/no-such-lora.safetensors"); }, &message) ==
             FLUX_RESULT_INVALID_ARGUMENT);
      EXPECT(contains(message, "no-such-lora.safetensors") && contains(message, "does not exist"));
      EXPECT(thrown_by([&] { lora_req.add_lora(kohya, std::nanf("")); }, &message) == FLUX_RESULT_INVALID_ARGUMENT);
      EXPECT(contains(message, "not a finite number"));
      EXPECT(thrown_by([&] { lora_req.add_lora(kohya, INFINITY); }) == FLUX_RESULT_INVALID_ARGUMENT);
      EXPECT(thrown_by([&] { lora_req.add_lora(std::string("a\0b", 3)); }) == FLUX_RESULT_INVALID_ARGUMENT);
      for (int i = 0; i < 16; i++) lora_req.add_lora(kohya, -0.5f * float(i));
      EXPECT(thrown_by([&] { lora_req.add_lora(kohya); }, &message) == FLUX_RESULT_INVALID_ARGUMENT);
      EXPECT(contains(message, "at most 16"));

      // A file that is not a LoRA (merged model weights) fails its job, naming the file; the
      // engine goes on with the model as loaded.
      lora_req.clear_loras().add_lora(loras + "/merged_kohya_a_bfl.safetensors");
      flux::Job not_lora = engine.submit(lora_req);
      EXPECT(not_lora.wait() == flux::JobState::Failed);
      EXPECT(contains(not_lora.error(), "merged_kohya_a_bfl") && contains(not_lora.error(), "LoRA"));
      EXPECT(thrown_by([&] { not_lora.image(); }) == FLUX_RESULT_NOT_READY);
      flux::Job after = engine.submit(lora_req.clear_loras());
      EXPECT(after.wait() == flux::JobState::Succeeded && after.image().bytes() == rgb.bytes());
    }

    // True CFG: scale 1 is off, 4 changes the image; a Fill input on this plain model fails its
    // job alone.
    {
      flux::Request cfg("a red lighthouse at dusk");
      cfg.size(64, 48).seed(7).steps(3).t5_length(32);
      EXPECT(&cfg.negative_prompt("fog", 1.0f) == &cfg);
      flux::Job off = engine.submit(cfg);
      EXPECT(off.wait() == flux::JobState::Succeeded && off.image().bytes() == rgb.bytes());
      flux::Job guided = engine.submit(cfg.negative_prompt("fog", 4.0f));
      EXPECT(guided.wait() == flux::JobState::Succeeded && guided.image().bytes() != rgb.bytes());
      EXPECT(thrown_by([&] { cfg.negative_prompt("fog", 0.5f); }, &message) == FLUX_RESULT_INVALID_ARGUMENT);
      EXPECT(contains(message, "true CFG scale"));
      flux::Job fill = engine.submit(cfg.fill(read_only, read_only));
      EXPECT(fill.wait() == flux::JobState::Failed && contains(fill.error(), "not a FLUX.1 fill model"));
      flux::Job redux = engine.submit(cfg.clear_images().redux_image(read_only));
      EXPECT(redux.wait() == flux::JobState::Failed && contains(redux.error(), "no Redux encoder"));
      flux::Job after = engine.submit(cfg.clear_images());
      EXPECT(after.wait() == flux::JobState::Succeeded && after.image().bytes() == guided.image().bytes());
    }

    // A Kontext edit of two references: the RGB8 result and the bottom-up BGRA8 one (same pixels).
    const flux::HostImage bgra = job.image(flux::PixelFormat::Bgra8, true);
    flux::Request edit("make it night");
    edit.add_reference(rgb).add_reference(bgra).reference_snap(false).steps(2).t5_length(16);
    flux::Job edited = engine.submit(edit);
    EXPECT(edited.wait() == flux::JobState::Succeeded);
    write_file(out + "/edited.rgb", edited.image().bytes());
    edit.add_reference(rgb).add_reference(rgb);
    EXPECT(thrown_by([&] { edit.add_reference(rgb); }, &message) == FLUX_RESULT_INVALID_ARGUMENT);
    EXPECT(contains(message, "at most 4"));

    // Image-to-image from a padded RGBA8 copy; an init image excludes references.
    flux::HostImage padded(flux::ImageLayout(64, 48, flux::PixelFormat::Rgba8, 64 * 4 + 12));
    job.write_image(padded);
    flux::Request i2i("a red lighthouse at night");
    i2i.init_image(padded, 0.6f).seed(3).steps(3).t5_length(16);
    EXPECT(thrown_by([&] { i2i.add_reference(rgb); }) == FLUX_RESULT_INVALID_ARGUMENT);
    flux::Job img2img = engine.submit(i2i);
    EXPECT(img2img.wait() == flux::JobState::Succeeded);
    write_file(out + "/img2img.rgb", img2img.image().bytes());
    i2i.clear_images().add_reference(rgb);
    EXPECT(thrown_by([&] { i2i.init_image(rgb, 1.5f); }) == FLUX_RESULT_INVALID_ARGUMENT);

    // Settings are checked as they are set; submit checks the request.
    EXPECT(thrown_by([&] { req.size(70, 48); }, &message) == FLUX_RESULT_INVALID_ARGUMENT);
    EXPECT(contains(message, "multiples of 16"));
    EXPECT(thrown_by([&] { req.steps(0); }) == FLUX_RESULT_INVALID_ARGUMENT);
    EXPECT(thrown_by([&] { req.guidance(-1.0f); }) == FLUX_RESULT_INVALID_ARGUMENT);
    EXPECT(thrown_by([&] { req.prompt(std::string("a\0b", 3)); }) == FLUX_RESULT_INVALID_ARGUMENT);
    EXPECT(thrown_by([&] { engine.submit(flux::Request()); }, &message) == FLUX_RESULT_INVALID_ARGUMENT);
    EXPECT(contains(message, "prompt"));
    EXPECT(thrown_by([&] { engine.load_model(out + "/no-such-model"); }) != FLUX_RESULT_OK);

    // GPU images and the device UUID need a CUDA engine.
    EXPECT(thrown_by([&] { engine.device_uuid(); }) == FLUX_RESULT_UNSUPPORTED);
    const flux::ImageLayout gpu_layout(64, 48, flux::PixelFormat::Rgba8);
    EXPECT(thrown_by([&] { flux::Image::cuda(engine, gpu_layout, 0x10000); }) == FLUX_RESULT_UNSUPPORTED);
    flux::ExternalMemory memory;
    memory.handle = 0;  // never imported: the engine refuses first
    memory.size = gpu_layout.byte_size();
    memory.device_uuid[0] = 1;
    const flux::Semaphore semaphore{flux::SemaphoreType::TimelineFd, 0};
    EXPECT(thrown_by([&] { flux::Image::import_memory(engine, gpu_layout, memory, semaphore); }) == FLUX_RESULT_UNSUPPORTED);

    // The same request again, with streamed blocks: the same pixels.
    engine.set_memory_reserve(64u << 20);
    engine.set_memory_budget(flux::memory_budget_auto);
    engine.set_residency_plan(flux::ResidencyPlan().stream_window(1));
    {
      flux::Job again = engine.submit(req);
      EXPECT(again.wait() == flux::JobState::Succeeded);
      EXPECT(again.image().bytes() == rgb.bytes());
      EXPECT(engine.residency().plan.stream_window() == 1);
    }
    engine.set_automatic_residency_plan();

    // Cancel, timeouts and priorities: while a slow job runs, a queued one is dequeued, and of
    // two queued jobs the interactive one starts first.
    flux::Request slow("a long night");
    slow.size(256, 256).steps(500).t5_length(16);
    flux::Request small("a cat");
    small.size(16, 16).steps(1).t5_length(16);
    flux::Job running = engine.submit(slow);
    flux::Job queued = engine.submit(slow);
    flux::Job low = engine.submit(small.priority(flux::priority::batch));
    flux::Job high = engine.submit(small.priority(flux::priority::interactive));
    small.priority(flux::priority::normal);
    EXPECT(queued.wait(std::chrono::milliseconds(1)) == flux::JobState::Queued);
    while (running.status().step < 1) sleep_ms(2);
    EXPECT(running.wait(std::chrono::milliseconds(1)) == flux::JobState::Running);
    EXPECT(queued.cancel() == flux::CancelOutcome::Dequeued);
    EXPECT(running.cancel() == flux::CancelOutcome::Requested);
    EXPECT(running.wait() == flux::JobState::Cancelled && queued.wait() == flux::JobState::Cancelled);
    EXPECT(job.cancel() == flux::CancelOutcome::AlreadyFinished);
    EXPECT(thrown_by([&] { running.image(); }) == FLUX_RESULT_NOT_READY);
    EXPECT(low.wait() == flux::JobState::Succeeded && high.wait() == flux::JobState::Succeeded);
    EXPECT(rec.index_of(high.id(), K::Started) < rec.index_of(low.id(), K::Started));
    EXPECT(rec.last_kind(queued.id()) == K::Cancelled && rec.last_kind(running.id()) == K::Cancelled);

    // RAII: a destroyed Job releases its job; a released one is unknown.
    FluxJob id = 0;
    {
      flux::Job tmp = engine.submit(small);
      id = tmp.id();
      EXPECT(tmp.wait() == flux::JobState::Succeeded);
      flux::Job moved = std::move(tmp);
      EXPECT(moved.id() == id && !tmp);
    }
    flux::Job ghost(engine.handle(), id);
    EXPECT(thrown_by([&] { ghost.status(); }) == FLUX_RESULT_UNKNOWN_JOB);
    ghost.detach();
    low.release();
    EXPECT(!low && thrown_by([&] { low.release(); }) == FLUX_RESULT_OK);
    EXPECT(job.state() == flux::JobState::Succeeded);

    // Unloading: later jobs fail, saying why.
    EXPECT(engine.unload_model().wait() == flux::JobState::Succeeded);
    flux::Job no_model = engine.submit(small);
    EXPECT(no_model.wait() == flux::JobState::Failed && !no_model.error().empty());
    EXPECT(rec.last_kind(no_model.id()) == K::Failed && !rec.of(no_model.id()).back().message.empty());
    EXPECT(thrown_by([&] { no_model.image(); }) == FLUX_RESULT_NOT_READY);
    EXPECT(job.error().empty());

    // Destroying the engine with jobs in flight; the survivor outlives it.
    flux::ModelFiles files(model);
    files.priority = flux::priority::interactive;
    EXPECT(engine.load_model(files).wait() == flux::JobState::Succeeded);
    survivor = engine.submit(slow);
    engine.submit(slow).detach();
    while (survivor.status().step < 1) sleep_ms(2);
    EXPECT(engine.take_callback_exception() == nullptr);
    rec.engine = nullptr;
    events_at_destroy = rec.count();
  }
  // No event after destroy returned; the survivor's engine is detected as gone.
  const size_t events_after_destroy = rec.count();
  sleep_ms(50);
  EXPECT(rec.count() == events_after_destroy && events_after_destroy >= events_at_destroy);
  EXPECT(thrown_by([&] { survivor.status(); }) == FLUX_RESULT_INVALID_HANDLE);

  // Polling: an engine without a callback, moved; explicit model files and options.
  flux::Engine first(flux::EngineOptions().log_level(flux::LogLevel::Debug).embedding_cache(2).memory_budget(flux::memory_budget_auto));
  flux::Engine polled = std::move(first);
  EXPECT(first.handle() == nullptr && polled.handle() != nullptr);
  flux::ModelFiles files(model);
  files.dtype = flux::Dtype::F32;
  files.kontext = flux::Kontext::No;
  EXPECT(polled.load_model(files).wait() == flux::JobState::Succeeded);
  flux::Job cat = polled.submit(flux::Request("a cat").size(16, 16).steps(2).t5_length(16));
  EXPECT(cat.wait() == flux::JobState::Succeeded);
  std::vector<flux::EventType> kinds;
  bool logged = false;
  while (auto e = polled.poll_event()) {
    if (e->job == cat.id()) kinds.push_back(e->kind);
    if (e->kind == flux::EventType::Log) logged = logged || !e->message.empty();
  }
  EXPECT(kinds.size() == 5 && kinds.front() == flux::EventType::Queued && kinds.back() == flux::EventType::Finished);
  EXPECT(logged);
  EXPECT(polled.take_callback_exception() == nullptr);

  std::cout << "cpp: ok\n";
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc != 4) {
    std::cerr << "usage: engine_test MODEL_DIR OUT_DIR LORA_DIR\n";
    return 2;
  }
  try {
    return run(argv[1], argv[2], argv[3]);
  } catch (const Failure &e) {
    std::cerr << e.what() << "\n";
  } catch (const flux::Error &e) {
    std::cerr << "unexpected flux::Error " << flux::result_name(e.result()) << ": " << e.what() << "\n";
  } catch (const std::exception &e) {
    std::cerr << "unexpected exception: " << e.what() << "\n";
  }
  return 1;
}
