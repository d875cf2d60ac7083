#include "cors.hpp"

#include <stdexcept>

namespace chat::web {
namespace {

std::string_view strip(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '/')) s.remove_suffix(1);
  return s;
}

}  // namespace

CorsPolicy CorsPolicy::parse(std::string_view spec) {
  CorsPolicy p;
  while (!spec.empty()) {
    const auto comma = spec.find(',');
    const auto item = strip(spec.substr(0, comma));
    if (item == "*") {
      p.any_ = true;
    } else if (!item.empty()) {
      // An origin is scheme://host[:port], nothing more (no path, no wildcard parts).
      const auto scheme_end = item.find("://");
      const bool http = item.rfind("http://", 0) == 0 || item.rfind("https://", 0) == 0;
      if (!http || scheme_end == std::string_view::npos || scheme_end + 3 >= item.size() ||
          item.find('/', scheme_end + 3) != std::string_view::npos ||
          item.find('*') != std::string_view::npos)
        throw std::invalid_argument("'" + std::string(item) +
                                    "' is not an origin (expected * or scheme://host[:port])");
      p.origins_.emplace_back(item);
    }
    if (comma == std::string_view::npos) break;
    spec.remove_prefix(comma + 1);
  }
  return p;
}

bool CorsPolicy::allows(std::string_view origin) const {
  if (origin.empty()) return false;
  if (any_) return true;
  for (const auto& o : origins_)
    if (o == origin) return true;
  return false;
}

CorsPolicy::Headers CorsPolicy::response_headers(std::string_view origin) const {
  if (!allows(origin)) return {};
  // The origin is echoed even for "*": credentials (Authorization) are then usable, and Vary
  // keeps shared caches from serving one origin's answer to another.
  return {{"Access-Control-Allow-Origin", std::string(origin)},
          {"Vary", "Origin"},
          {"Access-Control-Expose-Headers", "X-Request-Id"}};
}

std::optional<CorsPolicy::Headers> CorsPolicy::preflight_headers(std::string_view origin) const {
  if (!allows(origin)) return std::nullopt;
  auto h = response_headers(origin);
  h.emplace_back("Access-Control-Allow-Methods", std::string(kAllowMethods));
  h.emplace_back("Access-Control-Allow-Headers", std::string(kAllowHeaders));
  h.emplace_back("Access-Control-Max-Age", "600");
  return h;
}

}  // namespace chat::web
