# Warnings and sanitizers as INTERFACE targets. Project targets link chat_options (both);
# the one TU that compiles Boost's own sources links chat_sanitizers only.
add_library(chat_warnings INTERFACE)
target_compile_options(chat_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Werror -Wshadow -Wnon-virtual-dtor -Wcast-align
  -Wunused -Woverloaded-virtual -Wdouble-promotion -Wformat=2
  -Wimplicit-fallthrough
  # GCC 12 reports Asio's awaitable frame allocator (operator new/delete of the frame base)
  # as mismatched: a known false positive (GCC PR 109224).
  -Wno-mismatched-new-delete)

add_library(chat_sanitizers INTERFACE)
if(CHAT_SANITIZE)
  target_compile_options(chat_sanitizers INTERFACE
    -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  target_link_options(chat_sanitizers INTERFACE -fsanitize=address,undefined)
  # With sanitizers GCC's flow analysis reports maybe-uninitialized in Boost headers.
  target_compile_options(chat_warnings INTERFACE -Wno-maybe-uninitialized)
endif()

add_library(chat_options INTERFACE)
target_link_libraries(chat_options INTERFACE chat_warnings chat_sanitizers)
