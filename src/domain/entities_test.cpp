// Entities: timestamps as RFC 3339 with milliseconds, and the names of statuses, types, roles.

#include "domain/entities.hpp"

#include <gtest/gtest.h>

namespace chat::domain {
namespace {

TEST(FormatTimestamp, IsUtcWithMillisecondsAndZ) {
  EXPECT_EQ(format_timestamp(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(format_timestamp(1'795'514'400'123), "2026-11-24T10:00:00.123Z");
  EXPECT_EQ(format_timestamp(1'795'514'400'005), "2026-11-24T10:00:00.005Z");
  EXPECT_EQ(format_timestamp(1'795'514'400'999), "2026-11-24T10:00:00.999Z");
  EXPECT_EQ(format_timestamp(951'782'400'000), "2000-02-29T00:00:00.000Z");  // leap day
  EXPECT_EQ(format_timestamp(253'402'300'799'999), "9999-12-31T23:59:59.999Z");
}

TEST(FormatTimestamp, BeforeTheEpochCountsBackwards) {
  EXPECT_EQ(format_timestamp(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(format_timestamp(-1000), "1969-12-31T23:59:59.000Z");
  EXPECT_EQ(format_timestamp(-1001), "1969-12-31T23:59:58.999Z");
}

TEST(EntityNames, RunStatusRoundTrips) {
  for (auto s : {RunStatus::queued, RunStatus::running, RunStatus::done, RunStatus::error,
                 RunStatus::canceled})
    EXPECT_EQ(parse_run_status(to_string(s)), std::optional<RunStatus>(s));
  EXPECT_EQ(to_string(RunStatus::canceled), "canceled");  // the seed's spelling
  EXPECT_FALSE(parse_run_status("cancelled").has_value());
  EXPECT_FALSE(parse_run_status("").has_value());
  EXPECT_FALSE(parse_run_status("Done").has_value());
}

TEST(EntityNames, OnlyDoneErrorCanceledAreTerminal) {
  EXPECT_FALSE(is_terminal(RunStatus::queued));
  EXPECT_FALSE(is_terminal(RunStatus::running));
  EXPECT_TRUE(is_terminal(RunStatus::done));
  EXPECT_TRUE(is_terminal(RunStatus::error));
  EXPECT_TRUE(is_terminal(RunStatus::canceled));
}

TEST(EntityNames, EventTypeRoundTrips) {
  for (auto t : {EventType::state, EventType::tool_start, EventType::tool_end, EventType::token,
                 EventType::final_, EventType::error, EventType::canceled, EventType::done})
    EXPECT_EQ(parse_event_type(to_string(t)), std::optional<EventType>(t));
  EXPECT_EQ(to_string(EventType::final_), "final");
  EXPECT_EQ(to_string(EventType::tool_start), "tool_start");
  EXPECT_FALSE(parse_event_type("final_").has_value());
  EXPECT_FALSE(parse_event_type("ping").has_value());
}

TEST(EntityNames, RoleRoundTrips) {
  EXPECT_EQ(to_string(Role::user), "user");
  EXPECT_EQ(to_string(Role::assistant), "assistant");
  EXPECT_EQ(parse_role("user"), std::optional<Role>(Role::user));
  EXPECT_EQ(parse_role("assistant"), std::optional<Role>(Role::assistant));
  EXPECT_FALSE(parse_role("system").has_value());
}

}  // namespace
}  // namespace chat::domain
