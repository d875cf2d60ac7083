// The request handler: Last-Event-ID parsing, and a few requests of API.md answered by
// handle_request over the real use cases (no sockets).

#include "handlers.hpp"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "testkit/service_harness.hpp"

namespace chat::web {
namespace {

namespace json = boost::json;
using testkit::ServiceHarness;

TEST(ParseLastEventId, NumbersAreTakenAsIs) {
  EXPECT_EQ(parse_last_event_id("7"), 7);
  EXPECT_EQ(parse_last_event_id("0"), 0);
  EXPECT_EQ(parse_last_event_id("123456789012"), 123456789012);
  EXPECT_EQ(parse_last_event_id(" 7 "), 7);
  EXPECT_EQ(parse_last_event_id("9223372036854775807"), INT64_MAX);
}

TEST(ParseLastEventId, AnythingElseIsZero) {
  for (const char* v : {"", " ", "-1", "-7", "abc", "7a", "a7", "1.5", "+7", "0x10", "7 8",
                        "99999999999999999999", "9223372036854775808",
                        "-99999999999999999999"})
    EXPECT_EQ(parse_last_event_id(v), 0) << "'" << v << "'";
}

TEST(QueryString, PercentDecoding) {
  EXPECT_EQ(percent_decode("a%20b+c%2B%e2%9c%93"), "a b c+\xE2\x9C\x93");
  // Not two hex digits: kept as they are. "%-1" once decoded to the byte 0xFF (fuzz_query).
  for (const char* v : {"%-1", "% 1", "%zz", "%4", "%", "100%"})
    EXPECT_EQ(percent_decode(v), v) << v;
  EXPECT_EQ(percent_decode("%+1"), "% 1");
}

TEST(QueryString, FirstParameterOfThatNameDecoded) {
  EXPECT_EQ(query_param("a=1&last_event_id=%35&last_event_id=9", "last_event_id"), "5");
  EXPECT_EQ(query_param("last%5Fevent%5Fid=3", "last_event_id"), "3");
  EXPECT_EQ(query_param("x&limit", "limit"), "");
  EXPECT_EQ(query_param("limits=1&&=2", "limit"), std::nullopt);
}

// ------------------------------------------------------------------------- handle_request

Request make_request(http::verb method, std::string target, std::string body = {}) {
  Request req{method, target, 11};
  if (!body.empty()) {
    req.set(http::field::content_type, "application/json");
    req.body() = std::move(body);
    req.prepare_payload();
  }
  return req;
}

struct Answer {
  unsigned status = 0;
  std::string content_type;
  std::string allow;
  json::value body;
  bool stream = false;
  std::vector<std::int64_t> streamed;
};

std::string str(const json::value& v, const char* key) {
  const auto* o = v.if_object();
  const auto* f = o ? o->if_contains(key) : nullptr;
  return f && f->is_string() ? std::string(f->get_string()) : std::string("<missing>");
}

Answer call(ServiceHarness& h, const Request& req) {
  return h.sync([&]() -> app::Task<Answer> {
    HandlerContext ctx{h.service(), nullptr, nullptr, 32, 65536, {}, {}};
    auto out = co_await handle_request(ctx, req, co_await boost::asio::this_coro::executor);
    Answer a;
    a.status = out.response.result_int();
    a.content_type = std::string(out.response[http::field::content_type]);
    a.allow = std::string(out.response[http::field::allow]);
    if (!out.response.body().empty()) {
      boost::system::error_code ec;
      a.body = json::parse(out.response.body(), ec);
    }
    if (out.stream) {
      a.stream = true;
      testkit::Collected c;
      co_await testkit::drain_stream(*out.stream, c);
      a.streamed = c.seqs();
    }
    co_return a;
  }());
}

TEST(HandleRequest, CreatesUsersAndAnswersConflictWithTheExistingUser) {
  ServiceHarness h;
  const auto created =
      call(h, make_request(http::verb::post, "/api/users", R"({"name":"  smoke-user "})"));
  EXPECT_EQ(created.status, 201u);
  ASSERT_TRUE(created.body.is_object());
  EXPECT_EQ(str(created.body, "name"), "smoke-user");
  ASSERT_TRUE(created.body.at("user_id").is_int64());
  EXPECT_TRUE(created.body.at("created_at").is_string());

  const auto again =
      call(h, make_request(http::verb::post, "/api/users", R"({"name":"smoke-user"})"));
  EXPECT_EQ(again.status, 409u);
  EXPECT_EQ(again.content_type, "application/problem+json");
  ASSERT_TRUE(again.body.is_object());
  EXPECT_EQ(again.body.at("user_id"), created.body.at("user_id"));
  EXPECT_EQ(str(again.body, "name"), "smoke-user");
  EXPECT_TRUE(again.body.at("detail").is_string());
}

TEST(HandleRequest, ValidationErrorsAre422WithTheirLocation) {
  ServiceHarness h;
  const auto blank = call(h, make_request(http::verb::post, "/api/users", R"({"name":"   "})"));
  EXPECT_EQ(blank.status, 422u);
  EXPECT_EQ(blank.content_type, "application/problem+json");
  ASSERT_TRUE(blank.body.is_object());
  EXPECT_TRUE(blank.body.at("detail").is_string());
  ASSERT_TRUE(blank.body.at("errors").is_array());
  EXPECT_EQ(blank.body.at("errors").as_array().at(0).as_object().at("loc"),
            json::parse(R"(["body","name"])"));

  const auto malformed = call(h, make_request(http::verb::post, "/api/users", "{nope"));
  EXPECT_TRUE(malformed.status == 422u || malformed.status == 400u) << malformed.status;
}

TEST(HandleRequest, UnknownRoutesAre404AndWrongMethodsAre405WithAllow) {
  ServiceHarness h;
  const auto missing = call(h, make_request(http::verb::get, "/api/nope"));
  EXPECT_EQ(missing.status, 404u);
  EXPECT_EQ(missing.content_type, "application/problem+json");

  const auto wrong = call(h, make_request(http::verb::put, "/api/threads/x"));
  EXPECT_EQ(wrong.status, 405u);
  EXPECT_EQ(wrong.allow, "GET, DELETE");
}

TEST(HandleRequest, MalformedIdsAre404) {
  ServiceHarness h;
  for (const char* target : {"/api/threads/not-a-uuid", "/api/runs/not-a-uuid",
                             "/api/threads/not-a-uuid/runs", "/api/runs/1/events",
                             "/api/users/abc", "/api/users/99999999999999999999999"}) {
    const auto a = call(h, make_request(http::verb::get, target));
    EXPECT_EQ(a.status, 404u) << target;
    EXPECT_EQ(a.content_type, "application/problem+json") << target;
  }
}

TEST(HandleRequest, EventStreamHonoursLastEventIdAndAnswers204PastTheEnd) {
  ServiceHarness h;
  h.engine.tokens = {"a", "b"};
  const auto t = h.make_thread();
  const auto p = h.post(t.id, "hi");
  ASSERT_TRUE(h.wait_terminal(p.run_id));
  const std::string target = "/api/runs/" + p.run_id + "/events";

  auto req = make_request(http::verb::get, target);
  req.set("Last-Event-ID", "3");
  auto a = call(h, req);
  ASSERT_TRUE(a.stream);
  EXPECT_EQ(a.streamed, testkit::seq_range(4, 6));

  // The header wins over the query parameter.
  req = make_request(http::verb::get, target + "?last_event_id=1");
  req.set("Last-Event-ID", "5");
  a = call(h, req);
  ASSERT_TRUE(a.stream);
  EXPECT_EQ(a.streamed, testkit::seq_range(6, 6));

  a = call(h, make_request(http::verb::get, target + "?last_event_id=2"));
  ASSERT_TRUE(a.stream);
  EXPECT_EQ(a.streamed, testkit::seq_range(3, 6));

  // Garbage counts as 0: the whole log.
  req = make_request(http::verb::get, target);
  req.set("Last-Event-ID", "abc");
  a = call(h, req);
  ASSERT_TRUE(a.stream);
  EXPECT_EQ(a.streamed, testkit::seq_range(1, 6));

  // At or past `done`: 204, no stream.
  for (const char* id : {"6", "7", "999"}) {
    req = make_request(http::verb::get, target);
    req.set("Last-Event-ID", id);
    a = call(h, req);
    EXPECT_FALSE(a.stream) << id;
    EXPECT_EQ(a.status, 204u) << id;
  }

  const auto unknown = call(h, make_request(http::verb::get,
                                           "/api/runs/" + testkit::SeqIds::make(999) + "/events"));
  EXPECT_FALSE(unknown.stream);
  EXPECT_EQ(unknown.status, 404u);
}

}  // namespace
}  // namespace chat::web
