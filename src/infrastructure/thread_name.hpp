#pragma once
/// Names the calling thread (Linux: at most 15 characters, longer names are cut). The names
/// show in `top -H`, gdb and /proc/PID/task/*/status, where the tests and the benchmark read each
/// database thread's wake-ups (an idle instance's readers and LISTEN thread must have none).

#include <pthread.h>

#include <string>

namespace chat::infra {

inline void name_this_thread(std::string name) {
  if (name.size() > 15) name.resize(15);
  ::pthread_setname_np(::pthread_self(), name.c_str());
}

}  // namespace chat::infra
