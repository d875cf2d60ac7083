#include "util.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <sys/resource.h>
#include <unistd.h>

namespace lg {

std::int64_t realtime_us() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

std::int64_t mono_us() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

double self_cpu_s() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

double proc_cpu_s(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const auto close = s.rfind(')');
  if (close == std::string::npos) return -1;
  // Fields after the command: 3 state, 4 ppid, ... 14 utime, 15 stime.
  std::istringstream in(s.substr(close + 2));
  std::string field;
  double utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::atof(field.c_str());
    if (i == 15) stime = std::atof(field.c_str());
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double proc_run_delay_s(pid_t pid) {
  double total = 0;
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::ifstream f(e.path() / "schedstat");
    unsigned long long on_cpu = 0, waiting = 0;
    if (f >> on_cpu >> waiting) total += static_cast<double>(waiting) / 1e9;
  }
  return total;
}

long proc_rss_kib(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  return -1;
}

std::int64_t percentile(const std::vector<std::int64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  if (rank < 1) rank = 1;
  if (rank > sorted.size()) rank = sorted.size();
  return sorted[rank - 1];
}

std::optional<std::string> json_field(std::string_view body, std::string_view key) {
  std::string quoted = "\"" + std::string(key) + "\"";
  std::size_t at = 0;
  for (;;) {
    at = body.find(quoted, at);
    if (at == std::string_view::npos) return std::nullopt;
    std::size_t i = at + quoted.size();
    while (i < body.size() && (body[i] == ' ' || body[i] == '\t')) ++i;
    if (i >= body.size() || body[i] != ':') {
      at = i;
      continue;
    }
    ++i;
    while (i < body.size() && (body[i] == ' ' || body[i] == '\t')) ++i;
    if (i >= body.size()) return std::nullopt;
    if (body[i] == '"') {
      std::size_t j = i + 1;
      while (j < body.size() && body[j] != '"') j += body[j] == '\\' ? 2 : 1;
      return std::string(body.substr(i + 1, std::min(j, body.size()) - i - 1));
    }
    std::size_t j = i;
    while (j < body.size() && body[j] != ',' && body[j] != '}' && body[j] != ' ') ++j;
    return std::string(body.substr(i, j - i));
  }
}

Options::Options(int argc, char** argv, int first) {
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0) throw std::invalid_argument("unexpected argument '" + a + "'");
    a = a.substr(2);
    if (auto eq = a.find('='); eq != std::string::npos) {
      m_.emplace(a.substr(0, eq), a.substr(eq + 1));
    } else if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) {
      m_.emplace(a, argv[++i]);
    } else {
      m_.emplace(a, "1");
    }
  }
}

std::string Options::str(const std::string& name, const std::string& def) const {
  auto it = m_.find(name);
  return it == m_.end() ? def : it->second;
}

long long Options::num(const std::string& name, long long def) const {
  auto it = m_.find(name);
  if (it == m_.end()) return def;
  char* end = nullptr;
  const long long v = std::strtoll(it->second.c_str(), &end, 10);
  if (end == it->second.c_str() || *end)
    throw std::invalid_argument("--" + name + ": not an integer: " + it->second);
  return v;
}

double Options::real(const std::string& name, double def) const {
  auto it = m_.find(name);
  if (it == m_.end()) return def;
  char* end = nullptr;
  const double v = std::strtod(it->second.c_str(), &end);
  if (end == it->second.c_str() || *end)
    throw std::invalid_argument("--" + name + ": not a number: " + it->second);
  return v;
}

std::vector<std::string> Options::all(const std::string& name) const {
  std::vector<std::string> out;
  auto [a, b] = m_.equal_range(name);
  for (; a != b; ++a) out.push_back(a->second);
  return out;
}

void JsonOut::key(const std::string& k) {
  if (!body_.empty()) body_ += ',';
  body_ += '"';
  body_ += k;
  body_ += "\":";
}

JsonOut& JsonOut::add(const std::string& k, double v) {
  key(k);
  char buf[64];
  if (std::isfinite(v))
    std::snprintf(buf, sizeof buf, "%.6g", v);
  else
    std::snprintf(buf, sizeof buf, "null");
  body_ += buf;
  return *this;
}

JsonOut& JsonOut::add(const std::string& k, std::int64_t v) {
  key(k);
  body_ += std::to_string(v);
  return *this;
}

JsonOut& JsonOut::add(const std::string& k, bool v) {
  key(k);
  body_ += v ? "true" : "false";
  return *this;
}

JsonOut& JsonOut::add(const std::string& k, const std::string& v) {
  key(k);
  body_ += '"';
  for (char c : v) {
    if (c == '"' || c == '\\') {
      body_ += '\\';
      body_ += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      body_ += ' ';
    } else {
      body_ += c;
    }
  }
  body_ += '"';
  return *this;
}

}  // namespace lg
