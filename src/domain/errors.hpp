#pragma once
/// Expected outcomes of use cases as values (not found, conflict, invalid). Infrastructure
/// failures are exceptions. The web layer is the one place that maps these to HTTP.

#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace chat::domain {

enum class ErrorCode {
  not_found,  ///< the addressed resource does not exist
  conflict,   ///< the request contradicts existing state (e.g. a duplicate name)
  invalid,    ///< the input breaks an invariant; `field` names it
  gone,       ///< existed, but is no longer kept (e.g. events pruned by retention)
};

struct Error {
  ErrorCode code;
  std::string detail;  ///< human-readable, safe to show to clients
  std::string field;   ///< for `invalid`: the offending field (may be empty)
  /// Extra facts a client may act on, e.g. {"run_id", <the active run>} for a rejected post.
  std::vector<std::pair<std::string, std::string>> extra;
};

/// Either a value or an Error.
template <class T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Error e) : v_(std::move(e)) {}      // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

inline Error not_found(std::string detail) { return {ErrorCode::not_found, std::move(detail), {}, {}}; }
inline Error invalid(std::string field, std::string detail) {
  return {ErrorCode::invalid, std::move(detail), std::move(field), {}};
}
inline Error gone(std::string detail) { return {ErrorCode::gone, std::move(detail), {}, {}}; }
inline Error conflict(std::string detail) { return {ErrorCode::conflict, std::move(detail), {}, {}}; }
inline Error conflict(std::string detail, std::string key, std::string value) {
  Error e{ErrorCode::conflict, std::move(detail), {}, {}};
  e.extra.emplace_back(std::move(key), std::move(value));
  return e;
}

}  // namespace chat::domain
