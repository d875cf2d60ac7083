#include "domain/json_text.hpp"

#include <array>
#include <cstdint>

namespace chat::domain {
namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 when it is invalid.
std::size_t utf8_len(std::string_view s, std::size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  std::size_t n = 0;
  std::uint32_t cp = 0;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) { n = 2; cp = c & 0x1F; }
  else if ((c & 0xF0) == 0xE0) { n = 3; cp = c & 0x0F; }
  else if ((c & 0xF8) == 0xF0) { n = 4; cp = c & 0x07; }
  else return 0;
  if (i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
      cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return n;
}

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  static constexpr std::array<char, 16> hex{'0', '1', '2', '3', '4', '5', '6', '7',
                                            '8', '9', 'a', 'b', 'c', 'd', 'e', 'f'};
  out.push_back('"');
  std::size_t run = 0;  // the start of the bytes that need no escape: copied a run at a time
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      const std::size_t n = utf8_len(s, i);
      if (n != 0) {
        i += n;
        continue;
      }
      out.append(s.substr(run, i - run));
      out.append(kReplacement);
      run = ++i;
      continue;
    }
    out.append(s.substr(run, i - run));
    switch (c) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      case '\b': out.append("\\b"); break;
      case '\f': out.append("\\f"); break;
      default:
        out.append("\\u00");
        out.push_back(hex[c >> 4]);
        out.push_back(hex[c & 0xF]);
    }
    run = ++i;
  }
  out.append(s.substr(run));
  out.push_back('"');
}

std::string json_string(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  append_json_string(out, s);
  return out;
}

bool is_valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const std::size_t n = utf8_len(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

bool is_storable_text(std::string_view s) {
  return s.find('\0') == std::string_view::npos && is_valid_utf8(s);
}

std::string sanitize_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t run = 0;  // the start of the valid bytes not yet copied: copied a run at a time
  for (std::size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const std::size_t n = utf8_len(s, i);
    if (n == 0) {
      out.append(s.substr(run, i - run));
      out.append(kReplacement);
      run = ++i;
    } else {
      i += n;
    }
  }
  out.append(s.substr(run));
  return out;
}

std::string storable_text(std::string_view s) {
  std::string out = sanitize_utf8(s);
  for (std::size_t i = out.find('\0'); i != std::string::npos; i = out.find('\0', i))
    out.replace(i, 1, kReplacement);
  return out;
}

std::string replace_json_nul_escapes(std::string_view json) {
  std::string out(json);
  bool in_string = false;
  for (std::size_t i = 0; i < out.size(); ++i) {
    const char c = out[i];
    if (!in_string) {
      in_string = c == '"';
    } else if (c == '"') {
      in_string = false;
    } else if (c == '\\' && i + 1 < out.size()) {
      if (out.compare(i + 1, 5, "u0000") == 0) out.replace(i + 1, 5, "ufffd");
      ++i;  // the escaped character (or the 'u' of \uXXXX, whose hex digits are plain)
    }
  }
  return out;
}

}  // namespace chat::domain
