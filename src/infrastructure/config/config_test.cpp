// Configuration: flags over environment over defaults; bad values name their setting.

#include "config.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

extern char** environ;  // NOLINT(readability-redundant-declaration)

namespace chat::infra {
namespace {

/// Clears every variable the configuration reads for the duration of a test, restoring them
/// afterwards, so the test sees exactly the environment it sets.
class CleanEnv : public ::testing::Test {
 protected:
  void SetUp() override {
    for (char** e = environ; e && *e; ++e) {
      const std::string kv = *e;
      const auto eq = kv.find('=');
      const std::string name = kv.substr(0, eq);
      if (name.rfind("CHATBOT_", 0) == 0 || name == "DATABASE_URL" || name == "OPENAI_API_KEY")
        saved_.emplace_back(name, kv.substr(eq + 1));
    }
    for (const auto& [name, value] : saved_) ::unsetenv(name.c_str());
  }
  void TearDown() override {
    for (const auto& name : set_) ::unsetenv(name.c_str());
    for (const auto& [name, value] : saved_) ::setenv(name.c_str(), value.c_str(), 1);
  }
  void set(const std::string& name, const std::string& value) {
    ::setenv(name.c_str(), value.c_str(), 1);
    set_.push_back(name);
  }
  /// The message of the ConfigError that parsing `args` throws ("" if none).
  static std::string error_of(const std::vector<std::string>& args) {
    try {
      parse_config(args);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "";
  }

 private:
  std::vector<std::pair<std::string, std::string>> saved_;
  std::vector<std::string> set_;
};

using ConfigParsing = CleanEnv;

TEST_F(ConfigParsing, DefaultsWithNoArgumentsAndNoEnvironment) {
  const auto c = parse_config({});
  EXPECT_EQ(c.command, "serve");
  EXPECT_EQ(c.host, "127.0.0.1");
  EXPECT_EQ(c.port, 8000);
  EXPECT_EQ(c.database_url, "sqlite:data/chatbot.db");
  EXPECT_EQ(c.engine, "demo");
  EXPECT_EQ(c.demo_token_delay_ms, 50);
  EXPECT_EQ(c.demo_tool_delay_ms, 100);
  EXPECT_DOUBLE_EQ(c.ping_interval_s, 15.0);
  EXPECT_EQ(c.max_body_bytes, 1048576u);
  EXPECT_EQ(c.max_content_bytes, 32768u);
  EXPECT_EQ(c.log_level, "info");
  EXPECT_EQ(c.log_format, "text");
  EXPECT_TRUE(c.migrate);
}

TEST_F(ConfigParsing, CommandsAndHelpAndVersion) {
  EXPECT_EQ(parse_config({"serve"}).command, "serve");
  EXPECT_EQ(parse_config({"migrate", "--database", "sqlite::memory:"}).command, "migrate");
  EXPECT_EQ(parse_config({"--help"}).command, "help");
  EXPECT_EQ(parse_config({"-h"}).command, "help");
  EXPECT_EQ(parse_config({"serve", "--port", "1", "--help"}).command, "help");
  EXPECT_EQ(parse_config({"--version"}).command, "version");
  EXPECT_EQ(parse_config({"--port", "9000"}).command, "serve");
  EXPECT_NE(error_of({"frobnicate"}).find("frobnicate"), std::string::npos);
}

TEST_F(ConfigParsing, EnvironmentOverDefaultsAndFlagsOverEnvironment) {
  set("CHATBOT_PORT", "9001");
  set("CHATBOT_HOST", "0.0.0.0");
  set("DATABASE_URL", "sqlite::memory:");
  set("CHATBOT_DEMO_TOKEN_DELAY_MS", "5");
  auto c = parse_config({"serve"});
  EXPECT_EQ(c.port, 9001);
  EXPECT_EQ(c.host, "0.0.0.0");
  EXPECT_EQ(c.database_url, "sqlite::memory:");
  EXPECT_EQ(c.demo_token_delay_ms, 5);

  c = parse_config({"serve", "--port", "9002", "--host=localhost", "--demo-token-delay-ms=0"});
  EXPECT_EQ(c.port, 9002);
  EXPECT_EQ(c.host, "localhost");
  EXPECT_EQ(c.demo_token_delay_ms, 0);
  EXPECT_EQ(c.database_url, "sqlite::memory:");  // not overridden: the environment's
}

TEST_F(ConfigParsing, AnEmptyVariableCountsAsUnset) {
  set("CHATBOT_PORT", "");
  EXPECT_EQ(parse_config({}).port, 8000);
}

TEST_F(ConfigParsing, OpenAiKeyFallsBackToTheCommonVariable) {
  set("OPENAI_API_KEY", "sk-common");
  EXPECT_EQ(parse_config({}).openai_api_key, "sk-common");
  set("CHATBOT_OPENAI_API_KEY", "sk-own");
  EXPECT_EQ(parse_config({}).openai_api_key, "sk-own");
}

TEST_F(ConfigParsing, NoMigrateSwitch) {
  EXPECT_FALSE(parse_config({"serve", "--no-migrate"}).migrate);
}

TEST_F(ConfigParsing, BadPortNamesTheSetting) {
  for (const char* bad : {"abc", "-1", "65536", "80x", "", "1e3"}) {
    const auto flag_error = error_of({"serve", "--port", bad});
    EXPECT_NE(flag_error.find("--port"), std::string::npos) << "'" << bad << "': " << flag_error;
  }
  EXPECT_EQ(parse_config({"--port", "0"}).port, 0);
  EXPECT_EQ(parse_config({"--port", "65535"}).port, 65535);

  set("CHATBOT_PORT", "http");
  const auto env_error = error_of({"serve"});
  EXPECT_NE(env_error.find("CHATBOT_PORT"), std::string::npos) << env_error;
  EXPECT_NE(env_error.find("http"), std::string::npos) << env_error;
}

TEST_F(ConfigParsing, BadEngineNamesTheSettingAndTheChoices) {
  const auto flag_error = error_of({"--engine", "gpt"});
  EXPECT_NE(flag_error.find("--engine"), std::string::npos) << flag_error;
  EXPECT_NE(flag_error.find("demo"), std::string::npos) << flag_error;
  EXPECT_NE(flag_error.find("openai"), std::string::npos) << flag_error;
  EXPECT_EQ(parse_config({"--engine", "openai"}).engine, "openai");

  set("CHATBOT_ENGINE", "llama");
  const auto env_error = error_of({});
  EXPECT_NE(env_error.find("CHATBOT_ENGINE"), std::string::npos) << env_error;
}

TEST_F(ConfigParsing, OtherBadValuesNameTheirSetting) {
  EXPECT_NE(error_of({"--database", "mysql://x"}).find("--database"), std::string::npos);
  EXPECT_NE(error_of({"--database", "sqlite:"}).find("--database"), std::string::npos);
  EXPECT_NE(error_of({"--log-level", "loud"}).find("--log-level"), std::string::npos);
  EXPECT_NE(error_of({"--log-format", "xml"}).find("--log-format"), std::string::npos);
  EXPECT_NE(error_of({"--ping-interval-s", "0"}).find("--ping-interval-s"), std::string::npos);
  EXPECT_NE(error_of({"--ping-interval-s", "soon"}).find("--ping-interval-s"),
            std::string::npos);
  EXPECT_NE(error_of({"--max-concurrent-runs", "0"}).find("--max-concurrent-runs"),
            std::string::npos);
  EXPECT_NE(error_of({"--max-body-bytes", "1"}).find("--max-body-bytes"), std::string::npos);
  EXPECT_DOUBLE_EQ(parse_config({"--ping-interval-s", "0.5"}).ping_interval_s, 0.5);
}

TEST_F(ConfigParsing, UnknownOptionsAndMissingValuesAreRefused) {
  EXPECT_NE(error_of({"--nope"}).find("--nope"), std::string::npos);
  EXPECT_NE(error_of({"serve", "--port"}).find("--port"), std::string::npos);
  EXPECT_NE(error_of({"serve", "--nope=1"}).find("--nope"), std::string::npos);
}

TEST_F(ConfigParsing, WebhookSettings) {
  auto c = parse_config({});
  EXPECT_TRUE(c.webhook_url.empty());
  EXPECT_TRUE(c.webhook_secret.empty());
  EXPECT_EQ(c.webhook_retry_base_ms, 1000);
  EXPECT_EQ(c.webhook_max_attempts, 20);
  EXPECT_DOUBLE_EQ(c.webhook_timeout_s, 10);

  set("CHATBOT_WEBHOOK_URL", "https://hooks.example.com/chat?x=1");
  set("CHATBOT_WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  set("CHATBOT_WEBHOOK_RETRY_BASE_MS", "50");
  c = parse_config({"--webhook-max-attempts", "3", "--webhook-timeout-s", "0.5"});
  EXPECT_EQ(c.webhook_url, "https://hooks.example.com/chat?x=1");
  EXPECT_EQ(c.webhook_secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  EXPECT_EQ(c.webhook_retry_base_ms, 50);
  EXPECT_EQ(c.webhook_max_attempts, 3);
  EXPECT_DOUBLE_EQ(c.webhook_timeout_s, 0.5);
  // A raw secret: its bytes are the key.
  EXPECT_EQ(parse_config({"--webhook-secret", "a-plain-secret-of-some-length"}).webhook_secret,
            "a-plain-secret-of-some-length");
}

TEST_F(ConfigParsing, BadWebhookSettingsAreRefusedNamingTheSetting) {
  for (const char* bad : {"ftp://x", "not a url", "http://", "https://h:0/", "http://a@b/",
                          "http://h/#frag", "http://h /"})
    EXPECT_NE(error_of({"--webhook-url", bad, "--webhook-secret", "0123456789abcdef"})
                  .find("invalid --webhook-url"),
              std::string::npos)
        << bad;
  EXPECT_NE(error_of({"--webhook-secret", "short"}).find("invalid --webhook-secret"),
            std::string::npos);
  EXPECT_NE(error_of({"--webhook-secret", "whsec_!!not base64!!"}).find("invalid --webhook-secret"),
            std::string::npos);
  EXPECT_NE(error_of({"--webhook-secret", "whsec_c2hvcnQ="}).find("16 to 1024 bytes"),
            std::string::npos);
  EXPECT_NE(error_of({"--webhook-retry-base-ms", "0"}).find("--webhook-retry-base-ms"),
            std::string::npos);
  EXPECT_NE(error_of({"--webhook-max-attempts", "0"}).find("--webhook-max-attempts"),
            std::string::npos);
  set("CHATBOT_WEBHOOK_URL", "gopher://x");
  EXPECT_NE(error_of({}).find("invalid CHATBOT_WEBHOOK_URL"), std::string::npos);
  set("CHATBOT_WEBHOOK_URL", "http://127.0.0.1:9/hook");
  // A URL without a secret: refused at start, saying what is missing.
  const auto e = error_of({});
  EXPECT_NE(e.find("CHATBOT_WEBHOOK_SECRET"), std::string::npos) << e;
  EXPECT_EQ(error_of({"migrate"}), "");
}

TEST(ConfigHelp, ListsEveryFlagWithItsVariable) {
  const auto help = help_text();
  for (const char* s : {"--port", "CHATBOT_PORT", "--database", "DATABASE_URL", "--engine",
                        "CHATBOT_ENGINE", "--no-migrate", "OPENAI_API_KEY"})
    EXPECT_NE(help.find(s), std::string::npos) << s;
}

}  // namespace
}  // namespace chat::infra
