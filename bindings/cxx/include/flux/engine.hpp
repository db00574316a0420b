// Flux Engine C++17 API: RAII engine and jobs over the engine runtime (via the cxx bridge).
// Errors are thrown as rust::Error (a std::exception) carrying the engine's message.
//
//   flux::Engine engine;
//   engine.load_model("models/flux1-schnell").wait();
//   flux::Job job = engine.generate({"a lighthouse at dusk", 1024, 1024, /*seed*/ 42});
//   if (job.wait() == flux::JobState::Succeeded) flux::Image img = job.image();
//
// Engine and Job methods may be called from any thread. A Job releases its handle (cancelling
// the job if it is still queued or running) when destroyed; it must not outlive its Engine.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "flux-cxx/src/lib.rs.h"

namespace flux {

/// Where a job is; the last three are terminal.
enum class JobState : int { Queued = 0, Running = 1, Succeeded = 2, Failed = 3, Cancelled = 4 };

/// An RGB8 image, rows top to bottom, tightly packed.
struct Image {
  uint32_t width = 0;
  uint32_t height = 0;
  std::vector<uint8_t> rgb;
};

/// A text-to-image request; 0 / negative fields take the model's defaults.
struct TextToImage {
  std::string prompt;
  uint32_t width = 1024;
  uint32_t height = 1024;
  uint64_t seed = 0;
  uint32_t steps = 0;
  float guidance = -1.0f;
  uint32_t t5_len = 0;
  int priority = 0;
};

/// An event polled from the engine (`kind` as FluxEventType in flux_engine.h).
using Event = ffi::Event;

/// A submitted job. Move-only; releases the job when destroyed.
class Job {
 public:
  Job(const ffi::Engine &engine, uint64_t id) : engine_(&engine), id_(id) {}
  Job(Job &&other) noexcept : engine_(other.engine_), id_(std::exchange(other.id_, 0)) {}
  Job &operator=(Job &&other) noexcept {
    if (this != &other) {
      reset();
      engine_ = other.engine_;
      id_ = std::exchange(other.id_, 0);
    }
    return *this;
  }
  Job(const Job &) = delete;
  Job &operator=(const Job &) = delete;
  ~Job() { reset(); }

  uint64_t id() const { return id_; }
  /// Blocks until the job ends; throws if `timeout` passes first.
  JobState wait(std::chrono::milliseconds timeout = std::chrono::minutes(10)) const {
    return static_cast<JobState>(engine_->wait(id_, static_cast<uint32_t>(timeout.count())));
  }
  /// Cancels: a queued job never starts, a running one stops within a step.
  void cancel() const { engine_->cancel(id_); }
  JobState state() const { return static_cast<JobState>(engine_->state(id_)); }
  /// The failure message of a failed job (empty otherwise).
  std::string error() const { return std::string(engine_->error(id_)); }
  /// A copy of the finished job's image.
  Image image() const {
    ffi::Image img = engine_->image(id_);
    return Image{img.width, img.height, std::vector<uint8_t>(img.rgb.begin(), img.rgb.end())};
  }

 private:
  void reset() noexcept {
    if (id_ != 0) {
      try {
        engine_->release(id_);
      } catch (...) {
      }
      id_ = 0;
    }
  }
  const ffi::Engine *engine_;
  uint64_t id_;
};

/// An engine with its worker thread; destroying it cancels its jobs and joins the worker.
class Engine {
 public:
  /// `memory_budget`: bytes the engine may keep; `FLUX_MEMORY_BUDGET_AUTO` (the default): the
  /// memory available when a model loads.
  explicit Engine(uint32_t preview_every = 0, uint64_t memory_budget = UINT64_MAX)
      : inner_(ffi::new_engine(preview_every, memory_budget)) {}

  /// Loads the model in `folder` (diffusers or BFL/ComfyUI single files).
  Job load_model(const std::string &folder) { return Job(*inner_, inner_->load_model(folder)); }

  Job generate(const TextToImage &r) {
    ffi::TextToImageRequest req{r.prompt, r.width, r.height, r.seed, r.steps, r.guidance, r.t5_len, r.priority};
    return Job(*inner_, inner_->submit_text_to_image(req));
  }

  /// A Kontext edit of `image` (snapped to the closest Kontext resolution).
  Job edit(const std::string &prompt, const Image &image, uint32_t steps = 0, uint64_t seed = 0, int priority = 0) {
    rust::Vec<uint8_t> rgb;
    rgb.reserve(image.rgb.size());
    for (uint8_t v : image.rgb) rgb.push_back(v);
    ffi::Image img{image.width, image.height, std::move(rgb)};
    return Job(*inner_, inner_->submit_edit(prompt, img, steps, seed, priority));
  }

  /// Whether `job` is still held by the engine (not released).
  bool knows(uint64_t job) const {
    try {
      inner_->state(job);
      return true;
    } catch (const std::exception &) {
      return false;
    }
  }

  /// The next event, without blocking.
  std::optional<Event> poll_event() {
    Event e{0, 0, 0, 0, rust::String()};
    if (inner_->poll_event(e)) return e;
    return std::nullopt;
  }

 private:
  rust::Box<ffi::Engine> inner_;
};

}  // namespace flux
