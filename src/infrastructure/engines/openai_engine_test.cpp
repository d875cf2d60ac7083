#include "infrastructure/engines/openai_engine.hpp"

#include <gtest/gtest.h>

#include "application/run_executor.hpp"

namespace chat::infra::engines {
namespace {

TEST(OpenAIBaseUrl, OpenAIAndOllamaForms) {
  auto e = parse_base_url("https://api.openai.com/v1");
  EXPECT_TRUE(e.tls);
  EXPECT_EQ(e.host, "api.openai.com");
  EXPECT_EQ(e.port, 443);
  EXPECT_EQ(e.path, "/v1");
  EXPECT_EQ(e.host_header(), "api.openai.com");

  e = parse_base_url("http://localhost:11434/v1/");
  EXPECT_FALSE(e.tls);
  EXPECT_EQ(e.host, "localhost");
  EXPECT_EQ(e.port, 11434);
  EXPECT_EQ(e.path, "/v1");
  EXPECT_EQ(e.host_header(), "localhost:11434");

  e = parse_base_url("HTTP://[::1]:8080");
  EXPECT_EQ(e.host, "::1");
  EXPECT_EQ(e.port, 8080);
  EXPECT_EQ(e.path, "");
  EXPECT_EQ(e.host_header(), "[::1]:8080");
}

TEST(OpenAIBaseUrl, RefusesWhatItCannotUse) {
  for (const char* bad : {"", "api.openai.com/v1", "ftp://x/v1", "http://", "http://:80/v1",
                          "http://h:0/v1", "http://h:99999/v1", "http://h:x/v1", "http://u:p@h/v1",
                          "http://h/v1?x=1", "http://h/v1#f", "http://[::1/v1", "http://h/a b"}) {
    SCOPED_TRACE(bad);
    EXPECT_THROW(parse_base_url(bad), std::invalid_argument);
  }
}

domain::Message msg(domain::Role r, std::string content) {
  domain::Message m;
  m.role = r;
  m.content = std::move(content);
  return m;
}

TEST(OpenAIRequest, SystemPromptFirstThenHistoryOldestFirst) {
  OpenAIOptions o;
  o.model = "m1";
  o.system_prompt = "Be brief.";
  o.temperature = 0.5;
  const std::string body =
      build_chat_request(o, {msg(domain::Role::user, "hi"), msg(domain::Role::assistant, "h\xC3\xA9llo"),
                             msg(domain::Role::user, "again \"quoted\"")});
  EXPECT_EQ(body,
            "{\"model\":\"m1\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
            "{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"h\xC3\xA9llo\"},"
            "{\"role\":\"user\",\"content\":\"again \\\"quoted\\\"\"}],\"stream\":true,"
            "\"stream_options\":{\"include_usage\":true},\"temperature\":5E-1}");
}

TEST(OpenAIRequest, NoSystemPromptNoTemperature) {
  OpenAIOptions o;
  o.model = "m";
  const std::string body = build_chat_request(o, {msg(domain::Role::user, "x")});
  EXPECT_EQ(body.find("system"), std::string::npos);
  EXPECT_EQ(body.find("temperature"), std::string::npos);
}

TEST(OpenAIRedact, EveryOccurrenceGoes) {
  EXPECT_EQ(redact("key sk-1 and sk-1!", "sk-1"), "key [redacted] and [redacted]!");
  EXPECT_EQ(redact("nothing", ""), "nothing");
  EXPECT_EQ(redact("aaaa", "a"), "[redacted][redacted][redacted][redacted]");
}

TEST(FinalEvent, CarriesUsageWhenSet) {
  using domain::RunStatus;
  auto with = app::terminal_events("r", 3, RunStatus::done, "hi", "m-1", "", 1,
                                   "{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11}");
  EXPECT_EQ(with.front().data,
            "{\"text\":\"hi\",\"message_id\":\"m-1\",\"usage\":{\"prompt_tokens\":9,"
            "\"completion_tokens\":2,\"total_tokens\":11}}");
  auto without = app::terminal_events("r", 3, RunStatus::done, "hi", "m-1", "", 1);
  EXPECT_EQ(without.front().data, "{\"text\":\"hi\",\"message_id\":\"m-1\"}");
}

}  // namespace
}  // namespace chat::infra::engines
