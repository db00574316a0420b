// flux-cpp: text-to-image through the C++ API, with progress from polled events.
//   flux-cpp MODEL_DIR "PROMPT" OUT.ppm [WIDTH HEIGHT STEPS SEED]
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
    flux::Engine engine;
    flux::Job load = engine.load_model(argv[1]);
    if (load.wait() != flux::JobState::Succeeded) {
      std::cerr << "loading failed: " << load.error() << "\n";
      return 1;
    }
    flux::TextToImage req;
    req.prompt = argv[2];
    if (argc > 5) req.width = std::atoi(argv[4]), req.height = std::atoi(argv[5]);
    if (argc > 6) req.steps = std::atoi(argv[6]);
    if (argc > 7) req.seed = std::strtoull(argv[7], nullptr, 10);
    flux::Job job = engine.generate(req);
    // The host's own loop: poll events, never block on the model.
    while (job.state() == flux::JobState::Queued || job.state() == flux::JobState::Running) {
      while (auto e = engine.poll_event())
        if (e->job == job.id() && e->kind == 2) std::cerr << "\rstep " << e->step << "/" << e->total << std::flush;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (job.wait() != flux::JobState::Succeeded) {
      std::cerr << "\nfailed: " << job.error() << "\n";
      return 1;
    }
    flux::Image img = job.image();
    std::ofstream out(argv[3], std::ios::binary);
    out << "P6\n" << img.width << " " << img.height << "\n255\n";
    out.write(reinterpret_cast<const char *>(img.rgb.data()), static_cast<std::streamsize>(img.rgb.size()));
    std::cerr << "\nwrote " << argv[3] << " (" << img.width << "x" << img.height << ")\n";
  } catch (const std::exception &e) {
    std::cerr << "flux-cpp: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
