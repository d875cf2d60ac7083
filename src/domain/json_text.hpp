#pragma once
/// Minimal JSON text helpers for building event payloads in the core without a JSON library.

#include <string>
#include <string_view>

namespace chat::domain {

/// Appends `s` as a JSON string literal (with quotes) to `out`. Invalid UTF-8 bytes are
/// replaced by U+FFFD so the output is always valid JSON.
void append_json_string(std::string& out, std::string_view s);

/// `s` as a JSON string literal.
std::string json_string(std::string_view s);

/// Replaces invalid UTF-8 sequences of `s` by U+FFFD.
std::string sanitize_utf8(std::string_view s);

}  // namespace chat::domain
