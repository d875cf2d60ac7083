#pragma once
/// System implementations of the core's small ports: wall clock, random UUIDs, spdlog logger.
/// Thread safety: all safe to use from any thread.

#include "application/ports.hpp"

namespace chat::infra {

class SystemClock final : public app::Clock {
 public:
  domain::Timestamp now() override;
};

/// UUID v4 from a per-thread generator seeded by std::random_device.
class RandomIds final : public app::IdGenerator {
 public:
  std::string uuid() override;
};

class SpdLogger final : public app::Logger {
 public:
  void info(const std::string& msg) override;
  void warn(const std::string& msg) override;
  void error(const std::string& msg) override;
};

/// Configures the default spdlog logger: level name and "text" or "json" lines on stderr.
void setup_logging(const std::string& level, const std::string& format);

}  // namespace chat::infra
