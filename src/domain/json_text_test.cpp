// json_text: JSON string literals for event payloads, and UTF-8 repair.

#include "domain/json_text.hpp"

#include <gtest/gtest.h>

#include <iterator>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

namespace chat::domain {
namespace {

const std::string kFffd = "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER

// True if `s` is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF).
bool valid_utf8(const std::string& s) { return sanitize_utf8(s) == s; }

/// What a strict JSON parser reads back from json_string(s), or nullopt if it is not JSON.
std::optional<std::string> parse_back(const std::string& literal) {
  boost::system::error_code ec;
  auto v = boost::json::parse(literal, ec);
  if (ec || !v.is_string()) return std::nullopt;
  return std::string(v.as_string());
}

TEST(JsonText, EscapesQuotesBackslashesAndControls) {
  EXPECT_EQ(json_string(""), "\"\"");
  EXPECT_EQ(json_string("plain text"), "\"plain text\"");
  EXPECT_EQ(json_string("a\"b\\c"), R"("a\"b\\c")");
  EXPECT_EQ(json_string("\n\r\t\b\f"), R"("\n\r\t\b\f")");
  EXPECT_EQ(json_string(std::string("\x01\x1f", 2)), R"("\u0001\u001f")");
  EXPECT_EQ(json_string(std::string("a\0b", 3)), R"("a\u0000b")");
  // Not escaped: '/', DEL, and non-ASCII.
  EXPECT_EQ(json_string("a/b\x7f"), "\"a/b\x7f\"");
  EXPECT_EQ(json_string("caf\xC3\xA9 \xE2\x9C\x93 \xF0\x9F\x98\x80"),
            "\"caf\xC3\xA9 \xE2\x9C\x93 \xF0\x9F\x98\x80\"");
}

TEST(JsonText, AppendAddsToTheEnd) {
  std::string out = "{\"text\":";
  append_json_string(out, "say \"hi\"");
  out += "}";
  EXPECT_EQ(out, R"({"text":"say \"hi\""})");
}

TEST(JsonText, InvalidUtf8BecomesReplacementCharacters) {
  EXPECT_EQ(json_string("a\xFF" "b"), "\"a" + kFffd + "b\"");
  EXPECT_EQ(sanitize_utf8("a\xFF" "b"), "a" + kFffd + "b");
  EXPECT_EQ(sanitize_utf8("\x80"), kFffd);  // a lone continuation byte
  // Every malformed sequence is replaced, and what follows is kept.
  const std::vector<std::string> malformed{
      "\xC3",                  // truncated 2-byte sequence
      "\xE2\x9C",              // truncated 3-byte sequence
      "\xF0\x9F\x98",          // truncated 4-byte sequence
      "\xC0\xAF",              // overlong '/'
      "\xE0\x80\xAF",          // overlong '/'
      "\xED\xA0\x80",          // a UTF-16 surrogate
      "\xF4\x90\x80\x80",      // past U+10FFFF
      "\xF8\x88\x80\x80\x80",  // 5-byte form
  };
  for (const std::string& bad : malformed) {
    const std::string out = sanitize_utf8(bad + "ok");
    EXPECT_TRUE(valid_utf8(out));
    EXPECT_NE(out.find(kFffd), std::string::npos) << out;
    EXPECT_EQ(out.substr(out.size() - 2), "ok");
    EXPECT_EQ(out.find('\x80'), std::string::npos);
    const auto back = parse_back(json_string(bad + "ok"));
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, out);
  }
}

TEST(JsonText, ValidUtf8IsKeptAsIs) {
  // The smallest and largest code point of each length.
  const std::string s =
      "\x7f \xC2\x80 \xDF\xBF \xE0\xA0\x80 \xEF\xBF\xBF \xF0\x90\x80\x80 \xF4\x8F\xBF\xBF";
  EXPECT_EQ(sanitize_utf8(s), s);
  EXPECT_EQ(parse_back(json_string(s)), std::optional<std::string>(s));
}

TEST(JsonText, AnyBytesGiveJsonThatParsesBackToTheRepairedText) {
  std::mt19937 rng(20261124);
  std::uniform_int_distribution<int> len(0, 24);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> ascii(0, 127);
  for (int i = 0; i < 3000; ++i) {
    std::string s;
    const int n = len(rng);
    for (int k = 0; k < n; ++k)
      s.push_back(static_cast<char>(i % 2 ? byte(rng) : ascii(rng)));
    const std::string literal = json_string(s);
    const auto back = parse_back(literal);
    ASSERT_TRUE(back.has_value()) << "not JSON: " << literal;
    EXPECT_EQ(*back, sanitize_utf8(s));
    if (valid_utf8(s)) {
      EXPECT_EQ(*back, s);
    }
  }
}

TEST(JsonText, TheChecksAgreeWithTheRepairs) {
  // is_valid_utf8 / is_storable_text say whether sanitize_utf8 / storable_text would change s.
  std::mt19937 rng(20261125);
  std::uniform_int_distribution<int> len(0, 12);
  const std::string pieces[] = {"a", "\0", "\x80", "\xC3", "\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80",
                                "\xED\xA0\x80", "\xC0\xAF", "\xFF", "\xF4\x90\x80\x80"};
  for (int i = 0; i < 20000; ++i) {
    std::string s;
    for (int k = len(rng); k > 0; --k) s += pieces[rng() % std::size(pieces)];
    EXPECT_EQ(is_valid_utf8(s), sanitize_utf8(s) == s) << i;
    EXPECT_EQ(is_storable_text(s), storable_text(s) == s) << i;
  }
  EXPECT_TRUE(is_storable_text(""));
  EXPECT_FALSE(is_storable_text(std::string("a\0b", 3)));
  EXPECT_TRUE(is_valid_utf8(std::string("a\0b", 3)));
}

TEST(JsonText, StorableTextHasNoNul) {
  EXPECT_EQ(storable_text(std::string("a\0b\xFF", 4)), "a" + kFffd + "b" + kFffd);
  EXPECT_EQ(storable_text("plain"), "plain");
}

TEST(JsonText, NulEscapesInsideStringsAreReplaced) {
  EXPECT_EQ(replace_json_nul_escapes(R"({"a\u0000":"x\u0000y","n":0})"),
            R"({"a\ufffd":"x\ufffdy","n":0})");
  // An escaped backslash followed by "u0000" is text, not an escape.
  EXPECT_EQ(replace_json_nul_escapes(R"(["\\u0000"])"), R"(["\\u0000"])");
  EXPECT_EQ(replace_json_nul_escapes(R"(["\"\u0000"])"), R"(["\"\ufffd"])");
  EXPECT_EQ(replace_json_nul_escapes("u0000"), "u0000");
}

}  // namespace
}  // namespace chat::domain
