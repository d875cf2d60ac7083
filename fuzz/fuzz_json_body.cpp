// JSON request bodies: the first byte picks the route (create user, create thread, post a
// message on the existing thread) and whether the Idempotency-Key header is set; the rest is
// the body, sent as application/json. Each input is posted twice: the second answer must agree
// with what the first stored (a repeat with the same key creates nothing; a repeated user name
// is a 409).
#include <spdlog/spdlog.h>

#include "fuzz_world.hpp"

namespace http = boost::beast::http;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace chat;
  if (size < 1) return 0;
  const std::uint8_t sel = data[0];
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  fuzz::World world;
  web::Request req{http::verb::post, "/", 11};
  switch (sel % 3) {
    case 0: req.target("/api/users"); break;
    case 1: req.target("/api/threads"); break;
    default: req.target("/api/threads/" + world.thread_id() + "/messages"); break;
  }
  req.set(http::field::content_type, (sel & 4) ? "application/json; charset=utf-8"
                                                : "application/json");
  if (sel & 8) req.set("Idempotency-Key", "fuzz-key");
  req.body() = body;
  req.prepare_payload();
  const auto first = fuzz::handle(world, req);
  const auto second = fuzz::handle(world, req);
  if (first.status == 201) {
    // Users: the same name again is a conflict; messages with the same key: the same answer.
    if (sel % 3 == 0 && second.status != 409)
      fuzz::fail("a user created twice: second answer " + std::to_string(second.status));
    if (sel % 3 == 2 && (sel & 8) && second.status != 201)
      fuzz::fail("an idempotent repeat answered " + std::to_string(second.status));
  } else if (first.status != second.status && sel % 3 != 2) {
    fuzz::fail("a refused body got " + std::to_string(first.status) + " then " +
               std::to_string(second.status));
  }
  world.settle();
  return 0;
}
