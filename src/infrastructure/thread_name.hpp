#pragma once
/// Thread attributes, set by the thread itself. Names: at most 15 characters on Linux, longer ones
/// are cut; they show in `top -H`, gdb and /proc/PID/task/*/status, where the tests and the
/// benchmark read each database thread's wake-ups (an idle instance's readers and LISTEN thread
/// must have none) and priorities.

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <string>

namespace chat::infra {

inline void name_this_thread(std::string name) {
  if (name.size() > 15) name.resize(15);
  ::pthread_setname_np(::pthread_self(), name.c_str());
}

/// Makes the calling thread yield the CPU to the others (nice 19, which any thread may set; it
/// still runs whenever a CPU is free). For background upkeep whose bursts of work would
/// otherwise take a core from the latency-critical threads: SQLite's checkpointer copies
/// thousands of pages at a time, and on two cores that raised the p99 latency per chunk of a
/// 10,000-chunk/s stream by 60 % or more (bench/README.md, "where the 10,000/s tail comes from").
inline void lower_this_thread_priority() {
  ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 19);
}

}  // namespace chat::infra
