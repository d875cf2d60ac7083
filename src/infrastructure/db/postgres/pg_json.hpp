#pragma once
/// jsonb renders its text with a space after every ':' and ',' ({"a": 1, "b": [1, 2]}); the
/// event stream sends compact JSON ({"a":1,"b":[1,2]}), exactly as the engine produced it.
/// For the payloads the core builds (see pg_repositories.cpp) the compacted rendering is
/// byte-for-byte the original; in general it is the same JSON value with object keys in
/// jsonb's order (shorter keys first) and duplicate keys dropped.

#include <string>
#include <string_view>

namespace chat::infra::pg {

/// `json` without whitespace outside strings. Strings (and their escapes) are kept as they are.
std::string compact_json(std::string_view json);

}  // namespace chat::infra::pg
