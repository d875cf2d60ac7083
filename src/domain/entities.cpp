#include "domain/entities.hpp"

#include <array>
#include <cstdio>
#include <ctime>

namespace chat::domain {

std::string format_timestamp(Timestamp ts) {
  const std::time_t secs = static_cast<std::time_t>(ts >= 0 ? ts / 1000 : (ts - 999) / 1000);
  const int millis = static_cast<int>(ts - static_cast<Timestamp>(secs) * 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  std::array<char, 96> buf{};
  std::snprintf(buf.data(), buf.size(), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  return buf.data();
}

namespace {
constexpr std::array<std::string_view, 5> kRunStatus{"queued", "running", "done", "error",
                                                     "canceled"};
constexpr std::array<std::string_view, 8> kEventType{
    "state", "tool_start", "tool_end", "token", "final", "error", "canceled", "done"};
}  // namespace

std::string_view to_string(RunStatus s) { return kRunStatus.at(static_cast<std::size_t>(s)); }

std::optional<RunStatus> parse_run_status(std::string_view s) {
  for (std::size_t i = 0; i < kRunStatus.size(); ++i)
    if (kRunStatus[i] == s) return static_cast<RunStatus>(i);
  return std::nullopt;
}

std::string_view to_string(EventType t) { return kEventType.at(static_cast<std::size_t>(t)); }

std::optional<EventType> parse_event_type(std::string_view s) {
  for (std::size_t i = 0; i < kEventType.size(); ++i)
    if (kEventType[i] == s) return static_cast<EventType>(i);
  return std::nullopt;
}

std::string_view to_string(Role r) { return r == Role::user ? "user" : "assistant"; }

std::optional<Role> parse_role(std::string_view s) {
  if (s == "user") return Role::user;
  if (s == "assistant") return Role::assistant;
  return std::nullopt;
}

}  // namespace chat::domain
