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

/// True when sanitize_utf8(s) == s (no copy made to find out).
bool is_valid_utf8(std::string_view s);

/// True when storable_text(s) == s: valid UTF-8 without NUL.
bool is_storable_text(std::string_view s);

/// sanitize_utf8(s) with NUL characters replaced by U+FFFD too: text that every backend stores
/// as given (PostgreSQL's text and jsonb refuse U+0000).
std::string storable_text(std::string_view s);

/// `json` (valid JSON) with every `\u0000` escape inside its strings turned into `\ufffd`, for the
/// same reason; anything else is kept byte for byte.
std::string replace_json_nul_escapes(std::string_view json);

}  // namespace chat::domain
