// Signing primitives: HMAC, base64 and the Standard Webhooks signature.

#include "infrastructure/crypto.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace chat::infra {
namespace {

TEST(Crypto, Base64RoundTripsAndRefusesWhatIsNotBase64) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  const std::vector<std::string> samples{"", "f", "fo", "foo", "foob", std::string("\0\xff\x10", 3)};
  for (const auto& s : samples)
    EXPECT_EQ(base64_decode(base64_encode(s)), s);
  EXPECT_EQ(base64_decode("Zm8"), "fo");  // padding optional
  EXPECT_FALSE(base64_decode("Zm9v!"));
  EXPECT_FALSE(base64_decode("Z"));
  EXPECT_FALSE(base64_decode("Zm 9v"));
}

TEST(Crypto, HmacSha256MatchesRfc4231) {
  // RFC 4231 test case 2.
  const std::string mac = hmac_sha256("Jefe", "what do ya want for nothing?");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : mac) {
    hex += kHex[c >> 4];
    hex += kHex[c & 15];
  }
  EXPECT_EQ(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(Crypto, WebhookSignatureMatchesTheStandardWebhooksExample) {
  // The example of the Standard Webhooks specification (its reference libraries' test).
  const auto key = webhook_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  ASSERT_TRUE(key);
  EXPECT_EQ(key->size(), 24u);
  EXPECT_EQ(webhook_signature(*key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                              R"({"test": 2432232314})"),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
  // Any other secret: its own bytes are the key.
  EXPECT_EQ(webhook_key("plain-secret"), "plain-secret");
  EXPECT_FALSE(webhook_key("whsec_***"));
}

}  // namespace
}  // namespace chat::infra
