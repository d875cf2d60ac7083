#pragma once
/// CORS (CHATBOT_CORS_ORIGINS): which browser origins may call the API, and the headers that
/// say so. Pure and immutable once built: safe to share between threads.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace chat::web {

class CorsPolicy {
 public:
  CorsPolicy() = default;  ///< allows no origin: no CORS headers at all (the default)
  /// `spec`: "*" or a comma-separated list of origins ("https://app.example.com,http://x:8080").
  /// Throws std::invalid_argument naming the bad entry.
  static CorsPolicy parse(std::string_view spec);

  bool enabled() const { return any_ || !origins_.empty(); }
  bool allows(std::string_view origin) const;

  using Headers = std::vector<std::pair<std::string, std::string>>;
  /// Headers of an actual response to a request from `origin` (empty when not allowed).
  Headers response_headers(std::string_view origin) const;
  /// Headers of the answer to a preflight from `origin`, or nullopt when it is not allowed.
  std::optional<Headers> preflight_headers(std::string_view origin) const;

  static constexpr std::string_view kAllowMethods = "GET, POST, DELETE, OPTIONS";
  static constexpr std::string_view kAllowHeaders =
      "Content-Type, Authorization, Idempotency-Key, Last-Event-ID, X-Request-Id";

 private:
  bool any_ = false;
  std::vector<std::string> origins_;
};

}  // namespace chat::web
