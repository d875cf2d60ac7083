#include "infrastructure/web/sse_frame.hpp"

#include <charconv>

namespace chat::web {

void append_sse_frame(std::string& out, const domain::RunEvent& e) {
  char seq[24];
  const auto end = std::to_chars(seq, seq + sizeof seq, e.seq).ptr;
  const std::string_view type = domain::to_string(e.type);
  // One growth at most per frame (the caller reuses `out` between writes).
  out.reserve(out.size() + 24 + static_cast<std::size_t>(end - seq) + type.size() + e.data.size());
  out.append("id: ", 4);
  out.append(seq, end);
  out.append("\nevent: ", 8);
  out.append(type);
  out.append("\ndata: ", 7);
  out.append(e.data);
  out.append("\n\n", 2);
}

}  // namespace chat::web
