#pragma once
/// The text/event-stream frame of one run event: `id: <seq>\nevent: <type>\ndata: <json>\n\n`.
/// `data` is stored compact JSON (one line), so it is copied as is. Pure; thread-safe.
#include <string>

#include "domain/entities.hpp"

namespace chat::web {

/// Appends the frame of `e` to `out`.
void append_sse_frame(std::string& out, const domain::RunEvent& e);

}  // namespace chat::web
