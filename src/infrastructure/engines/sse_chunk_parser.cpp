#include "sse_chunk_parser.hpp"

#include <cstring>

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/parser.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "domain/json_text.hpp"

namespace chat::infra::engines {
namespace json = boost::json;
namespace {

// A short, printable excerpt of a payload for error messages.
std::string excerpt(std::string_view s) {
  constexpr std::size_t kMax = 120;
  std::string out;
  for (char c : s.substr(0, kMax)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7f) ? '?' : c;
  }
  if (s.size() > kMax) out += "...";
  return out;
}

std::string input_from_arguments(const std::string& raw) {
  std::string trimmed = raw;
  while (!trimmed.empty() && (trimmed.back() == ' ' || trimmed.back() == '\n' ||
                              trimmed.back() == '\r' || trimmed.back() == '\t'))
    trimmed.pop_back();
  if (trimmed.find_first_not_of(" \t\r\n") == std::string::npos) return "{}";
  boost::system::error_code ec;
  json::value v = json::parse(trimmed, ec);
  if (!ec && v.is_object()) return json::serialize(v);
  json::object o;
  o["arguments"] = raw;
  return json::serialize(o);
}

std::string error_text(const json::value& err) {
  if (err.is_string()) return std::string(err.get_string());
  if (err.is_object()) {
    const auto& o = err.get_object();
    if (auto it = o.find("message"); it != o.end() && it->value().is_string())
      return std::string(it->value().get_string());
  }
  return json::serialize(err);
}

}  // namespace

std::size_t incomplete_utf8_tail(std::string_view s) {
  // Look back at most 3 bytes for the lead byte of the last character.
  const std::size_t n = s.size();
  for (std::size_t back = 1; back <= 3 && back <= n; ++back) {
    const auto c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking
    std::size_t need = 0;
    if ((c & 0xE0) == 0xC0) need = 2;
    else if ((c & 0xF0) == 0xE0) need = 3;
    else if ((c & 0xF8) == 0xF0) need = 4;
    else return 0;  // ASCII or an invalid byte: nothing to wait for
    return back < need ? back : 0;
  }
  return 0;
}

namespace {

// The common chunk, read without building a JSON value: one choice (index 0 or none) whose
// delta holds at most `content` (a string or null) and unknown keys, no non-null `error`,
// `usage` or `tool_calls`. The parse still validates the whole chunk. Anything else (or any
// error) stops it, and the chunk goes through the JSON value path below, which decides what it
// means and words the error: so both paths report the same for every input (the
// fuzz_sse_chunks target compares them).
class CommonChunk {
 public:
  static constexpr std::size_t max_object_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_array_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_key_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_string_size = static_cast<std::size_t>(-1);

  std::string content;
  bool has_content = false;
  bool finished = false;  ///< a non-null finish_reason

  bool on_document_begin(boost::system::error_code&) {
    depth_ = 0;
    key_ = Key::none;
    key_text_.clear();
    content.clear();
    has_content = finished = false;
    seen_ = 0;
    choices_ = 0;
    string_ = Slot::none;
    deep_ = 0;
    return true;
  }
  bool on_document_end(boost::system::error_code&) { return true; }

  bool on_object_begin(boost::system::error_code& ec) {
    Where w = Where::other;
    if (depth_ == 0) {
      w = Where::top;
    } else {
      switch (value_at()) {
        case Slot::choice: w = Where::choice; break;
        case Slot::delta: w = Where::delta; break;
        case Slot::skip: break;
        default: return stop(ec);  // an object where a choices array, index, content... goes
      }
    }
    return push(w, ec);
  }
  bool on_object_end(std::size_t, boost::system::error_code&) { return pop(); }
  bool on_array_begin(boost::system::error_code& ec) {
    if (depth_ == 0) return stop(ec);
    const Slot s = value_at();
    if (s == Slot::choices) return push(Where::choices, ec);
    if (s != Slot::skip) return stop(ec);
    return push(Where::other, ec);
  }
  bool on_array_end(std::size_t, boost::system::error_code&) { return pop(); }

  bool on_key_part(json::string_view s, std::size_t, boost::system::error_code&) {
    key_text_.append(s.data(), s.size());
    return true;
  }
  bool on_key(json::string_view s, std::size_t, boost::system::error_code& ec) {
    key_text_.append(s.data(), s.size());
    const Where w = where();
    const std::string_view k = key_text_;
    key_ = Key::other;
    if (w == Where::top) {
      if (k == "choices") key_ = Key::choices;
      else if (k == "error") key_ = Key::error;
      else if (k == "usage") key_ = Key::usage;
    } else if (w == Where::choice) {
      if (k == "index") key_ = Key::index;
      else if (k == "delta") key_ = Key::delta;
      else if (k == "finish_reason") key_ = Key::finish_reason;
    } else if (w == Where::delta) {
      if (k == "content") key_ = Key::content;
      else if (k == "tool_calls") key_ = Key::tool_calls;
    }
    key_text_.clear();
    if (key_ != Key::other) {  // a key that counts, twice in one object: let the values decide
      const unsigned bit = 1u << static_cast<unsigned>(key_);
      if (seen_ & bit) return stop(ec);
      seen_ |= bit;
    }
    return true;
  }

  bool on_string_part(json::string_view s, std::size_t, boost::system::error_code& ec) {
    if (depth_ == 0) return stop(ec);
    if (string_ == Slot::none) string_ = value_at();
    if (string_ == Slot::content) content.append(s.data(), s.size());
    else if (string_ == Slot::finish) finished = true;
    else if (string_ != Slot::skip) return stop(ec);
    return true;
  }
  bool on_string(json::string_view s, std::size_t n, boost::system::error_code& ec) {
    if (!on_string_part(s, n, ec)) return false;
    if (string_ == Slot::content) has_content = true;
    string_ = Slot::none;
    return true;
  }

  bool on_number_part(json::string_view, boost::system::error_code&) { return true; }
  bool on_int64(std::int64_t v, json::string_view, boost::system::error_code& ec) {
    return scalar(ec, v == 0);
  }
  bool on_uint64(std::uint64_t v, json::string_view, boost::system::error_code& ec) {
    return scalar(ec, v == 0);
  }
  bool on_double(double, json::string_view, boost::system::error_code& ec) { return scalar(ec, false); }
  bool on_bool(bool, boost::system::error_code& ec) { return scalar(ec, false); }
  bool on_null(boost::system::error_code& ec) {
    if (depth_ == 0) return stop(ec);
    switch (value_at()) {  // null: as if the key were absent, but for an index or a choice
      case Slot::index:
      case Slot::choice:
      case Slot::refuse: return stop(ec);
      default: return true;
    }
  }
  bool on_comment_part(json::string_view, boost::system::error_code&) { return true; }
  bool on_comment(json::string_view, boost::system::error_code&) { return true; }

 private:
  enum class Where : unsigned char { top, choices, choice, delta, other };
  enum class Key : unsigned char { none, choices, error, usage, index, delta, finish_reason, content, tool_calls, other };
  // What the value starting now is, from where it is and its key.
  // `nullable`: error, usage, tool_calls, which stay on this path only when null; `refuse`: a
  // second choice.
  enum class Slot : unsigned char { none, skip, choices, choice, index, delta, finish, content, nullable, refuse };

  Where where() const { return depth_ == 0 ? Where::other : stack_[depth_ - 1]; }
  Slot value_at() {
    const Where w = where();
    const Key k = key_;
    key_ = Key::none;
    if (w == Where::choices) return ++choices_ == 1 ? Slot::choice : Slot::refuse;
    switch (k) {
      case Key::choices: return Slot::choices;
      case Key::index: return Slot::index;
      case Key::delta: return Slot::delta;
      case Key::finish_reason: return Slot::finish;
      case Key::content: return Slot::content;
      case Key::error:
      case Key::usage:
      case Key::tool_calls: return Slot::nullable;
      default: return Slot::skip;
    }
  }
  // A number or boolean: fine anywhere but where a key that counts wants another type.
  bool scalar(boost::system::error_code& ec, bool zero) {
    if (depth_ == 0) return stop(ec);
    const bool index = key_ == Key::index;
    const Slot s = value_at();
    if (s == Slot::skip || (index && zero)) return true;
    if (s == Slot::finish) {
      finished = true;
      return true;
    }
    return stop(ec);
  }
  bool push(Where w, boost::system::error_code& ec) {
    if (depth_ == kDepth) {
      if (w != Where::other) return stop(ec);
      ++deep_;  // deeper than anything that counts: only counted
      return true;
    }
    stack_[depth_++] = w;
    return true;
  }
  bool pop() {
    if (deep_ > 0) --deep_;
    else --depth_;
    key_ = Key::none;
    return true;
  }
  bool stop(boost::system::error_code& ec) {
    ec = json::error::syntax;  // not read here: the JSON value path decides
    return false;
  }

  static constexpr std::size_t kDepth = 8;
  Where stack_[kDepth] = {};
  std::size_t depth_ = 0;
  std::size_t deep_ = 0;
  Key key_ = Key::none;
  Slot string_ = Slot::none;
  std::string key_text_;
  unsigned seen_ = 0;
  int choices_ = 0;
};

}  // namespace

struct SseChunkParser::Json {
  static json::parse_options options() {
    json::parse_options o;
    o.allow_invalid_utf8 = true;  // a character split across deltas is glued back below
    return o;
  }
  // In the order they depend on each other: the resource uses the buffer, values use both.
  unsigned char buffer[4096];
  json::monotonic_resource memory{buffer, sizeof buffer};
  json::parser parser{json::storage_ptr(), options()};
  json::basic_parser<CommonChunk> common{options()};
};

SseChunkParser::SseChunkParser() : json_(std::make_unique<Json>()) {}
SseChunkParser::~SseChunkParser() = default;

void SseChunkParser::feed(std::string_view bytes, std::vector<StreamItem>& out) {
  const char* const p = bytes.data();
  const std::size_t n = bytes.size();
  std::size_t start = 0;
  if (skip_lf_ && n > 0) {  // the last feed ended with a CR: a LF now is its second half
    skip_lf_ = false;
    if (p[0] == '\n') start = 1;
  }
  while (start < n) {
    // The line ends at the first CR or LF (memchr for each: most lines hold no CR).
    const void* lf = std::memchr(p + start, '\n', n - start);
    const std::size_t lf_at = lf ? static_cast<std::size_t>(static_cast<const char*>(lf) - p) : n;
    const void* cr = std::memchr(p + start, '\r', lf_at - start);
    const std::size_t end = cr ? static_cast<std::size_t>(static_cast<const char*>(cr) - p) : lf_at;
    if (end == n) break;  // the rest is the start of a line
    const std::string_view piece(p + start, end - start);
    if (line_.empty()) {
      on_line(piece, out);  // the whole line is in `bytes`: no copy
    } else {
      line_.append(piece);
      std::string line;
      line.swap(line_);
      on_line(line, out);
    }
    start = end + 1;
    if (p[end] == '\r') {
      if (start == n) skip_lf_ = true;    // its LF, if any, comes with the next bytes
      else if (p[start] == '\n') ++start;  // CRLF
    }
  }
  line_.append(bytes.data() + start, bytes.size() - start);
  if (line_.size() > kMaxLine)
    throw ChunkError("malformed chunk: a line longer than " + std::to_string(kMaxLine) +
                     " bytes");
}

void SseChunkParser::finish(std::vector<StreamItem>& out) {
  if (!line_.empty()) {
    std::string line;
    line.swap(line_);
    on_line(line, out);
  }
  dispatch(out);
  if (!done_) {
    flush_text(out);
    throw ChunkError("the stream ended without [DONE]");
  }
}

void SseChunkParser::on_line(std::string_view line, std::vector<StreamItem>& out) {
  if (line.empty()) {
    dispatch(out);
    return;
  }
  if (line.front() == ':') return;  // a comment (keep-alive)
  const auto colon = line.find(':');
  const std::string_view field = line.substr(0, colon);
  std::string_view value = colon == std::string_view::npos ? std::string_view{} : line.substr(colon + 1);
  if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  if (field != "data") return;  // event, id, retry and unknown fields carry nothing for us
  if (has_data_) data_ += '\n';
  data_.append(value);
  has_data_ = true;
}

void SseChunkParser::dispatch(std::vector<StreamItem>& out) {
  if (!has_data_) return;
  has_data_ = false;
  struct Clear {
    std::string& s;
    ~Clear() { s.clear(); }  // keeps the capacity for the next event
  } clear{data_};
  if (done_) return;
  on_data(data_, out);
}

void SseChunkParser::on_data(std::string_view data, std::vector<StreamItem>& out) {
  std::string_view trimmed = data;
  while (!trimmed.empty() && (trimmed.back() == ' ' || trimmed.back() == '\t'))
    trimmed.remove_suffix(1);
  if (trimmed == "[DONE]") {
    flush_tools_below(static_cast<std::size_t>(-1), out);
    flush_text(out);
    done_ = true;
    out.push_back({StreamItem::Kind::done, {}, {}});
    return;
  }

  if (fast_path_) {
    auto& fp = json_->common;
    fp.reset();
    boost::system::error_code fec;
    const std::size_t used = fp.write_some(false, data.data(), data.size(), fec);
    if (!fec && fp.done() && used == data.size()) {
      CommonChunk& c = fp.handler();
      ++fast_chunks_;
      if (c.has_content) add_text(c.content, out);
      if (c.finished) flush_tools_below(static_cast<std::size_t>(-1), out);
      return;
    }
  }

  boost::system::error_code ec;
  json_->memory.release();  // the previous chunk's value is gone
  json_->parser.reset(json::storage_ptr(&json_->memory));
  json_->parser.write(data.data(), data.size(), ec);
  json::value v = ec ? json::value() : json_->parser.release();
  if (ec) throw ChunkError("malformed chunk (" + ec.message() + "): " + excerpt(data));
  if (!v.is_object()) throw ChunkError("malformed chunk (not a JSON object): " + excerpt(data));
  const auto& obj = v.get_object();

  if (auto it = obj.find("error"); it != obj.end() && !it->value().is_null())
    throw StreamErrorReported(error_text(it->value()));

  if (auto it = obj.find("choices"); it != obj.end() && !it->value().is_null()) {
    if (!it->value().is_array())
      throw ChunkError("malformed chunk (choices is not an array): " + excerpt(data));
    const auto& choices = it->value().get_array();
    const json::object* choice = nullptr;
    for (std::size_t i = 0; i < choices.size(); ++i) {
      if (!choices[i].is_object())
        throw ChunkError("malformed chunk (a choice is not an object): " + excerpt(data));
      const auto& c = choices[i].get_object();
      const auto idx = c.find("index");
      const bool first = idx == c.end() ? i == 0
                                        : (idx->value().is_int64() && idx->value().get_int64() == 0) ||
                                              (idx->value().is_uint64() && idx->value().get_uint64() == 0);
      if (first) {
        choice = &c;
        break;
      }
    }
    if (choice) {
      if (auto d = choice->find("delta"); d != choice->end() && !d->value().is_null()) {
        if (!d->value().is_object())
          throw ChunkError("malformed chunk (delta is not an object): " + excerpt(data));
        const auto& delta = d->value().get_object();
        if (auto ct = delta.find("content"); ct != delta.end() && !ct->value().is_null()) {
          if (!ct->value().is_string())
            throw ChunkError("malformed chunk (delta.content is not a string): " + excerpt(data));
          add_text(ct->value().get_string(), out);
        }
        if (auto tc = delta.find("tool_calls"); tc != delta.end() && !tc->value().is_null()) {
          if (!tc->value().is_array())
            throw ChunkError("malformed chunk (tool_calls is not an array): " + excerpt(data));
          const auto& calls = tc->value().get_array();
          for (std::size_t i = 0; i < calls.size(); ++i) {
            if (!calls[i].is_object())
              throw ChunkError("malformed chunk (a tool call is not an object): " + excerpt(data));
            const auto& call = calls[i].get_object();
            std::size_t index = i;
            if (auto ix = call.find("index"); ix != call.end()) {
              if (ix->value().is_int64() && ix->value().get_int64() >= 0)
                index = static_cast<std::size_t>(ix->value().get_int64());
              else if (ix->value().is_uint64())
                index = static_cast<std::size_t>(ix->value().get_uint64());
              else
                throw ChunkError("malformed chunk (tool call index): " + excerpt(data));
            }
            flush_tools_below(index, out);
            auto& tool = tools_[index];
            if (auto fn = call.find("function"); fn != call.end() && fn->value().is_object()) {
              const auto& f = fn->value().get_object();
              if (auto nm = f.find("name"); nm != f.end() && nm->value().is_string())
                tool.name += std::string(nm->value().get_string());
              if (auto args = f.find("arguments"); args != f.end() && !args->value().is_null()) {
                if (!args->value().is_string())
                  throw ChunkError("malformed chunk (function.arguments is not a string): " +
                                   excerpt(data));
                tool.arguments += std::string(args->value().get_string());
              }
            }
          }
        }
      }
      if (auto fr = choice->find("finish_reason"); fr != choice->end() && !fr->value().is_null())
        flush_tools_below(static_cast<std::size_t>(-1), out);
    }
  }

  if (auto it = obj.find("usage"); it != obj.end() && !it->value().is_null()) {
    if (!it->value().is_object())
      throw ChunkError("malformed chunk (usage is not an object): " + excerpt(data));
    out.push_back({StreamItem::Kind::usage, json::serialize(it->value()), {}});
  }
}

void SseChunkParser::add_text(std::string_view piece, std::vector<StreamItem>& out) {
  std::string text = std::move(carry_);
  carry_.clear();
  text.append(piece);
  const std::size_t tail = incomplete_utf8_tail(text);
  if (tail > 0) {
    carry_ = text.substr(text.size() - tail);
    text.resize(text.size() - tail);
  }
  // A byte that cannot be where it is (a lead byte whose character a later byte broke, a stray
  // continuation) becomes U+FFFD here, so every piece is valid UTF-8 on its own.
  if (text.empty()) return;
  if (!domain::is_valid_utf8(text)) text = domain::sanitize_utf8(text);
  out.push_back({StreamItem::Kind::text, std::move(text), {}});
}

void SseChunkParser::flush_text(std::vector<StreamItem>& out) {
  // What is left can never be completed.
  if (carry_.empty()) return;
  out.push_back({StreamItem::Kind::text, "\xEF\xBF\xBD", {}});
  carry_.clear();
}

void SseChunkParser::flush_tools_below(std::size_t index, std::vector<StreamItem>& out) {
  while (!tools_.empty() && tools_.begin()->first < index) {
    auto node = tools_.extract(tools_.begin());
    ToolCall& t = node.mapped();
    out.push_back({StreamItem::Kind::tool_call, t.name.empty() ? std::string("unnamed") : t.name,
                   input_from_arguments(t.arguments)});
  }
}

}  // namespace chat::infra::engines
