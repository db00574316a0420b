// flux-cpp: text-to-image through the header-only C++ API (flux/engine.hpp over flux_engine.h),
// with progress from polled events, the way a host's frame loop would take them.
//   flux-cpp MODEL_DIR "PROMPT" OUT.ppm [WIDTH HEIGHT STEPS SEED]
// Build: c++ -std=c++17 -I<prefix>/include -I bindings/cxx/include generate.cpp -lflux_engine
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <thread>

#include "flux/engine.hpp"

int main(int argc, char **argv) {
  if (argc < 4) {
    std::cerr << "usage: flux-cpp MODEL_DIR PROMPT OUT.ppm [WIDTH HEIGHT STEPS SEED]\n";
    return 2;
  }
  try {
    flux::Engine engine(flux::EngineOptions().log_level(flux::LogLevel::Warn));
    flux::Job load = engine.load_model(argv[1]);
    if (load.wait() != flux::JobState::Succeeded) {
      std::cerr << "loading failed: " << load.error() << "\n";
      return 1;
    }
    flux::Request request(argv[2]);
    if (argc > 5) request.size(static_cast<uint32_t>(std::atoi(argv[4])), static_cast<uint32_t>(std::atoi(argv[5])));
    if (argc > 6) request.steps(static_cast<uint32_t>(std::atoi(argv[6])));
    if (argc > 7) request.seed(std::strtoull(argv[7], nullptr, 10));
    flux::Job job = engine.submit(request);
    // The host's own loop: poll events, never block on the model.
    for (;;) {
      while (auto e = engine.poll_event()) {
        if (e->job == job.id() && e->kind == flux::EventType::Progress)
          std::cerr << "\rstep " << e->step << "/" << e->total << std::flush;
        if (e->kind == flux::EventType::Log) std::cerr << "\n" << e->message << "\n";
      }
      const flux::JobState state = job.state();
      if (state != flux::JobState::Queued && state != flux::JobState::Running) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (job.state() != flux::JobState::Succeeded) {
      std::cerr << "\nfailed: " << job.error() << "\n";
      return 1;
    }
    const flux::HostImage img = job.image(flux::PixelFormat::Rgb8);
    std::ofstream out(argv[3], std::ios::binary);
    out << "P6\n" << img.width() << " " << img.height() << "\n255\n";
    out.write(reinterpret_cast<const char *>(img.data()), static_cast<std::streamsize>(img.size()));
    if (!out) {
      std::cerr << "\ncannot write " << argv[3] << "\n";
      return 1;
    }
    std::cerr << "\nwrote " << argv[3] << " (" << img.width() << "x" << img.height() << ")\n";
  } catch (const flux::Error &e) {
    std::cerr << "flux-cpp: " << e.what() << " (" << flux::result_name(e.result()) << ")\n";
    return 1;
  }
  return 0;
}
