#include "application/webhooks.hpp"

#include <cctype>
#include <charconv>

#include "domain/json_text.hpp"

namespace chat::app {
namespace {

bool fail(std::string* why, std::string msg) {
  if (why) *why = std::move(msg);
  return false;
}

bool host_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
}

void append_ts(std::string& out, const std::optional<domain::Timestamp>& t) {
  if (!t) {
    out += "null";
    return;
  }
  out += '"';
  out += domain::format_timestamp(*t);
  out += '"';
}

}  // namespace

std::string HttpUrl::host_header() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if (port != (tls ? 443 : 80)) h += ":" + std::to_string(port);
  return h;
}

std::optional<HttpUrl> parse_http_url(std::string_view url, std::string* why) {
  HttpUrl u;
  auto bad = [&](std::string msg) -> std::optional<HttpUrl> {
    fail(why, std::move(msg));
    return std::nullopt;
  };
  if (url.size() > kMaxWebhookUrlBytes)
    return bad("must be at most " + std::to_string(kMaxWebhookUrlBytes) + " bytes");
  const auto sep = url.find("://");
  if (sep == std::string_view::npos)
    return bad("must be an absolute http:// or https:// URL");
  std::string scheme(url.substr(0, sep));
  for (auto& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme == "https")
    u.tls = true;
  else if (scheme != "http")
    return bad("must be an http:// or https:// URL (not " + scheme + "://)");
  for (unsigned char c : url)
    if (c <= 0x20 || c >= 0x7f || c == '\\')
      return bad("must not contain spaces, control or non-ASCII characters (percent-encode them)");
  if (url.find('#') != std::string_view::npos) return bad("must not have a fragment (#...)");
  std::string_view rest = url.substr(sep + 3);
  const auto end = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, end);
  std::string_view tail = end == std::string_view::npos ? std::string_view{} : rest.substr(end);
  if (authority.find('@') != std::string_view::npos) return bad("must not contain user info (@)");
  std::string_view port_text;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return bad("has an unclosed '[' in the host");
    u.host = std::string(authority.substr(1, close - 1));
    for (char c : u.host)
      if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.')
        return bad("has an invalid IPv6 address");
    if (u.host.find(':') == std::string::npos) return bad("has an invalid IPv6 address");
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("has unexpected text after ']'");
      port_text = after.substr(1);
      has_port = true;
    }
  } else {
    const auto colon = authority.find(':');
    u.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      has_port = true;
    }
    for (char c : u.host)
      if (!host_char(c)) return bad("has an invalid host '" + u.host + "'");
  }
  if (u.host.empty()) return bad("has no host");
  u.port = u.tls ? 443 : 80;
  if (has_port) {
    unsigned v = 0;
    auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), v);
    if (port_text.empty() || ec != std::errc() || p != port_text.data() + port_text.size() ||
        v == 0 || v > 65535)
      return bad("has an invalid port '" + std::string(port_text) + "'");
    u.port = static_cast<std::uint16_t>(v);
  }
  u.target = tail.empty() || tail.front() != '/' ? "/" + std::string(tail) : std::string(tail);
  return u;
}

std::string run_json(const domain::Run& r) {
  std::string out;
  out.reserve(320);
  out += "{\"run_id\":";
  domain::append_json_string(out, r.id);
  out += ",\"thread_id\":";
  domain::append_json_string(out, r.thread_id);
  out += ",\"status\":\"";
  out += domain::to_string(r.status);
  out += "\",\"created_at\":";
  append_ts(out, r.created_at);
  out += ",\"started_at\":";
  append_ts(out, r.started_at);
  out += ",\"finished_at\":";
  append_ts(out, r.finished_at);
  out += ",\"error\":";
  if (r.error)
    domain::append_json_string(out, *r.error);
  else
    out += "null";
  out += ",\"last_seq\":";
  out += std::to_string(r.last_seq);
  out += ",\"events_pruned\":";
  out += r.events_pruned ? "true" : "false";
  if (r.webhook) {
    out += ",\"webhook\":";
    domain::append_json_string(out, *r.webhook);
  }
  out += '}';
  return out;
}

std::string run_ended_payload(const domain::Run& r) {
  return "{\"type\":\"run.ended\",\"run\":" + run_json(r) + "}";
}

domain::Run ended_view(domain::Run run, domain::RunStatus status, domain::Timestamp at,
                       const std::optional<std::string>& error, std::int64_t last_seq) {
  run.status = status;
  run.finished_at = at;
  run.error = error;
  run.last_seq = last_seq;
  return run;
}

bool WebhookOutbox::run_ended(WriteTx& tx, const domain::Run& run, domain::Timestamp now) {
  const auto& url = run.webhook ? run.webhook : default_url_;
  if (!url) return false;
  domain::WebhookDelivery d;
  d.id = ids_.uuid();
  d.run_id = run.id;
  d.url = *url;
  d.payload = run_ended_payload(run);
  d.next_attempt_at = now;
  d.created_at = now;
  tx.repos().webhooks.insert(d);
  if (wake_) tx.after_commit(wake_);
  return true;
}

}  // namespace chat::app
