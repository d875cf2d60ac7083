#pragma once
/// Incremental parser of an OpenAI-compatible Chat Completions stream (`text/event-stream`,
/// `data: {...}` events ending with `data: [DONE]`).
///
/// Pure: no I/O, no clock, no globals. Feed it the response body in pieces split anywhere (in
/// the middle of a line, of a CRLF, of a multi-byte character); it reports what they complete:
/// - `text`: a piece of `choices[0].delta.content`, always valid UTF-8 (a character split
///   across deltas is held back until its last byte arrives; a byte that cannot be where it is,
///   and a character whose end never came, become U+FFFD);
/// - `tool_call`: a complete tool call (its `tool_calls` deltas accumulated by index), with the
///   function name and its arguments as a JSON object (the parsed arguments when they are a JSON
///   object, else `{"arguments":"<raw>"}`); reported when a later index starts, when the choice
///   finishes, or at `[DONE]`;
/// - `usage`: the `usage` object of a chunk, as compact JSON;
/// - `done`: `[DONE]` arrived. Anything after it is ignored.
///
/// Thread safety: none (one parser per response).

#include <cstddef>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace chat::infra::engines {

/// The stream is not what an OpenAI-compatible server sends (the message says why).
struct ChunkError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// The upstream reported an error inside the stream (`data: {"error":{"message":...}}`).
struct StreamErrorReported : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct StreamItem {
  enum class Kind { text, tool_call, usage, done };
  Kind kind = Kind::text;
  /// text: the piece of reply; tool_call: the function name; usage: the usage object (JSON).
  std::string text;
  /// tool_call: the input as a JSON object.
  std::string input_json;
};

class SseChunkParser {
 public:
  SseChunkParser();
  ~SseChunkParser();
  SseChunkParser(const SseChunkParser&) = delete;
  SseChunkParser& operator=(const SseChunkParser&) = delete;

  /// A line longer than this is refused (a stream that never sends a newline cannot grow
  /// memory without bound).
  static constexpr std::size_t kMaxLine = 8u << 20;

  /// Parses `bytes`, appending what they complete to `out`. Throws ChunkError on a malformed
  /// chunk and StreamErrorReported when the upstream sends an error object.
  void feed(std::string_view bytes, std::vector<StreamItem>& out);

  /// The body ended. Dispatches a last event that lacked its blank line, then throws
  /// ChunkError if `[DONE]` never came.
  void finish(std::vector<StreamItem>& out);

  bool done() const { return done_; }
  /// Off: every chunk is read as a JSON value (tests compare both ways; on by default).
  void set_fast_path(bool on) { fast_path_ = on; }
  /// Chunks read by the fast path so far.
  std::size_t fast_chunks() const { return fast_chunks_; }

 private:
  struct ToolCall {
    std::string name;
    std::string arguments;
  };

  void on_line(std::string_view line, std::vector<StreamItem>& out);
  void dispatch(std::vector<StreamItem>& out);
  void on_data(std::string_view data, std::vector<StreamItem>& out);
  void add_text(std::string_view piece, std::vector<StreamItem>& out);
  void flush_text(std::vector<StreamItem>& out);
  void flush_tools_below(std::size_t index, std::vector<StreamItem>& out);

  std::string line_;
  bool skip_lf_ = false;  ///< the last byte was a CR: a LF right after it ends no new line
  std::string data_;
  bool has_data_ = false;
  bool done_ = false;
  bool fast_path_ = true;
  std::size_t fast_chunks_ = 0;
  std::string carry_;  ///< the first bytes of a UTF-8 character whose rest has not come yet
  std::map<std::size_t, ToolCall> tools_;
  struct Json;  ///< a JSON parser and its memory, reused chunk after chunk (no allocation per chunk)
  std::unique_ptr<Json> json_;
};

/// How many bytes at the end of `s` form the start of a UTF-8 character that is not complete
/// (0 to 3). Exposed for unit tests.
std::size_t incomplete_utf8_tail(std::string_view s);

}  // namespace chat::infra::engines
