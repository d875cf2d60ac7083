#pragma once
/// Names the calling thread (Linux: at most 15 characters, longer names are cut). The names
/// show in `top -H`, gdb and /proc/PID/task/*/comm, where the tests read each database thread's
/// system calls (an idle instance's readers and LISTEN thread must make none).

#include <pthread.h>

#include <string>

namespace chat::infra {

inline void name_this_thread(std::string name) {
  if (name.size() > 15) name.resize(15);
  ::pthread_setname_np(::pthread_self(), name.c_str());
}

}  // namespace chat::infra
