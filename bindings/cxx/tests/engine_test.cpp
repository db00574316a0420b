// The C++ API end to end on the tiny model. Usage: engine_test MODEL_DIR OUT.rgb
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "flux/engine.hpp"

#define EXPECT(c)                                                      \
  do {                                                                 \
    if (!(c)) {                                                        \
      std::cerr << __FILE__ << ":" << __LINE__ << ": expected " #c "\n"; \
      return 1;                                                        \
    }                                                                  \
  } while (0)

int main(int argc, char **argv) {
  if (argc != 3) return 2;
  flux::Engine engine(/*preview_every=*/1);
  EXPECT(engine.load_model(argv[1]).wait() == flux::JobState::Succeeded);

  flux::TextToImage req;
  req.prompt = "a red lighthouse at dusk";
  req.width = 64;
  req.height = 48;
  req.seed = 7;
  req.steps = 3;
  req.t5_len = 32;
  flux::Job job = engine.generate(req);
  EXPECT(job.wait() == flux::JobState::Succeeded);
  flux::Image img = job.image();
  EXPECT(img.width == 64 && img.height == 48 && img.rgb.size() == 64 * 48 * 3);
  std::ofstream(argv[2], std::ios::binary).write(reinterpret_cast<const char *>(img.rgb.data()), img.rgb.size());

  int progress = 0, previews = 0;
  while (auto e = engine.poll_event()) {
    if (e->job == job.id() && e->kind == 2) progress++;
    if (e->job == job.id() && e->kind == 3) previews++;
  }
  EXPECT(progress == 3 && previews == 2);

  // Errors are exceptions with the engine's message.
  bool threw = false;
  try {
    req.width = 70;
    engine.generate(req);
  } catch (const std::exception &e) {
    threw = std::string(e.what()).find("multiples of 16") != std::string::npos;
  }
  EXPECT(threw);

  // A Kontext edit of the result, and cancellation.
  flux::Job edited = engine.edit("make it night", img, /*steps=*/2, /*seed=*/1);
  EXPECT(edited.wait() == flux::JobState::Succeeded);
  req.width = 256;
  req.height = 256;
  req.steps = 500;
  flux::Job slow = engine.generate(req);
  slow.cancel();
  EXPECT(slow.wait() == flux::JobState::Cancelled);

  // RAII: a destroyed Job releases its handle.
  uint64_t id = 0;
  {
    flux::Job tmp = engine.generate({"a cat", 16, 16, 1, 1});
    id = tmp.id();
    EXPECT(tmp.wait() == flux::JobState::Succeeded);
    flux::Job moved = std::move(tmp);
    EXPECT(moved.id() == id && tmp.id() == 0);
  }
  EXPECT(!engine.knows(id));
  EXPECT(engine.knows(job.id()));
  std::cout << "cpp: ok\n";
  return 0;
}
