// The demo engine: its reply text, and what it writes through the sink.

#include "demo_engine.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "testkit/async.hpp"

namespace chat::infra::engines {
namespace {

using domain::Message;
using domain::Role;
using namespace std::chrono_literals;

Message msg(Role role, std::string content) {
  return Message{"m", "t", role, std::move(content), 0, std::nullopt};
}

std::string join(const std::vector<std::string>& tokens) {
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

bool has_non_ascii(const std::string& s) {
  for (unsigned char c : s)
    if (c >= 0x80) return true;
  return false;
}

TEST(DemoEngine, ReplyQuotesTheLastUserMessageWordByWord) {
  const auto tokens = DemoEngine::reply_tokens({msg(Role::user, "hello  big\tworld\n")});
  const std::string reply = join(tokens);
  EXPECT_EQ(reply,
            "Turn 1: you said \xE2\x80\x9Chello big world\xE2\x80\x9D"
            " \xE2\x80\x94 noted \xE2\x9C\x93");
  EXPECT_TRUE(has_non_ascii(reply));
  // Streamed word by word: the quoted words arrive as separate tokens.
  EXPECT_GE(tokens.size(), 6u);
  EXPECT_NE(std::find(tokens.begin(), tokens.end(), " big"), tokens.end());
  EXPECT_NE(std::find(tokens.begin(), tokens.end(), " world"), tokens.end());
  for (const auto& t : tokens) EXPECT_FALSE(t.empty());
}

TEST(DemoEngine, ReplyNamesTheTurnAndQuotesOnlyTheLatestMessage) {
  const auto reply = join(DemoEngine::reply_tokens({
      msg(Role::user, "first"),
      msg(Role::assistant, "Turn 1: you said \xE2\x80\x9C" "first\xE2\x80\x9D"),
      msg(Role::user, "second"),
      msg(Role::assistant, "..."),
      msg(Role::user, "caf\xC3\xA9 \"quoted\""),
  }));
  EXPECT_EQ(reply.rfind("Turn 3:", 0), 0u) << reply;
  EXPECT_NE(reply.find("\xE2\x80\x9C" "caf\xC3\xA9 \"quoted\"\xE2\x80\x9D"), std::string::npos)
      << reply;
  EXPECT_EQ(reply.find("first"), std::string::npos) << reply;
  EXPECT_EQ(reply.find("second"), std::string::npos) << reply;
}

TEST(DemoEngine, ReplyToNoUserMessageStillHasText) {
  const auto reply = join(DemoEngine::reply_tokens({}));
  EXPECT_EQ(reply.rfind("Turn 0:", 0), 0u) << reply;
  EXPECT_TRUE(has_non_ascii(reply));
}

/// Records what the engine writes; sleeps return at once; cancel after `cancel_after` tokens.
class RecordingSink final : public app::EngineSink {
 public:
  std::vector<std::string> calls;
  std::vector<std::string> tokens;
  int cancel_after = -1;
  int sleeps = 0;

  app::Task<void> tool_start(const std::string& tool, const std::string& input) override {
    calls.push_back("tool_start " + tool + " " + input);
    co_return;
  }
  app::Task<void> tool_end(const std::string& tool, const std::string& output) override {
    calls.push_back("tool_end " + tool + " " + output);
    co_return;
  }
  app::Task<void> token(const std::string& text) override {
    calls.push_back("token");
    tokens.push_back(text);
    if (cancel_after >= 0 && static_cast<int>(tokens.size()) >= cancel_after) canceled_ = true;
    co_return;
  }
  app::Task<void> sleep(std::chrono::milliseconds) override {
    ++sleeps;
    co_return;
  }
  bool canceled() const override { return canceled_; }
  void on_cancel(std::function<void()>) override {}
  void set_usage(std::string) override {}

 private:
  bool canceled_ = false;
};

TEST(DemoEngine, RunsAToolStepThenStreamsTheReply) {
  testkit::IoRunner io(1);
  DemoEngine engine(DemoOptions{1ms, 1ms});
  RecordingSink sink;
  const app::EngineRequest req{"r", {msg(Role::user, "two \"words\"")}};
  testkit::run_sync(io.io(), engine.run(req, sink));
  ASSERT_GE(sink.calls.size(), 3u);
  EXPECT_EQ(sink.calls[0], R"(tool_start word_count {"text":"two \"words\""})");
  EXPECT_EQ(sink.calls[1], R"(tool_end word_count {"words":2})");
  EXPECT_EQ(sink.tokens, DemoEngine::reply_tokens(req.history));
  EXPECT_GE(sink.sleeps, static_cast<int>(sink.tokens.size()));
}

TEST(DemoEngine, StopsSoonAfterCancel) {
  testkit::IoRunner io(1);
  DemoEngine engine(DemoOptions{1ms, 1ms});
  RecordingSink sink;
  sink.cancel_after = 2;
  const app::EngineRequest req{"r", {msg(Role::user, "one two three four five six")}};
  testkit::run_sync(io.io(), engine.run(req, sink));
  EXPECT_EQ(sink.tokens.size(), 2u);
}

}  // namespace
}  // namespace chat::infra::engines
