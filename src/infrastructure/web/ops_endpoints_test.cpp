// The operations and documentation endpoints through the request handler: /readyz against a
// database that answers and one that fails, /metrics, and the embedded files with their
// validators and security headers.

#include <gtest/gtest.h>

#include <regex>
#include <stdexcept>
#include <string>

#include "infrastructure/web/embedded_assets.hpp"
#include "infrastructure/web/handlers.hpp"
#include "infrastructure/web/metrics.hpp"
#include "testkit/service_harness.hpp"

namespace chat::web {
namespace {

using testkit::DbKind;
using testkit::ServiceHarness;

/// A database whose every job fails, as a broken disk or a lost server would.
class FailingDatabase final : public app::Database {
 protected:
  void submit_read(ReadJob, Done done) override {
    done(std::make_exception_ptr(std::runtime_error("disk I/O error")));
  }
  void submit_write(WriteJob, Done done) override {
    done(std::make_exception_ptr(std::runtime_error("disk I/O error")));
  }
};

Outcome get(ServiceHarness& h, HandlerContext& ctx, const std::string& target,
            const std::string& if_none_match = {}) {
  Request req{http::verb::get, target, 11};
  if (!if_none_match.empty()) req.set(http::field::if_none_match, if_none_match);
  return h.sync(handle_request(ctx, req, h.io().get_executor()));
}

TEST(ReadyzEndpoint, AnswersOkWhenTheDatabaseAnswers) {
  ServiceHarness h({.db = DbKind::sqlite_file});
  HandlerContext ctx{h.service(), &h.db(), nullptr, 32, 65536, {}, {}};
  auto out = get(h, ctx, "/readyz");
  EXPECT_EQ(out.response.result(), http::status::ok);
  EXPECT_EQ(out.response.body(), R"({"status":"ok","database":"ok"})");
  EXPECT_EQ(out.route, "/readyz");
}

TEST(ReadyzEndpoint, Answers503ProblemWhenTheDatabaseFails) {
  ServiceHarness h;
  FailingDatabase broken;
  HandlerContext ctx{h.service(), &broken, nullptr, 32, 65536, {}, {}};
  auto out = get(h, ctx, "/readyz");
  EXPECT_EQ(out.response.result(), http::status::service_unavailable);
  EXPECT_EQ(out.response[http::field::content_type], "application/problem+json");
  EXPECT_NE(out.response.body().find(R"("status":503)"), std::string::npos);
  // The cause goes to the log, not to the client.
  EXPECT_EQ(out.response.body().find("disk I/O"), std::string::npos);

  HandlerContext none{h.service(), nullptr, nullptr, 32, 65536, {}, {}};
  EXPECT_EQ(get(h, none, "/readyz").response.result(), http::status::service_unavailable);
}

TEST(MetricsEndpoint, ServesTheTextFormat) {
  ServiceHarness h;
  Metrics m;
  m.observe_request("GET", "/api/runs/{run_id}", 404, std::chrono::milliseconds(3));
  HandlerContext ctx{h.service(), &h.db(), &m, 32, 65536, {}, {}};
  auto out = get(h, ctx, "/metrics");
  EXPECT_EQ(out.response.result(), http::status::ok);
  EXPECT_EQ(out.response[http::field::content_type], "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(
      out.response.body().find(
          R"(chatbot_http_requests_total{method="GET",route="/api/runs/{run_id}",status="404"} 1)"),
      std::string::npos)
      << out.response.body();

  HandlerContext none{h.service(), nullptr, nullptr, 32, 65536, {}, {}};
  EXPECT_EQ(get(h, none, "/metrics").response.result(), http::status::service_unavailable);
}

TEST(EmbeddedFiles, PagesAndTheirAssetsAreServedWithTypesAndValidators) {
  ServiceHarness h;
  HandlerContext ctx{h.service(), nullptr, nullptr, 32, 65536, {}, {}};
  struct Case {
    const char* path;
    const char* type;
  };
  for (auto c : {Case{"/", "text/html; charset=utf-8"}, Case{"/docs", "text/html; charset=utf-8"},
                 Case{"/openapi.json", "application/json"},
                 Case{"/docs/swagger-ui.css", "text/css; charset=utf-8"},
                 Case{"/docs/swagger-ui-bundle.js", "text/javascript; charset=utf-8"},
                 Case{"/docs/swagger-initializer.js", "text/javascript; charset=utf-8"},
                 Case{"/assets/playground.js", "text/javascript; charset=utf-8"},
                 Case{"/assets/playground.css", "text/css; charset=utf-8"},
                 Case{"/assets/favicon.svg", "image/svg+xml"}}) {
    SCOPED_TRACE(c.path);
    auto out = get(h, ctx, c.path);
    ASSERT_EQ(out.response.result(), http::status::ok);
    EXPECT_EQ(out.response[http::field::content_type], c.type);
    EXPECT_EQ(out.response["X-Content-Type-Options"], "nosniff");
    const std::string etag(out.response[http::field::etag]);
    ASSERT_FALSE(etag.empty());
    EXPECT_GT(out.response.body().size(), 100u);
    EXPECT_EQ(out.response.body().size(), find_asset(c.path)->body.size());

    auto again = get(h, ctx, c.path, "\"other\", " + etag);
    EXPECT_EQ(again.response.result(), http::status::not_modified);
    EXPECT_TRUE(again.response.body().empty());
    EXPECT_EQ(again.response[http::field::etag], etag);
  }
  EXPECT_EQ(get(h, ctx, "/docs/nope.js").response.result(), http::status::not_found);
  EXPECT_EQ(get(h, ctx, "/assets/../openapi.json").response.result(), http::status::not_found);
  // The swagger-ui-dist bundle, not a stand-in.
  EXPECT_GT(find_asset("/docs/swagger-ui-bundle.js")->body.size(), 500000u);
}

TEST(EmbeddedFiles, PagesLoadOnlyWhatTheServiceServes) {
  ServiceHarness h;
  HandlerContext ctx{h.service(), nullptr, nullptr, 32, 65536, {}, {}};
  const std::regex ref(R"re((?:src|href)="([^"]+)")re");
  for (const char* page : {"/", "/docs"}) {
    SCOPED_TRACE(page);
    auto out = get(h, ctx, page);
    const std::string csp(out.response["Content-Security-Policy"]);
    EXPECT_NE(csp.find("default-src 'self'"), std::string::npos);
    EXPECT_NE(csp.find("script-src 'self'"), std::string::npos);
    const std::string& html = out.response.body();
    int refs = 0;
    for (auto it = std::sregex_iterator(html.begin(), html.end(), ref);
         it != std::sregex_iterator(); ++it) {
      const std::string url = (*it)[1];
      ++refs;
      ASSERT_EQ(url.rfind("/", 0), 0u) << "not a path of this service: " << url;
      ASSERT_NE(url.rfind("//", 0), 0u) << url;
      EXPECT_NE(find_asset(url), nullptr) << "referenced but not embedded: " << url;
    }
    EXPECT_GE(refs, 3);
  }
}

}  // namespace
}  // namespace chat::web
