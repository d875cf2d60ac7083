#pragma once
/// Test support (unit tests only) for the PostgreSQL backend: the test database's URL and a
/// scratch schema per test, so every test starts from an empty database of its own.
///
/// The URL comes from CHATBOT_TEST_PG_URL, which the ctest fixture sets (tests/CMakeLists.txt
/// runs these tests through `scripts/pg-test-cluster exec`). Unset is a failure, never a skip:
/// a PostgreSQL test that silently did not run would hide a broken backend.

#include <cstdlib>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "pg_connection.hpp"

namespace chat::infra::pg::pgtest {

/// The test cluster's URL; records a fatal failure (and returns "") when it is unset.
inline std::string test_url() {
  const char* v = std::getenv("CHATBOT_TEST_PG_URL");
  if (v && *v) return v;
  ADD_FAILURE() << "CHATBOT_TEST_PG_URL is not set: the PostgreSQL tests run in the ctest "
                   "entries that start a cluster (ctest -R postgres), or by hand with "
                   "`scripts/pg-test-cluster start DIR` and `scripts/pg-test-cluster exec DIR "
                   "<test binary> --gtest_filter='*Postgres*'`";
  return "";
}

/// `url` whose sessions use `schema` (libpq's `options`, search_path first).
inline std::string with_schema(const std::string& url, const std::string& schema) {
  return url + (url.find('?') == std::string::npos ? "?" : "&") +
         "options=-csearch_path%3D" + schema;
}

/// A fresh, empty schema; dropped (with everything in it) at the end of the test.
class ScratchSchema {
 public:
  ScratchSchema() {
    base_ = test_url();
    if (base_.empty()) return;
    std::random_device rd;
    name_ = "t_" + std::to_string(rd()) + std::to_string(rd());
    Connection c(options(base_));
    c.exec(("CREATE SCHEMA " + name_).c_str());
  }
  ~ScratchSchema() {
    if (name_.empty()) return;
    try {
      Connection c(options(base_));
      c.exec(("DROP SCHEMA " + name_ + " CASCADE").c_str());
    } catch (...) {
    }
  }
  ScratchSchema(const ScratchSchema&) = delete;
  ScratchSchema& operator=(const ScratchSchema&) = delete;

  bool ok() const { return !name_.empty(); }
  const std::string& name() const { return name_; }
  /// The URL of the test database with this schema first on the search path.
  std::string url() const { return with_schema(base_, name_); }
  /// Connection options for this schema.
  ConnectOptions connect(const std::string& application_name = "chatbot-test") const {
    ConnectOptions o = options(url());
    o.application_name = application_name;
    return o;
  }

 private:
  static ConnectOptions options(const std::string& url) {
    ConnectOptions o;
    o.url = url;
    o.application_name = "chatbot-test";
    return o;
  }
  std::string base_;
  std::string name_;
};

}  // namespace chat::infra::pg::pgtest
