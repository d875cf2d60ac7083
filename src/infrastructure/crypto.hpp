#pragma once
/// OpenSSL-backed primitives: API keys (random, SHA-256 hashed), constant-time comparison.
/// Thread safety: all safe to use from any thread (OpenSSL 3 is thread-safe).

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

}  // namespace chat::infra
