// Flux Engine C++17 API: header-only, over the C ABI of flux_engine.h (as wasmtime.hh is over
// wasmtime.h). It adds RAII, exceptions, std::string / std::vector / std::function and nothing
// else: every method is one C call (or a few), so the C ABI's rules (threads, ownership, versioned structs)
// hold here as written in flux_engine.h, and a program mixing this API and the C API, or two
// plugins each using one of them, share the one engine implementation in the shared library.
//
//   flux::Engine engine;
//   engine.load_model("models/flux1-schnell").wait();
//   flux::Job job = engine.submit(flux::Request("a lighthouse at dusk").size(1024, 768).seed(42));
//   if (job.wait() == flux::JobState::Succeeded) {
//     flux::HostImage rgb = job.image();                          // RGB8, or any PixelFormat
//     job.save_image("lighthouse.png");
//   }
//
// - Errors throw flux::Error (a std::runtime_error) carrying the FluxResult and the library's
//   sentence (flux_last_error_message(), read on the failing call's thread). Destructors never
//   throw.
// - Engine, Request, Image and Job own their handles and are move-only. A Job releases its job
//   when destroyed (cancelling it if it still runs). A Job or Image outliving its Engine is
//   harmless: the library detects the destroyed engine and their calls throw
//   FLUX_RESULT_INVALID_HANDLE.
// - Every method may be called from any thread, as the C functions may. The event callback
//   (EngineOptions::on_event) runs on the engine's worker thread, or on the calling thread inside
//   submit, load_model, unload_model and cancel; it may run concurrently on two threads. An
//   exception it throws is caught (none may cross into C) and kept for
//   Engine::take_callback_exception().
//
// Link against the flux_engine library (shared or static) and put include/ (flux_engine.h) and
// bindings/cxx/include on the include path; no Rust toolchain is involved.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "flux_engine.h"
#include "enums.hpp"

static_assert(FLUX_ABI_VERSION == 2, "flux/engine.hpp wraps ABI 2 of flux_engine.h");

namespace flux {

// ---------------------------------------------------------------------------------------------
// Enums: generated from flux_engine.h into enums.hpp (values are the C constants), with the
// priorities and result_name(); helpers on them here.

/// The memory budget that follows the machine (see FLUX_MEMORY_BUDGET_AUTO).
constexpr uint64_t memory_budget_auto = FLUX_MEMORY_BUDGET_AUTO;

/// Bytes per pixel of a format (0 for a value this header does not know).
constexpr uint32_t bytes_per_pixel(PixelFormat format) noexcept {
  switch (format) {
    case PixelFormat::R8: return 1;
    case PixelFormat::Rgb8: return 3;
    case PixelFormat::Rgba8: return 4;
    case PixelFormat::Bgra8: return 4;
    case PixelFormat::Rgba16F: return 8;
    case PixelFormat::Rgba32F: return 16;
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Errors

/// A failed call: the FluxResult and the library's sentence (what()).
class Error : public std::runtime_error {
 public:
  Error(FluxResult result, const std::string &message)
      : std::runtime_error(message.empty() ? std::string(result_name(result)) : message), result_(result) {}
  FluxResult result() const noexcept { return result_; }

 private:
  FluxResult result_;
};

namespace detail {

/// Throws the calling thread's last error for `result` unless it is OK. Call it right after
/// the C call: the message is the thread's and the next call replaces it.
inline void check(FluxResult result) {
  if (result != FLUX_RESULT_OK) throw Error(result, flux_last_error_message());
}

/// `s` as a C string, refusing NUL bytes inside (C would cut the string there).
inline const char *c_str(const std::string &s, const char *what) {
  if (s.find('\0') != std::string::npos)
    throw Error(FLUX_RESULT_INVALID_ARGUMENT, std::string(what) + " contains a NUL byte");
  return s.c_str();
}

/// NULL for an empty string ("not given"), else as c_str.
inline const char *optional_c_str(const std::string &s, const char *what) {
  return s.empty() ? nullptr : c_str(s, what);
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Image descriptions

/// Size and layout of an image's pixels (FluxImageDesc), whatever memory holds them.
struct ImageLayout {
  uint32_t width = 0;
  uint32_t height = 0;
  PixelFormat format = PixelFormat::Rgba8;
  /// Bytes from one row to the next; 0: tightly packed (width × bytes per pixel).
  uint64_t row_pitch = 0;
  /// The first row in memory is the image's bottom row (OpenGL, Unity); host images only.
  bool bottom_up = false;

  ImageLayout() = default;
  ImageLayout(uint32_t width_, uint32_t height_, PixelFormat format_ = PixelFormat::Rgba8, uint64_t row_pitch_ = 0,
              bool bottom_up_ = false)
      : width(width_), height(height_), format(format_), row_pitch(row_pitch_), bottom_up(bottom_up_) {}

  /// The row pitch in bytes (row_pitch, or the tight one).
  uint64_t pitch() const noexcept {
    return row_pitch != 0 ? row_pitch : uint64_t(width) * bytes_per_pixel(format);
  }
  /// Bytes the rows span: (height - 1) × pitch + one row's pixels.
  uint64_t byte_size() const noexcept {
    return height == 0 ? 0 : (uint64_t(height) - 1) * pitch() + uint64_t(width) * bytes_per_pixel(format);
  }
  /// As the C struct (its fields this header does not know at their defaults).
  FluxImageDesc desc() const noexcept {
    FluxImageDesc d;
    flux_image_desc_init(&d);
    d.width = width;
    d.height = height;
    d.format = static_cast<int32_t>(format);
    d.row_pitch = pitch();
    d.bottom_up = bottom_up ? 1 : 0;
    return d;
  }
};

/// A Vulkan semaphore or D3D12 fence the engine waits for before reading an image and signals
/// after writing one (FluxSemaphore). The handle is used during the call only.
struct Semaphore {
  SemaphoreType type = SemaphoreType::OpaqueFd;
  int64_t handle = -1;

  FluxSemaphore desc() const noexcept {
    FluxSemaphore s;
    flux_semaphore_init(&s);
    s.handle_type = static_cast<int32_t>(type);
    s.handle = handle;
    return s;
  }
};

/// Vulkan or D3D12 memory to import (FluxExternalMemory). The engine imports a duplicate of an
/// fd, or uses a Win32 handle during the call only: close it whenever you like afterwards.
struct ExternalMemory {
  ExternalMemoryType type = ExternalMemoryType::OpaqueFd;
  int64_t handle = -1;
  /// The allocation's size (VkMemoryAllocateInfo::allocationSize).
  uint64_t size = 0;
  /// Bytes from the start of the memory to the first pixel.
  uint64_t offset = 0;
  /// VkPhysicalDeviceIDProperties::deviceUUID of the memory's device (Engine::device_uuid()).
  std::array<uint8_t, 16> device_uuid{};
  bool dedicated = false;

  FluxExternalMemory desc() const noexcept {
    FluxExternalMemory m;
    flux_external_memory_init(&m);
    m.handle_type = static_cast<int32_t>(type);
    m.handle = handle;
    m.size = size;
    m.offset = offset;
    std::memcpy(m.device_uuid, device_uuid.data(), sizeof m.device_uuid);
    m.dedicated = dedicated ? 1 : 0;
    return m;
  }
};

class Engine;

// ---------------------------------------------------------------------------------------------
// Image

/// A FluxImage: a layout over memory the host keeps (host memory, a CUDA pointer, imported
/// Vulkan / D3D12 memory). An input of requests (host pixels are copied when added) and the
/// destination of Job::write_image. The memory must outlive the Image. Move-only.
class Image {
 public:
  Image() noexcept = default;

  /// Host memory, read when added to a request and written by Job::write_image.
  static Image host(const ImageLayout &layout, void *data, size_t size) {
    FluxImageDesc d = layout.desc();
    FluxImage *h = nullptr;
    detail::check(flux_image_create_host(&d, data, size, &h));
    return Image(h, layout, false);
  }
  /// Read-only host memory: an input only (Job::write_image refuses it).
  static Image host(const ImageLayout &layout, const void *data, size_t size) {
    Image image = host(layout, const_cast<void *>(data), size);
    image.read_only_ = true;
    return image;
  }
  /// CUDA device memory of `engine`'s device (a CUdeviceptr to the first pixel).
  static Image cuda(const Engine &engine, const ImageLayout &layout, uint64_t device_pointer,
                    const std::optional<Semaphore> &semaphore = std::nullopt);
  /// Vulkan or D3D12 memory imported into `engine`'s CUDA context (import once, use many times).
  static Image import_memory(const Engine &engine, const ImageLayout &layout, const ExternalMemory &memory,
                             const std::optional<Semaphore> &semaphore = std::nullopt);

  /// Adopts a handle from the C API.
  Image(FluxImage *handle, const ImageLayout &layout, bool read_only) noexcept
      : handle_(handle), layout_(layout), read_only_(read_only) {}
  Image(Image &&other) noexcept
      : handle_(std::exchange(other.handle_, nullptr)), layout_(other.layout_), read_only_(other.read_only_) {}
  Image &operator=(Image &&other) noexcept {
    if (this != &other) {
      reset();
      handle_ = std::exchange(other.handle_, nullptr);
      layout_ = other.layout_;
      read_only_ = other.read_only_;
    }
    return *this;
  }
  Image(const Image &) = delete;
  Image &operator=(const Image &) = delete;
  ~Image() { reset(); }

  FluxImage *handle() const noexcept { return handle_; }
  explicit operator bool() const noexcept { return handle_ != nullptr; }
  const ImageLayout &layout() const noexcept { return layout_; }
  bool read_only() const noexcept { return read_only_; }
  /// Gives the handle up (the caller destroys it with flux_image_destroy).
  FluxImage *release() noexcept { return std::exchange(handle_, nullptr); }

 private:
  void reset() noexcept {
    if (handle_ != nullptr) flux_image_destroy(std::exchange(handle_, nullptr));
  }
  FluxImage *handle_ = nullptr;
  ImageLayout layout_;
  bool read_only_ = false;
};

/// Pixels in a std::vector with an Image over them: a result (Job::image) or an input made by
/// the program. Move-only (the vector's buffer, which the Image points into, moves with it).
class HostImage {
 public:
  HostImage() = default;
  /// Zeroed pixels, tightly packed.
  HostImage(uint32_t width, uint32_t height, PixelFormat format = PixelFormat::Rgb8, bool bottom_up = false)
      : HostImage(ImageLayout(width, height, format, 0, bottom_up)) {}
  /// Zeroed pixels laid out as `layout` says.
  explicit HostImage(const ImageLayout &layout) : layout_(layout), bytes_(checked_size(layout)) { wrap(); }
  /// Takes `bytes`, laid out as `layout` says (checked by the library).
  HostImage(const ImageLayout &layout, std::vector<uint8_t> bytes) : layout_(layout), bytes_(std::move(bytes)) {
    wrap();
  }
  HostImage(HostImage &&) noexcept = default;
  HostImage &operator=(HostImage &&) noexcept = default;

  uint32_t width() const noexcept { return layout_.width; }
  uint32_t height() const noexcept { return layout_.height; }
  PixelFormat format() const noexcept { return layout_.format; }
  const ImageLayout &layout() const noexcept { return layout_; }
  uint8_t *data() noexcept { return bytes_.data(); }
  const uint8_t *data() const noexcept { return bytes_.data(); }
  size_t size() const noexcept { return bytes_.size(); }
  const std::vector<uint8_t> &bytes() const noexcept { return bytes_; }
  /// The pixels, leaving this image empty.
  std::vector<uint8_t> take_bytes() {
    image_ = Image();
    return std::move(bytes_);
  }
  const Image &image() const noexcept { return image_; }
  operator const Image &() const noexcept { return image_; }

 private:
  static size_t checked_size(const ImageLayout &layout) {
    if (bytes_per_pixel(layout.format) == 0 || layout.width == 0 || layout.height == 0)
      throw Error(FLUX_RESULT_INVALID_ARGUMENT, "an image needs a known format and a positive size");
    return static_cast<size_t>(uint64_t(layout.height) * layout.pitch());
  }
  void wrap() {
    // An empty vector has no buffer; the library then refuses the NULL pointer by name.
    image_ = Image::host(layout_, static_cast<void *>(bytes_.data()), bytes_.size());
  }
  ImageLayout layout_;
  std::vector<uint8_t> bytes_;
  Image image_;  // after bytes_: destroyed first
};

// ---------------------------------------------------------------------------------------------
// Request

/// A job description (FluxRequest): text-to-image, a Kontext edit (1 to 4 references) or
/// image-to-image (an init image). Setters check their value at once and throw; a setting never
/// set keeps the default flux_engine.h states. Submit as often as you like. Move-only.
class Request {
 public:
  Request() { detail::check(flux_request_create(&handle_)); }
  explicit Request(const std::string &prompt_text) : Request() { prompt(prompt_text); }
  Request(Request &&other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
  Request &operator=(Request &&other) noexcept {
    if (this != &other) {
      reset();
      handle_ = std::exchange(other.handle_, nullptr);
    }
    return *this;
  }
  Request(const Request &) = delete;
  Request &operator=(const Request &) = delete;
  ~Request() { reset(); }

  /// The prompt (required; may be empty).
  Request &prompt(const std::string &text) {
    detail::check(flux_request_set_prompt(handle_, detail::c_str(text, "prompt")));
    return *this;
  }
  /// Output size: positive multiples of 16, at most 4096 a side and 4 MP.
  Request &size(uint32_t width, uint32_t height) {
    detail::check(flux_request_set_size(handle_, width, height));
    return *this;
  }
  Request &seed(uint64_t seed) {
    detail::check(flux_request_set_seed(handle_, seed));
    return *this;
  }
  /// Denoising steps, 1 to 1000.
  Request &steps(uint32_t steps) {
    detail::check(flux_request_set_steps(handle_, steps));
    return *this;
  }
  /// Distilled guidance, finite and ≥ 0 (schnell ignores it).
  Request &guidance(float guidance) {
    detail::check(flux_request_set_guidance(handle_, guidance));
    return *this;
  }
  /// T5 sequence length in tokens, 2 to 4096.
  Request &t5_length(uint32_t tokens) {
    detail::check(flux_request_set_t5_length(handle_, tokens));
    return *this;
  }
  /// Queue priority (flux::priority::...).
  Request &priority(int32_t priority) {
    detail::check(flux_request_set_priority(handle_, priority));
    return *this;
  }
  /// Adds a Kontext reference (1 to 4 make an edit). Host pixels are copied now; a GPU image is
  /// read when the job starts, after its semaphore reaches `wait_value`.
  Request &add_reference(const Image &image, uint64_t wait_value = 0) {
    detail::check(flux_request_add_reference(handle_, image.handle(), wait_value));
    return *this;
  }
  /// Whether references snap to the closest Kontext training resolution (default true).
  Request &reference_snap(bool snap) {
    detail::check(flux_request_set_reference_snap(handle_, snap));
    return *this;
  }
  /// Makes the request image-to-image: `strength` in (0, 1] is how much of the schedule runs.
  Request &init_image(const Image &image, float strength, uint64_t wait_value = 0) {
    detail::check(flux_request_set_init_image(handle_, image.handle(), wait_value, strength));
    return *this;
  }
  /// Makes the request a FLUX.1 Fill job: `image` read as references are, `mask` a host image of
  /// its size whose first channel is 255 to repaint and 0 to keep. Needs a Fill model (defaults:
  /// 50 steps, guidance 30, 128 T5 tokens, the image's size); kept pixels are not pasted back.
  Request &fill(const Image &image, const Image &mask, uint64_t wait_value = 0) {
    detail::check(flux_request_set_fill(handle_, image.handle(), wait_value, mask.handle()));
    return *this;
  }
  /// Makes the request a FLUX.1 Canny or Depth job: `image` is the ready edge or depth map (the
  /// library runs no detector). Needs a Canny/Depth model.
  Request &control_image(const Image &image, uint64_t wait_value = 0) {
    detail::check(flux_request_set_control_image(handle_, image.handle(), wait_value));
    return *this;
  }
  /// Adds a FLUX.1 Redux image (up to 4): its tokens follow the prompt's. Needs the SigLIP folder
  /// and flux1-redux-dev.safetensors beside the model, or the job fails saying so.
  Request &redux_image(const Image &image, uint64_t wait_value = 0) {
    detail::check(flux_request_add_redux_image(handle_, image.handle(), wait_value));
    return *this;
  }
  /// A negative prompt and the true CFG scale, finite and ≥ 1: above 1 each step also runs the
  /// model on the negative prompt (twice the time); 1 turns it off.
  Request &negative_prompt(const std::string &prompt, float scale) {
    detail::check(flux_request_set_negative_prompt(handle_, detail::c_str(prompt, "negative prompt"), scale));
    return *this;
  }
  /// Removes the references, the init image, the Fill or control input and the Redux images.
  Request &clear_images() {
    detail::check(flux_request_clear_images(handle_));
    return *this;
  }
  /// Adds a LoRA: a kohya, diffusers/PEFT, XLabs or BFL FLUX `.safetensors` file (UTF-8 path) at
  /// `strength`, any finite number (1: the file's own scale). Up to 16, applied together. A
  /// missing file, a non-finite strength or a 17th LoRA throws FLUX_RESULT_INVALID_ARGUMENT. The
  /// engine reads the file when a job first uses it (and keeps it for later jobs): a file that
  /// does not fit the model fails that job, and Job::error() names the key. Changing LoRAs
  /// between jobs does not reload the model.
  Request &add_lora(const std::string &path, float strength = 1.0f) {
    detail::check(flux_request_add_lora(handle_, detail::c_str(path, "LoRA path"), strength));
    return *this;
  }
  /// Removes the LoRAs: the request's jobs run the model as loaded.
  Request &clear_loras() {
    detail::check(flux_request_clear_loras(handle_));
    return *this;
  }

  FluxRequest *handle() const noexcept { return handle_; }

 private:
  void reset() noexcept {
    if (handle_ != nullptr) flux_request_destroy(std::exchange(handle_, nullptr));
  }
  FluxRequest *handle_ = nullptr;
};

// ---------------------------------------------------------------------------------------------
// Job

/// A job snapshot.
struct JobStatus {
  JobState state = JobState::Queued;
  uint32_t step = 0;
  uint32_t total = 0;
  bool has_result = false;
};

/// A submitted job (a FluxJob of one engine). Move-only; releases the job when destroyed
/// (cancelling it if it is still queued or running).
class Job {
 public:
  Job() noexcept = default;
  /// Adopts `id`, a job of `engine` (from the C API).
  Job(FluxEngine *engine, FluxJob id) noexcept : engine_(engine), id_(id) {}
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

  FluxJob id() const noexcept { return id_; }
  FluxEngine *engine_handle() const noexcept { return engine_; }
  explicit operator bool() const noexcept { return id_ != 0; }

  /// Blocks until the job ends or `timeout` passes, and returns its state: terminal, or Queued /
  /// Running when the time ran out (the job goes on). Throws FLUX_RESULT_WRONG_THREAD inside
  /// the event callback.
  JobState wait(std::chrono::milliseconds timeout = std::chrono::milliseconds::max()) const {
    long long left = timeout.count() < 0 ? 0 : static_cast<long long>(timeout.count());
    for (;;) {
      const uint32_t chunk = left > 0xFFFFFFFFll ? 0xFFFFFFFFu : static_cast<uint32_t>(left);
      int32_t state = FLUX_JOB_STATE_QUEUED;
      const FluxResult r = flux_job_wait(engine_, id_, chunk, &state);
      if (r == FLUX_RESULT_OK) return static_cast<JobState>(state);
      if (r != FLUX_RESULT_TIMEOUT) detail::check(r);
      left -= chunk;
      if (left <= 0) return static_cast<JobState>(state);
    }
  }
  JobStatus status() const {
    FluxJobStatus s;
    std::memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    detail::check(flux_job_status(engine_, id_, &s));
    return JobStatus{static_cast<JobState>(s.state), s.step, s.total, s.has_result != 0};
  }
  JobState state() const { return status().state; }
  /// A queued job never starts, a running one stops within one step; harmless once finished.
  CancelOutcome cancel() const {
    int32_t outcome = FLUX_CANCEL_OUTCOME_ALREADY_FINISHED;
    detail::check(flux_job_cancel(engine_, id_, &outcome));
    return static_cast<CancelOutcome>(outcome);
  }
  /// Why the job failed; empty for a job that has not failed.
  std::string error() const {
    const FluxResult r = flux_job_error(engine_, id_);
    if (r == FLUX_RESULT_JOB_FAILED) return flux_last_error_message();
    detail::check(r);
    return std::string();
  }
  /// Width and height of the finished job's image.
  std::pair<uint32_t, uint32_t> image_size() const {
    uint32_t width = 0, height = 0;
    detail::check(flux_job_image_size(engine_, id_, &width, &height));
    return {width, height};
  }
  /// Writes the finished job's image into `target` (of the result's size): a host image in its
  /// format, a GPU image on the GPU, then its semaphore is signalled (to `signal_value` for
  /// timeline semaphores and fences).
  void write_image(const Image &target, uint64_t signal_value = 0) const {
    if (target.read_only())
      throw Error(FLUX_RESULT_INVALID_ARGUMENT, "the image wraps read-only memory (an input only)");
    detail::check(flux_job_write_image(engine_, id_, target.handle(), signal_value));
  }
  /// The finished job's image in host memory, in `format`.
  HostImage image(PixelFormat format = PixelFormat::Rgb8, bool bottom_up = false) const {
    const auto size = image_size();
    HostImage out(size.first, size.second, format, bottom_up);
    write_image(out.image());
    return out;
  }
  /// Saves the finished job's image: JPEG for .jpg / .jpeg, otherwise PNG with the parameters.
  void save_image(const std::string &path) const {
    detail::check(flux_job_save_image(engine_, id_, detail::c_str(path, "path")));
  }
  /// Releases the job now (cancelling it if it still runs); throws if the library refuses.
  void release() {
    if (id_ == 0) return;
    const FluxJob id = std::exchange(id_, 0);
    detail::check(flux_job_release(engine_, id));
  }
  /// Gives the job up without releasing it (the caller calls flux_job_release).
  FluxJob detach() noexcept { return std::exchange(id_, 0); }

 private:
  void reset() noexcept {
    if (id_ != 0) flux_job_release(engine_, std::exchange(id_, 0));
  }
  FluxEngine *engine_ = nullptr;
  FluxJob id_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Events

/// An event, copied out of the library's memory (it owns everything it holds).
struct Event {
  EventType kind = EventType::Log;
  /// The job (0 for LOG).
  FluxJob job = 0;
  /// PROGRESS: `step` of `total` done.
  uint32_t step = 0;
  uint32_t total = 0;
  double elapsed_ms = 0.0;
  double eta_ms = 0.0;
  /// PREVIEW: RGB8, preview_width × preview_height, tightly packed.
  uint32_t preview_width = 0;
  uint32_t preview_height = 0;
  std::vector<uint8_t> preview_rgb;
  /// FAILED: the error; LOG: the line; RESIDENCY: why.
  std::string message;
  LogLevel log_level = LogLevel::Off;
  /// FINISHED: stage timings and whether the prompt embedding was cached.
  double text_ms = 0.0;
  double denoise_ms = 0.0;
  double decode_ms = 0.0;
  bool embedding_cached = false;

  static Event from(const FluxEvent &e) {
    Event out;
    out.kind = static_cast<EventType>(e.kind);
    out.job = e.job;
    out.step = e.step;
    out.total = e.total;
    out.elapsed_ms = e.elapsed_ms;
    out.eta_ms = e.eta_ms;
    if (e.preview_rgb != nullptr) {
      out.preview_width = e.preview_width;
      out.preview_height = e.preview_height;
      out.preview_rgb.assign(e.preview_rgb, e.preview_rgb + size_t(e.preview_width) * e.preview_height * 3);
    }
    if (e.message != nullptr) out.message = e.message;
    out.log_level = static_cast<LogLevel>(e.log_level);
    out.text_ms = e.text_ms;
    out.denoise_ms = e.denoise_ms;
    out.decode_ms = e.decode_ms;
    out.embedding_cached = e.embedding_cached != 0;
    return out;
  }
};

// ---------------------------------------------------------------------------------------------
// Engine

/// How to create an engine (FluxEngineDesc): starts at the library's defaults (CPU, automatic
/// budget, no previews, 16 cached prompts, INFO logs, no callback); chain the setters.
class EngineOptions {
 public:
  EngineOptions() noexcept { flux_engine_desc_init(&desc_); }

  EngineOptions &device(Device device, uint32_t index = 0) noexcept {
    desc_.device = static_cast<int32_t>(device);
    desc_.device_index = index;
    return *this;
  }
  /// Bytes of device memory the engine may keep (memory_budget_auto: what is available when a
  /// model loads, less the reserve).
  EngineOptions &memory_budget(uint64_t bytes) noexcept {
    desc_.memory_budget = bytes;
    return *this;
  }
  /// Bytes memory_budget_auto leaves free for the host's renderer.
  EngineOptions &memory_reserve(uint64_t bytes) noexcept {
    desc_.memory_reserve = bytes;
    return *this;
  }
  /// A PREVIEW event every `steps` steps (0: never).
  EngineOptions &preview_every(uint32_t steps) noexcept {
    desc_.preview_every = steps;
    return *this;
  }
  /// Prompt embeddings cached for reuse.
  EngineOptions &embedding_cache(uint32_t prompts) noexcept {
    desc_.embedding_cache = prompts;
    return *this;
  }
  /// Most verbose level delivered as LOG events.
  EngineOptions &log_level(LogLevel level) noexcept {
    desc_.log_level = static_cast<int32_t>(level);
    return *this;
  }
  /// Receives every event (none then queue for Engine::poll_event). It runs on the worker
  /// thread, or on the calling thread inside submit / load / unload / cancel, possibly on two
  /// threads at once; keep it short. It may call any method but Engine's destructor and
  /// Job::wait (WRONG_THREAD there). An exception it throws is caught and kept for
  /// Engine::take_callback_exception().
  EngineOptions &on_event(std::function<void(const Event &)> callback) {
    on_event_ = std::move(callback);
    return *this;
  }

  const FluxEngineDesc &desc() const noexcept { return desc_; }
  const std::function<void(const Event &)> &callback() const noexcept { return on_event_; }

 private:
  FluxEngineDesc desc_;
  std::function<void(const Event &)> on_event_;
};

/// Which model to load (FluxModelDesc): a folder (layout detected), or explicit paths (each a
/// .safetensors file, a shard index or a component folder). Empty strings are "not given".
struct ModelFiles {
  std::string folder;
  std::string transformer;
  std::string ae;
  std::string t5;
  std::string clip;
  std::string t5_tokenizer;
  std::string clip_tokenizer;
  Dtype dtype = Dtype::Default;
  Kontext kontext = Kontext::Detect;
  int32_t priority = FLUX_PRIORITY_NORMAL;

  ModelFiles() = default;
  explicit ModelFiles(std::string folder_) : folder(std::move(folder_)) {}
};

/// A residency plan (FluxResidencyPlan): where the parts of a model live. Starts at the
/// library's default (everything resident); chain the setters.
class ResidencyPlan {
 public:
  ResidencyPlan() noexcept { flux_residency_plan_init(&plan_); }
  explicit ResidencyPlan(const FluxResidencyPlan &plan) noexcept : plan_(plan) {}

  ResidencyPlan &text_placement(TextPlacement placement) noexcept {
    plan_.text_placement = static_cast<int32_t>(placement);
    return *this;
  }
  /// 0: every transformer block resident; N: blocks streamed, N on the device at a time.
  ResidencyPlan &stream_window(uint32_t blocks) noexcept {
    plan_.stream_window = blocks;
    return *this;
  }
  /// Streamed blocks read from the model files for every step instead of kept in host memory.
  ResidencyPlan &stream_from_files(bool from_files) noexcept {
    plan_.stream_from_files = from_files ? 1 : 0;
    return *this;
  }
  /// With a stream window: how many of the first blocks stay resident.
  ResidencyPlan &resident_blocks(uint32_t blocks) noexcept {
    plan_.resident_blocks = blocks;
    return *this;
  }
  /// The autoencoder works in tiles on images larger than 512×512.
  ResidencyPlan &tiled_vae(bool tiled) noexcept {
    plan_.tiled_vae = tiled ? 1 : 0;
    return *this;
  }

  TextPlacement text_placement() const noexcept { return static_cast<TextPlacement>(plan_.text_placement); }
  uint32_t stream_window() const noexcept { return plan_.stream_window; }
  bool stream_from_files() const noexcept { return plan_.stream_from_files != 0; }
  uint32_t resident_blocks() const noexcept { return plan_.resident_blocks; }
  bool tiled_vae() const noexcept { return plan_.tiled_vae != 0; }
  const FluxResidencyPlan &raw() const noexcept { return plan_; }

 private:
  FluxResidencyPlan plan_;
};

/// What an engine holds (bytes per component) and the plan in force.
struct Residency {
  uint64_t budget = 0;
  uint64_t transformer = 0;
  uint64_t autoencoder = 0;
  /// 0 while released.
  uint64_t text_encoders = 0;
  bool release_text_encoders = false;
  /// Host memory besides the compute device (streamed blocks, text encoders on the CPU).
  uint64_t host = 0;
  ResidencyPlan plan;
};

/// An engine and its worker thread (FluxEngine). Destroying it cancels its jobs and joins the
/// worker (within one denoising step); afterwards no callback runs. Move-only.
class Engine {
 public:
  explicit Engine(const EngineOptions &options = EngineOptions()) {
    FluxEngineDesc desc = options.desc();
    std::unique_ptr<CallbackState> state;
    if (options.callback()) {
      state.reset(new CallbackState{options.callback(), {}, nullptr});
      desc.callback = &Engine::deliver;
      desc.user_data = state.get();
    }
    detail::check(flux_engine_create(&desc, &handle_));
    callback_ = std::move(state);
  }
  Engine(Engine &&other) noexcept
      : handle_(std::exchange(other.handle_, nullptr)), callback_(std::move(other.callback_)) {}
  Engine &operator=(Engine &&other) noexcept {
    if (this != &other) {
      reset();
      handle_ = std::exchange(other.handle_, nullptr);
      callback_ = std::move(other.callback_);
    }
    return *this;
  }
  Engine(const Engine &) = delete;
  Engine &operator=(const Engine &) = delete;
  ~Engine() { reset(); }

  FluxEngine *handle() const noexcept { return handle_; }

  /// The library's version ("0.1.0") and ABI version.
  static std::string version() { return flux_version(); }
  static uint32_t abi_version() noexcept { return flux_abi_version(); }

  /// Queues loading the model in `folder` (diffusers, or BFL / ComfyUI single files), replacing
  /// the current one. A missing folder or unknown layout throws here; the weights load on the
  /// worker (watch the job).
  Job load_model(const std::string &folder, int32_t priority = FLUX_PRIORITY_NORMAL) {
    ModelFiles files(folder);
    files.priority = priority;
    return load_model(files);
  }
  Job load_model(const ModelFiles &files) {
    FluxModelDesc d;
    flux_model_desc_init(&d);
    d.folder = detail::optional_c_str(files.folder, "folder");
    d.transformer = detail::optional_c_str(files.transformer, "transformer");
    d.ae = detail::optional_c_str(files.ae, "ae");
    d.t5 = detail::optional_c_str(files.t5, "t5");
    d.clip = detail::optional_c_str(files.clip, "clip");
    d.t5_tokenizer = detail::optional_c_str(files.t5_tokenizer, "t5_tokenizer");
    d.clip_tokenizer = detail::optional_c_str(files.clip_tokenizer, "clip_tokenizer");
    d.dtype = static_cast<int32_t>(files.dtype);
    d.kontext = static_cast<int32_t>(files.kontext);
    d.priority = files.priority;
    FluxJob job = 0;
    detail::check(flux_engine_load_model(handle_, &d, &job));
    return Job(handle_, job);
  }
  /// Queues unloading the model.
  Job unload_model(int32_t priority = FLUX_PRIORITY_NORMAL) {
    FluxJob job = 0;
    detail::check(flux_engine_unload_model(handle_, priority, &job));
    return Job(handle_, job);
  }
  /// Queues the job `request` describes (the request is unchanged).
  Job submit(const Request &request) {
    FluxJob job = 0;
    detail::check(flux_engine_submit(handle_, request.handle(), &job));
    return Job(handle_, job);
  }

  /// The next event, without blocking (never one for an engine with a callback).
  std::optional<Event> poll_event() {
    FluxEvent e;
    std::memset(&e, 0, sizeof e);
    e.struct_size = sizeof e;
    const FluxResult r = flux_engine_poll_event(handle_, &e);
    if (r == FLUX_RESULT_NO_EVENT) return std::nullopt;
    detail::check(r);
    return Event::from(e);
  }

  /// Sets the memory budget (memory_budget_auto: what is available at the next load).
  void set_memory_budget(uint64_t bytes) { detail::check(flux_engine_set_memory_budget(handle_, bytes)); }
  /// Sets what memory_budget_auto leaves free; it applies at the next load.
  void set_memory_reserve(uint64_t bytes) { detail::check(flux_engine_set_memory_reserve(handle_, bytes)); }
  /// Forces a residency plan, before the next denoising step or job.
  void set_residency_plan(const ResidencyPlan &plan) {
    detail::check(flux_engine_set_residency_plan(handle_, &plan.raw()));
  }
  /// Lets the engine choose the plan for the budget again (the default).
  void set_automatic_residency_plan() { detail::check(flux_engine_set_residency_plan(handle_, nullptr)); }
  /// What the engine holds now and the plan that placed it.
  Residency residency() const {
    FluxResidency r;
    std::memset(&r, 0, sizeof r);
    r.struct_size = sizeof r;
    detail::check(flux_engine_get_residency(handle_, &r));
    FluxResidencyPlan plan;
    flux_residency_plan_init(&plan);
    plan.text_placement = r.text_placement;
    plan.stream_window = r.stream_window;
    plan.stream_from_files = r.stream_from_files;
    plan.resident_blocks = r.resident_blocks;
    plan.tiled_vae = r.tiled_vae;
    return Residency{r.budget, r.transformer, r.autoencoder, r.text_encoders, r.release_text_encoders != 0,
                     r.host, ResidencyPlan(plan)};
  }
  /// The CUDA device's UUID, to pick the same device in Vulkan (UNSUPPORTED on the CPU).
  std::array<uint8_t, 16> device_uuid() const {
    std::array<uint8_t, 16> uuid{};
    detail::check(flux_engine_device_uuid(handle_, uuid.data()));
    return uuid;
  }

  /// The first exception the event callback threw since the last call (null: none); rethrow
  /// it with std::rethrow_exception. Later ones until then are dropped.
  std::exception_ptr take_callback_exception() {
    if (!callback_) return nullptr;
    std::lock_guard<std::mutex> lock(callback_->mutex);
    return std::exchange(callback_->error, nullptr);
  }

 private:
  struct CallbackState {
    std::function<void(const Event &)> callback;
    std::mutex mutex;
    std::exception_ptr error;
  };

  /// The C callback: no exception may leave it.
  static void deliver(const FluxEvent *event, void *user_data) noexcept {
    auto *state = static_cast<CallbackState *>(user_data);
    try {
      state->callback(Event::from(*event));
    } catch (...) {
      try {
        std::lock_guard<std::mutex> lock(state->mutex);
        if (!state->error) state->error = std::current_exception();
      } catch (...) {
        // A mutex that cannot lock (system error): the exception is dropped.
      }
    }
  }

  void reset() noexcept {
    if (handle_ == nullptr) return;
    if (flux_engine_destroy(std::exchange(handle_, nullptr)) != FLUX_RESULT_OK) {
      // Refused (inside the callback): the engine lives on and may still call back, so its
      // callback state must too.
      (void)callback_.release();
    }
    callback_.reset();
  }

  FluxEngine *handle_ = nullptr;
  std::unique_ptr<CallbackState> callback_;
};

inline Image Image::cuda(const Engine &engine, const ImageLayout &layout, uint64_t device_pointer,
                         const std::optional<Semaphore> &semaphore) {
  const FluxImageDesc d = layout.desc();
  const FluxSemaphore s = semaphore ? semaphore->desc() : Semaphore().desc();
  FluxImage *h = nullptr;
  detail::check(flux_image_create_cuda(engine.handle(), &d, device_pointer, semaphore ? &s : nullptr, &h));
  return Image(h, layout, false);
}

inline Image Image::import_memory(const Engine &engine, const ImageLayout &layout, const ExternalMemory &memory,
                                  const std::optional<Semaphore> &semaphore) {
  const FluxImageDesc d = layout.desc();
  const FluxExternalMemory m = memory.desc();
  const FluxSemaphore s = semaphore ? semaphore->desc() : Semaphore().desc();
  FluxImage *h = nullptr;
  detail::check(flux_image_import_memory(engine.handle(), &d, &m, semaphore ? &s : nullptr, &h));
  return Image(h, layout, false);
}

}  // namespace flux
