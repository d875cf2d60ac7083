#include "demo_engine.hpp"

#include <cstdint>
#include <ctime>

#include "domain/json_text.hpp"

namespace chat::infra::engines {

std::vector<std::string> DemoEngine::reply_tokens(const std::vector<domain::Message>& history) {
  std::string last;
  std::size_t turn = 0;
  for (const auto& m : history)
    if (m.role == domain::Role::user) {
      last = m.content;
      ++turn;
    }
  std::vector<std::string> words{"Turn", " " + std::to_string(turn) + ":", " you", " said",
                                 " \xE2\x80\x9C"};  // “
  bool first = true;
  std::size_t i = 0;
  while (i < last.size()) {
    while (i < last.size() && (last[i] == ' ' || last[i] == '\n' || last[i] == '\t')) ++i;
    std::size_t j = i;
    while (j < last.size() && last[j] != ' ' && last[j] != '\n' && last[j] != '\t') ++j;
    if (j > i) {
      words.push_back((first ? "" : " ") + last.substr(i, j - i));
      first = false;
    }
    i = j;
  }
  words.push_back("\xE2\x80\x9D");                 // ”
  words.push_back(" \xE2\x80\x94 noted \xE2\x9C\x93");  // — noted ✓
  // "“" then the first word: glue them so the quote is one token, as a real tokenizer might.
  if (words.size() > 6) {
    words[4] += words[5];
    words.erase(words.begin() + 5);
  }
  return words;
}

app::Task<void> DemoEngine::run(const app::EngineRequest& request, app::EngineSink& sink) {
  std::string last;
  for (const auto& m : request.history)
    if (m.role == domain::Role::user) last = m.content;
  std::size_t words = 0;
  bool in_word = false;
  for (char c : last) {
    const bool space = c == ' ' || c == '\n' || c == '\t';
    if (!space && !in_word) ++words;
    in_word = !space;
  }

  if (sink.canceled()) co_return;
  const std::string tool = "word_count";
  std::string input = "{\"text\":";
  domain::append_json_string(input, last);
  input += "}";
  co_await sink.tool_start(tool, input);
  co_await sink.sleep(o_.tool_delay);
  if (sink.canceled()) co_return;
  co_await sink.tool_end(tool, "{\"words\":" + std::to_string(words) + "}");

  for (const auto& t : reply_tokens(request.history)) {
    if (sink.canceled()) co_return;
    co_await sink.sleep(o_.token_delay);
    if (sink.canceled()) co_return;
    if (o_.token_timestamps) {
      timespec ts{};
      clock_gettime(CLOCK_REALTIME, &ts);
      const auto us = static_cast<std::int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
      co_await sink.token("\xE2\x8F\xB1" + std::to_string(us) + " " + t);  // ⏱
    } else {
      co_await sink.token(t);
    }
  }
}

}  // namespace chat::infra::engines
