// The OpenAPI document served at /openapi.json against the code it describes: the router's
// routes, the domain's event types, and its own internal references.

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cctype>
#include <regex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "domain/entities.hpp"
#include "infrastructure/web/embedded_assets.hpp"
#include "infrastructure/web/router.hpp"

namespace chat::web {
namespace {

namespace json = boost::json;

const json::object& document() {
  static const json::value doc = [] {
    const StaticAsset* a = find_asset("/openapi.json");
    if (!a) throw std::runtime_error("/openapi.json is not embedded");
    return json::parse(a->body);
  }();
  return doc.as_object();
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

const std::set<std::string> kMethods{"get",   "put",  "post",    "delete",
                                     "patch", "head", "options", "trace"};

std::set<std::pair<std::string, std::string>> documented_operations() {
  std::set<std::pair<std::string, std::string>> out;
  for (const auto& [path, item] : document().at("paths").as_object())
    for (const auto& [method, op] : item.as_object())
      if (kMethods.count(std::string(method))) out.emplace(std::string(method), std::string(path));
  return out;
}

TEST(OpenApi, IsOpenApi31WithInfo) {
  const auto& doc = document();
  EXPECT_EQ(doc.at("openapi").as_string().subview().substr(0, 4), "3.1.");
  EXPECT_FALSE(doc.at("info").at("title").as_string().empty());
  EXPECT_FALSE(doc.at("info").at("version").as_string().empty());
}

TEST(OpenApi, PathsAndMethodsAreExactlyTheRouters) {
  std::set<std::pair<std::string, std::string>> routed;
  for (const auto& [method, path] : all_routes()) routed.emplace(lower(method), path);
  const auto documented = documented_operations();
  for (const auto& r : routed)
    EXPECT_TRUE(documented.count(r)) << "route not in openapi.json: " << r.first << " " << r.second;
  for (const auto& d : documented)
    EXPECT_TRUE(routed.count(d)) << "openapi.json documents a route the router lacks: " << d.first
                                 << " " << d.second;
  EXPECT_GE(routed.size(), 19u);
}

TEST(OpenApi, EveryPathParameterIsDeclaredAndEveryOperationAnswers) {
  std::set<std::string> operation_ids;
  const std::regex param("\\{([a-z_]+)\\}");
  for (const auto& [path, item] : document().at("paths").as_object()) {
    std::set<std::string> in_template;
    const std::string p(path);
    for (auto it = std::sregex_iterator(p.begin(), p.end(), param); it != std::sregex_iterator();
         ++it)
      in_template.insert((*it)[1]);
    for (const auto& [method, opv] : item.as_object()) {
      const auto& op = opv.as_object();
      SCOPED_TRACE(std::string(method) + " " + p);
      std::set<std::string> declared;
      if (auto* ps = op.if_contains("parameters"))
        for (const auto& pv : ps->as_array()) {
          const auto& po = pv.as_object();
          if (po.contains("$ref")) continue;
          if (po.at("in").as_string() == "path") {
            EXPECT_TRUE(po.at("required").as_bool());
            declared.insert(std::string(po.at("name").as_string()));
          }
        }
      EXPECT_EQ(declared, in_template);
      ASSERT_TRUE(op.contains("responses"));
      EXPECT_FALSE(op.at("responses").as_object().empty());
      ASSERT_TRUE(op.contains("operationId"));
      EXPECT_TRUE(operation_ids.insert(std::string(op.at("operationId").as_string())).second)
          << "duplicate operationId";
    }
  }
}

void collect_refs(const json::value& v, std::vector<std::string>& out) {
  if (v.is_object()) {
    for (const auto& [k, x] : v.as_object()) {
      if (k == "$ref" && x.is_string()) out.emplace_back(x.as_string());
      collect_refs(x, out);
    }
  } else if (v.is_array()) {
    for (const auto& x : v.as_array()) collect_refs(x, out);
  }
}

TEST(OpenApi, EveryReferenceResolves) {
  std::vector<std::string> refs;
  collect_refs(json::value(document()), refs);
  ASSERT_FALSE(refs.empty());
  for (const auto& ref : refs) {
    ASSERT_EQ(ref.rfind("#/", 0), 0u) << ref;
    const json::value* at = nullptr;
    json::value root = json::value(document());
    at = &root;
    std::string rest = ref.substr(2);
    while (!rest.empty()) {
      auto slash = rest.find('/');
      std::string key = rest.substr(0, slash);
      rest = slash == std::string::npos ? "" : rest.substr(slash + 1);
      ASSERT_TRUE(at->is_object()) << ref;
      at = at->as_object().if_contains(key);
      ASSERT_NE(at, nullptr) << "unresolved $ref " << ref;
    }
  }
}

TEST(OpenApi, EventStreamDocumentsEveryEventTypeOfTheDomain) {
  const auto& op = document().at("paths").at("/api/runs/{run_id}/events").at("get");
  const auto& content = op.at("responses").at("200").at("content").as_object();
  ASSERT_TRUE(content.contains("text/event-stream"));
  const auto& mapping =
      document().at("components").at("schemas").at("RunEvent").at("discriminator").at("mapping");
  std::set<std::string> documented;
  for (const auto& [k, v] : mapping.as_object()) documented.insert(std::string(k));
  std::set<std::string> domain_types;
  for (auto t : {domain::EventType::state, domain::EventType::tool_start,
                 domain::EventType::tool_end, domain::EventType::token, domain::EventType::final_,
                 domain::EventType::error, domain::EventType::canceled, domain::EventType::done})
    domain_types.insert(std::string(domain::to_string(t)));
  EXPECT_EQ(documented, domain_types);
  EXPECT_TRUE(op.at("responses").as_object().contains("204"));
}

TEST(OpenApi, ErrorsAreProblemJson) {
  for (const auto& [path, item] : document().at("paths").as_object())
    for (const auto& [method, op] : item.as_object())
      for (const auto& [status, resp] : op.at("responses").as_object()) {
        if (status.empty() || (status[0] != '4' && status[0] != '5')) continue;
        SCOPED_TRACE(std::string(method) + " " + std::string(path) + " " + std::string(status));
        const auto& content = resp.at("content").as_object();
        EXPECT_TRUE(content.contains("application/problem+json"));
      }
  const auto& problem = document().at("components").at("schemas").at("Problem").as_object();
  for (const char* field : {"type", "title", "status", "detail"}) {
    const auto& req = problem.at("required").as_array();
    EXPECT_NE(std::find(req.begin(), req.end(), json::value(field)), req.end()) << field;
  }
}

TEST(OpenApi, DocumentsTheHeadersOfTheContract) {
  const auto& params = document().at("components").at("parameters").as_object();
  for (const char* h : {"Idempotency-Key", "Last-Event-ID", "X-Request-Id"}) {
    ASSERT_TRUE(params.contains(h)) << h;
    EXPECT_EQ(params.at(h).at("in").as_string(), "header");
  }
  const auto& post = document().at("paths").at("/api/threads/{thread_id}/messages").at("post");
  bool has_key = false;
  for (const auto& p : post.at("parameters").as_array())
    if (auto* r = p.as_object().if_contains("$ref"))
      has_key |= r->as_string() == "#/components/parameters/Idempotency-Key";
  EXPECT_TRUE(has_key);
}

}  // namespace
}  // namespace chat::web
