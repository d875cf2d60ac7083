#include "embedded_assets.hpp"

#include <cstdint>
#include <cstdio>
#include <string>
#include <unordered_map>

namespace chat::web {
namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string etag_of(std::string_view body) {
  // FNV-1a 64 over the bytes and the length: a build-stable validator, not a security hash.
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : body) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[48];
  std::snprintf(buf, sizeof buf, "\"%016llx-%zx\"", static_cast<unsigned long long>(h),
                body.size());
  return buf;
}

// Pages load only what the service itself serves: a stray CDN reference fails in the browser.
// Swagger UI sets inline style attributes, hence 'unsafe-inline' for styles on /docs only.
constexpr std::string_view kPlaygroundCsp =
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
constexpr std::string_view kDocsCsp =
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'";

std::unordered_map<std::string_view, StaticAsset> build_index() {
  std::unordered_map<std::string_view, StaticAsset> out;
  for (const auto& f : embedded_files()) {
    StaticAsset a;
    a.path = std::string(f.path);
    a.body = std::string_view(reinterpret_cast<const char*>(f.data), f.size);
    // "/" and "/docs" are pages without an extension.
    a.content_type = (f.path == "/" || f.path == "/docs") ? "text/html; charset=utf-8"
                                                          : std::string(content_type_for(f.path));
    a.etag = etag_of(a.body);
    if (f.path == "/") a.csp = kPlaygroundCsp;
    if (f.path == "/docs") a.csp = kDocsCsp;
    out.emplace(f.path, std::move(a));
  }
  return out;
}

}  // namespace

std::string_view content_type_for(std::string_view path) {
  if (ends_with(path, ".html")) return "text/html; charset=utf-8";
  if (ends_with(path, ".js")) return "text/javascript; charset=utf-8";
  if (ends_with(path, ".css")) return "text/css; charset=utf-8";
  if (ends_with(path, ".json")) return "application/json";
  if (ends_with(path, ".svg")) return "image/svg+xml";
  if (ends_with(path, ".png")) return "image/png";
  if (ends_with(path, ".txt")) return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

const StaticAsset* find_asset(std::string_view path) {
  static const auto index = build_index();
  auto it = index.find(path);
  return it == index.end() ? nullptr : &it->second;
}

}  // namespace chat::web
