// The HTTP request path up to the response: the input is raw bytes off a connection, parsed by
// Beast with the server's limits, each request handed to handle_request (the real router and
// handlers, ChatService on the in-memory database, the demo engine without delays), streams read
// to their end. Up to 8 pipelined requests per input, so one can create what the next reads.
// {T}, {R} and {U} in a request target stand for the existing thread, run and user.
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <spdlog/spdlog.h>

#include "fuzz_world.hpp"

namespace http = boost::beast::http;

namespace {
// As ServerOptions' defaults, smaller for the body so the fuzzer meets the limit.
constexpr std::uint32_t kHeaderLimit = 16384;
constexpr std::size_t kBodyLimit = 8192;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace chat;
  fuzz::World world;
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  for (int i = 0; i < 8 && !rest.empty(); ++i) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(kHeaderLimit);
    parser.body_limit(kBodyLimit);
    parser.eager(true);
    boost::system::error_code ec;
    const std::size_t used = parser.put(boost::asio::buffer(rest.data(), rest.size()), ec);
    rest.remove_prefix(used);
    if (ec == http::error::need_more && !parser.is_done()) {
      // The connection closed here: what the server does at end of stream (a request without
      // a length ends with the connection).
      parser.put_eof(ec);
    }
    if (ec || !parser.is_done()) break;  // the server answers 400/413/431 and closes
    web::Request req = parser.release();
    req.target(world.expand(std::string(req.target())));
    fuzz::handle(world, req);
    if (used == 0) break;
  }
  world.settle();
  return 0;
}
