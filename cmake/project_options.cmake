# Warnings and sanitizers as INTERFACE targets: every project target links chat_options.
add_library(chat_options INTERFACE)
target_compile_options(chat_options INTERFACE
  -Wall -Wextra -Wpedantic -Werror -Wshadow -Wnon-virtual-dtor -Wcast-align
  -Wunused -Woverloaded-virtual -Wdouble-promotion -Wformat=2
  -Wimplicit-fallthrough
  # GCC 12 reports Asio's awaitable frame allocator (operator new/delete of the frame base)
  # as mismatched: a known false positive (GCC PR 109224).
  -Wno-mismatched-new-delete)

if(CHAT_SANITIZE)
  target_compile_options(chat_options INTERFACE
    -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  target_link_options(chat_options INTERFACE -fsanitize=address,undefined)
endif()
