#include "json_mapping.hpp"

#include <boost/json/parse.hpp>

#include "application/webhooks.hpp"

namespace chat::web {
namespace {

boost::json::value ts(const std::optional<domain::Timestamp>& t) {
  if (!t) return nullptr;
  return boost::json::value(domain::format_timestamp(*t));
}

boost::json::value opt(const std::optional<std::string>& s) {
  if (!s) return nullptr;
  return boost::json::value(*s);
}

}  // namespace

boost::json::value to_json(const domain::User& u) {
  return {{"user_id", u.id}, {"name", u.name}, {"created_at", ts(u.created_at)}};
}

boost::json::value to_json(const domain::Thread& t) {
  return {{"thread_id", t.id},
          {"user_id", t.user_id},
          {"title", opt(t.title)},
          {"created_at", ts(t.created_at)}};
}

boost::json::value to_json(const domain::Message& m) {
  return {{"id", m.id},
          {"role", std::string(domain::to_string(m.role))},
          {"content", m.content},
          {"created_at", ts(m.created_at)},
          {"run_id", opt(m.run_id)}};
}

// One mapping for the API and the webhooks (application/webhooks.hpp): the core's text, parsed.
boost::json::value to_json(const domain::Run& r) {
  boost::json::parse_options opts;
  opts.allow_invalid_utf8 = true;  // never: the text is built valid; but never a 500 either
  return boost::json::parse(app::run_json(r), {}, opts);
}

boost::json::value to_json(const app::ThreadDetail& d) {
  auto v = to_json(d.thread);
  boost::json::array msgs;
  for (const auto& m : d.messages) msgs.push_back(to_json(m));
  v.as_object()["messages"] = std::move(msgs);
  return v;
}

boost::json::value to_json(const app::PostedMessage& p) {
  return {{"run_id", p.run_id},
          {"message_id", p.message_id},
          {"thread_id", p.thread_id},
          {"status", std::string(domain::to_string(p.status))}};
}

}  // namespace chat::web
