#pragma once
/// Small helpers of the load generator: clocks, CPU time, percentiles, command-line options,
/// and a tolerant extraction of one field from a JSON object (enough for the API's responses).

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

namespace lg {

/// CLOCK_REALTIME in microseconds (comparable with the demo engine's token timestamps).
std::int64_t realtime_us();
/// CLOCK_MONOTONIC in microseconds.
std::int64_t mono_us();

/// This process's user + system CPU seconds.
double self_cpu_s();
/// Another process's user + system CPU seconds from /proc/<pid>/stat; negative if unreadable.
double proc_cpu_s(pid_t pid);
/// Seconds the threads of a process spent runnable but waiting for a CPU (schedstat run_delay,
/// summed over /proc/<pid>/task/*): how much a busy machine held it back.
double proc_run_delay_s(pid_t pid);
/// Resident set size of a process in KiB from /proc/<pid>/status; negative if unreadable.
long proc_rss_kib(pid_t pid);

/// Nearest-rank percentile of sorted values (p in [0,100]); 0 when empty.
std::int64_t percentile(const std::vector<std::int64_t>& sorted, double p);

/// The value of "key" in a JSON object as text: a string without its quotes (escapes left as
/// they are), or a number / literal as written. Empty when absent. Tolerates spaces.
std::optional<std::string> json_field(std::string_view body, std::string_view key);

/// `--name value` options after the subcommand; `--flag` without value maps to "1".
class Options {
 public:
  Options(int argc, char** argv, int first);
  std::string str(const std::string& name, const std::string& def = "") const;
  long long num(const std::string& name, long long def) const;
  double real(const std::string& name, double def) const;
  bool has(const std::string& name) const { return m_.count(name) != 0; }
  /// Every value given for a repeated option.
  std::vector<std::string> all(const std::string& name) const;

 private:
  std::multimap<std::string, std::string> m_;
};

/// Minimal JSON output: an object built field by field.
class JsonOut {
 public:
  JsonOut& add(const std::string& k, double v);
  JsonOut& add(const std::string& k, std::int64_t v);
  JsonOut& add(const std::string& k, int v) { return add(k, static_cast<std::int64_t>(v)); }
  JsonOut& add(const std::string& k, std::size_t v) { return add(k, static_cast<std::int64_t>(v)); }
  JsonOut& add(const std::string& k, bool v);
  JsonOut& add(const std::string& k, const std::string& v);
  JsonOut& add(const std::string& k, const char* v) { return add(k, std::string(v)); }
  std::string str() const { return "{" + body_ + "}"; }

 private:
  void key(const std::string& k);
  std::string body_;
};

}  // namespace lg
