#include "infrastructure/engines/sse_chunk_parser.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace chat::infra::engines {
namespace {

using Kind = StreamItem::Kind;

std::string delta(const std::string& content_json) {
  return "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
         "\"delta\":{\"content\":" + content_json + "},\"finish_reason\":null}]}\n\n";
}

// Feeds `body` in pieces of `step` bytes (0: all at once); returns everything reported.
std::vector<StreamItem> parse(const std::string& body, std::size_t step = 0, bool finish = true) {
  SseChunkParser p;
  std::vector<StreamItem> out;
  if (step == 0) {
    p.feed(body, out);
  } else {
    for (std::size_t i = 0; i < body.size(); i += step)
      p.feed(std::string_view(body).substr(i, step), out);
  }
  if (finish) p.finish(out);
  return out;
}

std::string text_of(const std::vector<StreamItem>& items) {
  std::string s;
  for (const auto& i : items)
    if (i.kind == Kind::text) s += i.text;
  return s;
}

TEST(SseChunkParser, ContentDeltasBecomeTextThenDone) {
  const std::string body = delta("\"Hel\"") + delta("\"lo\"") + "data: [DONE]\n\n";
  const auto items = parse(body);
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0].kind, Kind::text);
  EXPECT_EQ(items[0].text, "Hel");
  EXPECT_EQ(items[1].text, "lo");
  EXPECT_EQ(items[2].kind, Kind::done);
}

TEST(SseChunkParser, AnySplitOfTheBodyGivesTheSameText) {
  const std::string body = ": keep-alive\r\n\r\n" + delta("\"h\\u00e9llo \"") + delta("\"\xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x8E\x89\"") +
                           "event: message\r\ndata: [DONE]\r\n\r\n";
  for (std::size_t step : {0u, 1u, 2u, 3u, 5u, 7u, 64u}) {
    SCOPED_TRACE(step);
    const auto items = parse(body, step);
    EXPECT_EQ(text_of(items), "h\xC3\xA9llo \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x8E\x89");
    EXPECT_EQ(items.back().kind, Kind::done);
  }
}

TEST(SseChunkParser, CrLfSplitBetweenFeedsIsOneLineEnd) {
  SseChunkParser p;
  std::vector<StreamItem> out;
  p.feed("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\r", out);
  p.feed("\n\r", out);
  p.feed("\ndata: [DONE]\r\n\r\n", out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].text, "a");
  EXPECT_TRUE(p.done());
}

TEST(SseChunkParser, CharacterSplitAcrossDeltasComesOutWhole) {
  // "€" is E2 82 AC; a server that streams raw token bytes may cut it between two deltas.
  const std::string body = delta("\"price: \xE2\x82\"") + delta("\"\xAC" "5\"") + "data: [DONE]\n\n";
  const auto items = parse(body);
  std::vector<std::string> texts;
  for (const auto& i : items)
    if (i.kind == Kind::text) texts.push_back(i.text);
  ASSERT_EQ(texts.size(), 2u);
  EXPECT_EQ(texts[0], "price: ");
  EXPECT_EQ(texts[1], "\xE2\x82\xAC" "5");
}

TEST(SseChunkParser, BrokenCharactersBecomeReplacementCharacters) {
  // "\xE2\x82" is broken by the lead byte after it; that lead byte by the next delta's "\xC3";
  // which "b" breaks in turn. Every piece that comes out is valid UTF-8.
  const std::string body = delta("\"a\xE2\x82\xC3\"") + delta("\"\xC3\"") + delta("\"b\"") +
                           delta("\"\xF0\x9F\"") + "data: [DONE]\n\n";
  std::string all;
  for (const auto& i : parse(body))
    if (i.kind == Kind::text) all += i.text;
  EXPECT_EQ(all, "a\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" "b\xEF\xBF\xBD");
}

TEST(SseChunkParser, IncompleteUtf8Tail) {
  EXPECT_EQ(incomplete_utf8_tail(""), 0u);
  EXPECT_EQ(incomplete_utf8_tail("abc"), 0u);
  EXPECT_EQ(incomplete_utf8_tail("a\xC3"), 1u);
  EXPECT_EQ(incomplete_utf8_tail("a\xC3\xA9"), 0u);
  EXPECT_EQ(incomplete_utf8_tail("\xE2\x82"), 2u);
  EXPECT_EQ(incomplete_utf8_tail("\xF0\x9F\x8E"), 3u);
  EXPECT_EQ(incomplete_utf8_tail("\xF0\x9F\x8E\x89"), 0u);
  EXPECT_EQ(incomplete_utf8_tail("\xFF"), 0u);
}

TEST(SseChunkParser, ToolCallDeltasAccumulateByIndex) {
  const std::string body =
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":"
      "[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]}}]}\n\n"
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"ci\"}}]}}]}\n\n"
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"ty\\\":\\\"Paris\\\"}\"}}]}}]}\n\n"
      "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_2\",\"function\":{\"name\":\"shout\",\"arguments\":\"not json\"}}]}}]}\n\n"
      "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n"
      "data: [DONE]\n\n";
  const auto items = parse(body, 11);
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0].kind, Kind::tool_call);
  EXPECT_EQ(items[0].text, "get_weather");
  EXPECT_EQ(items[0].input_json, "{\"city\":\"Paris\"}");
  EXPECT_EQ(items[1].kind, Kind::tool_call);
  EXPECT_EQ(items[1].text, "shout");
  EXPECT_EQ(items[1].input_json, "{\"arguments\":\"not json\"}");
  EXPECT_EQ(items[2].kind, Kind::done);
}

TEST(SseChunkParser, ToolCallIsReportedWhenTheNextIndexStarts) {
  SseChunkParser p;
  std::vector<StreamItem> out;
  p.feed("data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"name\":\"a\",\"arguments\":\"{}\"}}]}}]}\n\n", out);
  EXPECT_TRUE(out.empty()) << "not complete yet";
  p.feed("data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":{\"name\":\"b\"}}]}}]}\n\n", out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].text, "a");
  EXPECT_EQ(out[0].input_json, "{}");
  p.feed("data: [DONE]\n\n", out);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[1].text, "b");
  EXPECT_EQ(out[1].input_json, "{}");
}

TEST(SseChunkParser, UsageIsReportedAsJson) {
  const std::string body = delta("\"x\"") +
                           "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":1,\"total_tokens\":10}}\n\n"
                           "data: [DONE]\n\n";
  const auto items = parse(body);
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[1].kind, Kind::usage);
  EXPECT_EQ(items[1].text, "{\"prompt_tokens\":9,\"completion_tokens\":1,\"total_tokens\":10}");
}

TEST(SseChunkParser, NullUsageAndOtherChoicesAreIgnored) {
  const std::string body =
      "data: {\"choices\":[{\"index\":1,\"delta\":{\"content\":\"other\"}},{\"index\":0,\"delta\":{\"content\":\"mine\"}}],\"usage\":null}\n\n"
      "data: [DONE]\n\n";
  const auto items = parse(body);
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].text, "mine");
}

TEST(SseChunkParser, MalformedJsonIsAChunkError) {
  SseChunkParser p;
  std::vector<StreamItem> out;
  EXPECT_THROW(p.feed("data: {this is not json\n\n", out), ChunkError);
}

TEST(SseChunkParser, WrongTypesAreChunkErrors) {
  for (const char* bad : {"data: [1,2]\n\n", "data: {\"choices\":{}}\n\n",
                          "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":5}}]}\n\n",
                          "data: {\"choices\":[{\"index\":0,\"delta\":[]}]}\n\n",
                          "data: {\"usage\":3}\n\n"}) {
    SCOPED_TRACE(bad);
    SseChunkParser p;
    std::vector<StreamItem> out;
    EXPECT_THROW(p.feed(bad, out), ChunkError);
  }
}

TEST(SseChunkParser, ErrorObjectInTheStreamIsReported) {
  SseChunkParser p;
  std::vector<StreamItem> out;
  try {
    p.feed("data: {\"error\":{\"message\":\"The server is overloaded\",\"type\":\"server_error\"}}\n\n", out);
    FAIL() << "expected StreamErrorReported";
  } catch (const StreamErrorReported& e) {
    EXPECT_STREQ(e.what(), "The server is overloaded");
  }
}

TEST(SseChunkParser, EndWithoutDoneIsAChunkError) {
  SseChunkParser p;
  std::vector<StreamItem> out;
  p.feed(delta("\"partial\""), out);
  EXPECT_THROW(p.finish(out), ChunkError);
  EXPECT_EQ(text_of(out), "partial");
}

TEST(SseChunkParser, LastEventWithoutBlankLineStillCounts) {
  const auto items = parse(delta("\"a\"") + "data: [DONE]");
  EXPECT_EQ(items.back().kind, Kind::done);
}

TEST(SseChunkParser, NothingAfterDoneIsParsed) {
  const auto items = parse("data: [DONE]\n\ndata: {garbage\n\n");
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].kind, Kind::done);
}

TEST(SseChunkParser, AnEndlessLineIsRefused) {
  SseChunkParser p;
  std::vector<StreamItem> out;
  const std::string piece(1 << 20, 'x');
  EXPECT_THROW(
      {
        for (int i = 0; i < 10; ++i) p.feed(piece, out);
      },
      ChunkError);
}

TEST(SseChunkParser, MultiLineDataIsJoined) {
  const auto items = parse("data: {\"choices\":[{\"index\":0,\n"
                           "data: \"delta\":{\"content\":\"joined\"}}]}\n\n"
                           "data: [DONE]\n\n");
  EXPECT_EQ(text_of(items), "joined");
}


// What a parser reports for a body fed whole: its items, then the error (kind and message).
std::string outcome(const std::string& body, bool fast) {
  SseChunkParser p;
  p.set_fast_path(fast);
  std::vector<StreamItem> out;
  std::string err;
  try {
    p.feed(body, out);
    p.finish(out);
  } catch (const ChunkError& e) {
    err = std::string("chunk: ") + e.what();
  } catch (const StreamErrorReported& e) {
    err = std::string("upstream: ") + e.what();
  }
  std::string r;
  for (const auto& i : out)
    r += std::to_string(static_cast<int>(i.kind)) + "|" + i.text + "|" + i.input_json + "\n";
  return r + err;
}

// The common-chunk path and the JSON value path report the same for every chunk: those the
// first one reads (plain content deltas) and those it leaves to the second (everything else).
TEST(SseChunkParser, TheCommonChunkPathAgreesWithTheJsonValuePath) {
  const std::vector<std::string> chunks = {
      R"({"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]})",
      R"({"id":"x","object":"chat.completion.chunk","created":1,"model":"m","system_fingerprint":"fp","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null})",
      R"({"choices":[{"delta":{"content":"no index"}}]})",
      R"({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})",
      R"({"choices":[{"index":0,"delta":{"content":null},"finish_reason":"length"}]})",
      R"({"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":7}]})",
      R"({"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":{"x":1}}]})",
      R"({"choices":[{"index":1,"delta":{"content":"other choice"}}]})",
      R"({"choices":[{"index":0.0,"delta":{"content":"double index"}}]})",
      R"({"choices":[{"index":"0","delta":{"content":"string index"}}]})",
      R"({"choices":[{"index":null,"delta":{"content":"null index"}}]})",
      R"({"choices":[{"index":0,"delta":{"content":"x"}},{"index":1,"delta":{"content":"y"}}]})",
      R"({"choices":[{"index":1,"delta":{"content":"y"}},{"index":0,"delta":{"content":"x"}}]})",
      R"({"choices":[null]})",
      R"({"choices":[5]})",
      R"({"choices":null})",
      R"({"choices":{}})",
      R"({"choices":"x"})",
      R"({"choices":[]})",
      R"({"choices":[{"index":0,"delta":null}]})",
      R"({"choices":[{"index":0,"delta":5}]})",
      R"({"choices":[{"index":0,"delta":{"content":5}}]})",
      R"({"choices":[{"index":0,"delta":{"content":["a"]}}]})",
      R"({"choices":[{"index":0,"delta":{"content":"a","content":"b"}}]})",
      R"({"choices":[{"index":0,"index":1,"delta":{"content":"dup index"}}]})",
      R"({"choices":[{"index":0,"delta":{"content":"a"}}],"choices":null})",
      R"({"choices":[{"index":0,"delta":{"content":"x","tool_calls":null}}]})",
      R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":"{}"}}]}}]})",
      R"({"choices":[{"index":0,"delta":{"content":"e\u0301 \ud83d\ude00 \"q\" \\ \n"}}]})",
      R"({"choices":[{"index":0,"delta":{"content":"\u0000nul"}}]})",
      "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\xE2\x82\"}}]}",
      R"({"choices":[{"index":0,"delta":{"content":"x","extra":{"deep":[[[[[[[[[[1]]]]]]]]]]}}}]})",
      R"({"error":null,"choices":[{"index":0,"delta":{"content":"x"}}]})",
      R"({"error":{"message":"boom"}})",
      R"({"error":"flat"})",
      R"({"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3},"choices":[]})",
      R"({"usage":5})",
      R"([1,2])",
      R"("a string")",
      R"(42)",
      R"(null)",
      R"({"choices":[{"index":0,"delta":{"content":"x"}}]} trailing)",
      R"({"choices":[{"index":0,"delta":{"content":"x"}}]}   )",
      R"({"choices":[{"index":0,"delta":{"content":"unterminated}}]})",
      R"({"choices":[{"index":0,"delta":{"content":"x"}}],})",
      R"({"choices":[{"index":-0,"delta":{"content":"minus zero"}}]})",
      R"({"choices":[{"index":18446744073709551615,"delta":{"content":"big"}}]})",
      R"({"choices":[{"index":0,"delta":{"content":"x"}}] /* comment */})",
  };
  std::vector<std::string> bodies;
  for (const auto& c : chunks) bodies.push_back("data: " + c + "\n\ndata: [DONE]\n\n");
  // A tool call pending when a plain chunk finishes the choice.
  bodies.push_back("data: " + chunks[27] + "\n\ndata: " + chunks[3] + "\n\ndata: " + chunks[0] +
                   "\n\ndata: [DONE]\n\n");
  // A character split across two plain chunks.
  bodies.push_back(delta("\"\xF0\x9F\"") + delta("\"\x98\x80!\"") + "data: [DONE]\n\n");
  for (const auto& b : bodies) EXPECT_EQ(outcome(b, true), outcome(b, false)) << b;
  // The plain ones did take the fast path (else this compares the value path with itself).
  for (std::size_t i : {0, 1, 2, 3, 4, 5, 26, 28, 29, 30, 31, 32, 42, 45}) {
    SseChunkParser p;
    std::vector<StreamItem> out;
    p.feed(bodies[i], out);
    EXPECT_EQ(p.fast_chunks(), 1u) << chunks[i];
  }

  // Random damage to a real chunk: bytes replaced, dropped or repeated.
  std::mt19937 rng(20261125);
  const std::string base = chunks[1];
  const std::string alphabet = "{}[]\":,0123456789 -.eEnultrufasx\\";
  for (int i = 0; i < 20000; ++i) {
    std::string c = base;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      const std::size_t at = rng() % c.size();
      switch (rng() % 3) {
        case 0: c[at] = alphabet[rng() % alphabet.size()]; break;
        case 1: c.erase(at, 1); break;
        default: c.insert(at, 1, c[at]); break;
      }
    }
    const std::string b = "data: " + c + "\n\ndata: [DONE]\n\n";
    ASSERT_EQ(outcome(b, true), outcome(b, false)) << b;
  }
}

}  // namespace
}  // namespace chat::infra::engines
