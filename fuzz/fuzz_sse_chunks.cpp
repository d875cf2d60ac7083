// The OpenAI stream parser fed in random splits. The first bytes of the input choose where the
// body is cut; the rest is the body. Whatever the cuts, the parser must report exactly what it
// reports when fed the whole body at once (same items, same error), and every text piece must
// be valid UTF-8. And the common-chunk fast path must report exactly what the JSON value path
// reports (same items in the same pieces, same error).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "domain/json_text.hpp"
#include "infrastructure/engines/sse_chunk_parser.hpp"

namespace {

using chat::infra::engines::ChunkError;
using chat::infra::engines::SseChunkParser;
using chat::infra::engines::StreamErrorReported;
using chat::infra::engines::StreamItem;

struct Outcome {
  std::vector<StreamItem> items;
  std::string error;  ///< "chunk: ..." or "upstream: ...", empty when the body was accepted
};

Outcome parse(std::string_view body, const std::vector<std::size_t>& cuts, bool fast = true) {
  Outcome o;
  SseChunkParser p;
  p.set_fast_path(fast);
  try {
    std::size_t at = 0;
    for (std::size_t c : cuts) {
      if (c <= at || c >= body.size()) continue;
      p.feed(body.substr(at, c - at), o.items);
      at = c;
    }
    p.feed(body.substr(at), o.items);
    p.finish(o.items);
  } catch (const ChunkError& e) {
    o.error = std::string("chunk: ") + e.what();
  } catch (const StreamErrorReported& e) {
    o.error = std::string("upstream: ") + e.what();
  }
  return o;
}

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz invariant broken: %s\n", what.c_str());
  std::abort();
}

// Text pieces may split a reply anywhere but inside a character, so concatenate consecutive
// text items before comparing.
std::vector<std::pair<int, std::string>> normalized(const std::vector<StreamItem>& items) {
  std::vector<std::pair<int, std::string>> out;
  for (const auto& it : items) {
    const int k = static_cast<int>(it.kind);
    if (it.kind == StreamItem::Kind::text && !out.empty() && out.back().first == k)
      out.back().second += it.text;
    else
      out.emplace_back(k, it.text + "\x01" + it.input_json);
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::size_t ncuts = data[0] % 8;
  if (size < 1 + ncuts * 2) return 0;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1 + ncuts * 2,
                              size - 1 - ncuts * 2);
  std::vector<std::size_t> cuts;
  for (std::size_t i = 0; i < ncuts; ++i)
    cuts.push_back((static_cast<std::size_t>(data[1 + 2 * i]) << 8 | data[2 + 2 * i]) %
                   (body.size() + 1));
  std::sort(cuts.begin(), cuts.end());

  const Outcome whole = parse(body, {});
  const Outcome value_path = parse(body, {}, false);
  if (value_path.error != whole.error)
    fail("error '" + whole.error + "' fast path vs '" + value_path.error + "' value path");
  if (value_path.items.size() != whole.items.size()) fail("item count differs on the fast path");
  for (std::size_t i = 0; i < whole.items.size(); ++i)
    if (whole.items[i].kind != value_path.items[i].kind ||
        whole.items[i].text != value_path.items[i].text ||
        whole.items[i].input_json != value_path.items[i].input_json)
      fail("an item differs on the fast path");
  std::vector<std::size_t> every;  // one byte at a time: the worst split there is
  if (body.size() <= 512)
    for (std::size_t i = 1; i < body.size(); ++i) every.push_back(i);
  for (const auto* split : {&cuts, &every}) {
    const Outcome o = parse(body, *split);
    if (o.error != whole.error)
      fail("error '" + o.error + "' split vs '" + whole.error + "' whole");
    if (normalized(o.items) != normalized(whole.items)) fail("items differ when split");
    for (const auto& it : o.items)
      if (it.kind == StreamItem::Kind::text && chat::domain::sanitize_utf8(it.text) != it.text)
        fail("a text piece is not valid UTF-8");
  }
  return 0;
}
