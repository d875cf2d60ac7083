#pragma once
/// Files the binary serves itself, embedded at build time (cmake/embed.cmake): the OpenAPI
/// document, Swagger UI from npm `swagger-ui-dist` (pinned in package-lock.json) and the
/// playground page. Nothing is read from disk or fetched at run time, so /docs works offline.
///
/// Thread safety: everything here is immutable after first use (thread-safe initialization).

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

namespace chat::web {

/// One embedded file as the build generated it.
struct EmbeddedFile {
  std::string_view path;  ///< URL path it is served at, e.g. /docs/swagger-ui.css
  const unsigned char* data;
  std::size_t size;
};

/// Every embedded file (generated at build time).
std::span<const EmbeddedFile> embedded_files();

struct StaticAsset {
  std::string path;
  std::string_view body;
  std::string content_type;
  std::string etag;  ///< strong validator: a quoted hash of the body
  std::string csp;   ///< Content-Security-Policy for HTML pages, else empty
};

/// The asset served at `path`, or null.
const StaticAsset* find_asset(std::string_view path);

/// Content-Type for a file name by its extension (application/octet-stream if unknown).
std::string_view content_type_for(std::string_view path);

}  // namespace chat::web
