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
if(CHAT_SANITIZE AND (CHAT_TSAN OR CHAT_FUZZ))
  message(FATAL_ERROR "CHAT_SANITIZE, CHAT_TSAN and CHAT_FUZZ are separate builds: pick one")
endif()
if(CHAT_FUZZ)
  # libFuzzer (clang only): every project library gets coverage instrumentation
  # (fuzzer-no-link) with ASan + UBSan; the fuzz targets add -fsanitize=fuzzer (fuzz/).
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "CHAT_FUZZ needs clang: configure with CC=clang CXX=clang++")
  endif()
  # -fno-sanitize=function: clang 14 cannot emit its prologue data for split coroutines
  # ("Cannot represent a difference across sections"); it only checks calls through
  # mistyped function pointers.
  target_compile_options(chat_sanitizers INTERFACE
    -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize=function
    -fno-sanitize-recover=all -fno-omit-frame-pointer -g)
  target_link_options(chat_sanitizers INTERFACE -fsanitize=address,undefined)
elseif(CHAT_TSAN)
  target_compile_options(chat_sanitizers INTERFACE -fsanitize=thread -fno-omit-frame-pointer -g1)
  target_link_options(chat_sanitizers INTERFACE -fsanitize=thread)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # -Wno-tsan: Asio's std_fenced_block uses std::atomic_thread_fence, which TSan does not
    # model; GCC warns about each use (a race it would hide shows up as a report instead).
    target_compile_options(chat_warnings INTERFACE -Wno-maybe-uninitialized -Wno-tsan)
  endif()
elseif(CHAT_SANITIZE)
  target_compile_options(chat_sanitizers INTERFACE
    -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  target_link_options(chat_sanitizers INTERFACE -fsanitize=address,undefined)
  # With sanitizers GCC's flow analysis reports maybe-uninitialized in Boost headers.
  target_compile_options(chat_warnings INTERFACE -Wno-maybe-uninitialized)
endif()

add_library(chat_options INTERFACE)
target_link_libraries(chat_options INTERFACE chat_warnings chat_sanitizers)
