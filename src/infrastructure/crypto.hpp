#pragma once
/// OpenSSL-backed primitives: API keys (random, SHA-256 hashed), constant-time comparison.
/// Thread safety: all safe to use from any thread (OpenSSL 3 is thread-safe).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "application/ports.hpp"

namespace chat::infra {

/// Keys are "cbk_" + 43 base64url characters (32 random bytes); hashes are hex SHA-256.
class OpenSslKeys final : public app::KeyService {
 public:
  std::string new_key() override;
  std::string hash(const std::string& key) override;
};

std::string sha256_hex(std::string_view data);
/// Equal strings, in time that depends only on the lengths.
bool constant_time_equal(std::string_view a, std::string_view b);

/// Raw HMAC-SHA256 of `data` under `key` (32 bytes).
std::string hmac_sha256(std::string_view key, std::string_view data);
/// Standard base64 with padding.
std::string base64_encode(std::string_view bytes);
/// Standard base64 (padding optional); nullopt if `text` is not base64.
std::optional<std::string> base64_decode(std::string_view text);

/// The HMAC key of a webhook secret, as Standard Webhooks take it: "whsec_<base64>" is the
/// base64-decoded bytes; any other secret is used as its raw bytes. Nullopt when a whsec_
/// secret is not valid base64.
std::optional<std::string> webhook_key(std::string_view secret);
/// The `webhook-signature` header of Standard Webhooks:
/// "v1," + base64(HMAC-SHA256(key, "<id>.<timestamp>.<body>")).
std::string webhook_signature(std::string_view key, std::string_view id, std::int64_t timestamp,
                              std::string_view body);

}  // namespace chat::infra
