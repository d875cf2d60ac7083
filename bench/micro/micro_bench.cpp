// Google Benchmark micro-suite for the hot pieces of the event path (issue 7): SSE frame
// encoding, hub publish to N subscribers, JSON parse of a message body. `make bench-micro`.
// Figures are in bench/README.md; compare within one run (the machine is shared and noisy).
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>

#include "application/event_hub.hpp"
#include "infrastructure/web/sse_frame.hpp"

namespace {

using chat::domain::EventType;
using chat::domain::RunEvent;

RunEvent token_event(std::int64_t seq) {
  return RunEvent{"6f1c2a4e-8b0d-4c3e-9a57-2d1e0f3b4c5d", seq, EventType::token,
                  R"({"text":"hello "})", 1'795'514'400'123};
}

// The encoder as it was before (std::to_string and appends without a reserve), kept as the
// baseline of the same run.
void append_frame_before(std::string& out, const RunEvent& e) {
  out += "id: ";
  out += std::to_string(e.seq);
  out += "\nevent: ";
  out += chat::domain::to_string(e.type);
  out += "\ndata: ";
  out += e.data;
  out += "\n\n";
}

// 16 frames into one reused buffer, as a writer does for a batch.
template <void (*Encode)(std::string&, const RunEvent&)>
void BM_FrameEncode(benchmark::State& state) {
  std::vector<RunEvent> events;
  for (int i = 0; i < 16; ++i) events.push_back(token_event(100'000 + i));
  std::string buf;
  for (auto _ : state) {
    buf.clear();
    for (const auto& e : events) Encode(buf, e);
    benchmark::DoNotOptimize(buf.data());
  }
  state.SetItemsProcessed(state.iterations() * 16);
}
BENCHMARK_TEMPLATE(BM_FrameEncode, append_frame_before)->Name("FrameEncode/before");
BENCHMARK_TEMPLATE(BM_FrameEncode, chat::web::append_sse_frame)->Name("FrameEncode/now");

// One committed event handed to N subscribers of its run, and each subscriber draining it
// (what its writer does next).
void BM_HubPublish(benchmark::State& state) {
  boost::asio::io_context io;
  chat::app::EventHub hub(1 << 20);
  const auto n = static_cast<std::size_t>(state.range(0));
  const auto ev = std::make_shared<const RunEvent>(token_event(1));
  std::vector<chat::app::SubscriptionHandle> subs;
  for (std::size_t i = 0; i < n; ++i) subs.push_back(hub.subscribe(ev->run_id, io.get_executor()));
  std::vector<chat::app::EventPtr> out;
  for (auto _ : state) {
    hub.publish(ev);
    for (auto& s : subs) {
      out.clear();
      s->drain(out);
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}
BENCHMARK(BM_HubPublish)->Arg(1)->Arg(10)->Arg(100)->Arg(1000);

// What each subscription costs to create and destroy (and, with a queue, to hold).
void BM_HubSubscribe(benchmark::State& state) {
  boost::asio::io_context io;
  chat::app::EventHub hub(4096);
  for (auto _ : state) {
    auto h = hub.subscribe("6f1c2a4e-8b0d-4c3e-9a57-2d1e0f3b4c5d", io.get_executor());
    benchmark::DoNotOptimize(&h);
  }
}
BENCHMARK(BM_HubSubscribe);

// POST /messages body, parsed with the handler's options.
void BM_JsonParseMessageBody(benchmark::State& state) {
  const std::string body =
      R"({"content":"What is the weather in Paris today, and should I take an umbrella?"})";
  boost::json::parse_options opts;
  opts.max_depth = 32;
  for (auto _ : state) {
    boost::system::error_code ec;
    auto v = boost::json::parse(body, ec, {}, opts);
    benchmark::DoNotOptimize(v);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(body.size()));
}
BENCHMARK(BM_JsonParseMessageBody);

}  // namespace

BENCHMARK_MAIN();
