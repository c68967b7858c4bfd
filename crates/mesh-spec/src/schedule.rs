//! Cron schedules: the pattern, validated with its location, read in an
//! explicit time zone (UTC unless the descriptor names one).
//!
//! Patterns have five fields (minute granularity) or six (a leading
//! seconds field), with the usual extensions (`L`, `#`, `W`, `@daily`).
//! Times are computed on the zone's wall clock and returned in UTC, so a
//! daily 02:30 in a zone that skips 02:00–03:00 fires once that day (at
//! the first valid time after the gap), and a 01:30 in an hour that
//! repeats fires once.

use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::decode::Ctx;
use crate::descriptor::Schedule;

/// A validated cron pattern in its time zone.
#[derive(Debug, Clone)]
pub struct Cron {
    pattern: croner::Cron,
    zone: chrono_tz::Tz,
}

/// Why a schedule does not validate, and which part is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CronProblem {
    Pattern(String),
    Zone(String),
}

impl Cron {
    /// Parses a pattern and an optional IANA zone name (UTC when absent).
    pub fn parse(pattern: &str, zone: Option<&str>) -> Result<Cron, CronProblem> {
        let zone = match zone {
            None => chrono_tz::UTC,
            Some(z) => chrono_tz::Tz::from_str(z).map_err(|_| {
                CronProblem::Zone(format!("`{z}` is not a time zone of the IANA database"))
            })?,
        };
        let pattern = croner::Cron::from_str(pattern)
            .map_err(|e| CronProblem::Pattern(format!("`{pattern}` is not a cron pattern: {e}")))?;
        Ok(Cron { pattern, zone })
    }

    /// The newest scheduled time at or before `at`.
    pub fn latest(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.pattern
            .find_previous_occurrence(&at.with_timezone(&self.zone), true)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The first scheduled time strictly after `after`.
    pub fn next(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.pattern
            .find_next_occurrence(&after.with_timezone(&self.zone), false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The pattern as written.
    pub fn pattern(&self) -> &str {
        self.pattern.as_str()
    }

    /// The time zone's IANA name.
    pub fn zone(&self) -> &str {
        self.zone.name()
    }
}

/// Reports a schedule's invalid pattern or zone at its location.
pub(crate) fn check(ctx: &mut Ctx, schedule: &Schedule) {
    let zone = schedule.timezone.as_ref();
    if let Some(z) = zone
        && chrono_tz::Tz::from_str(&z.value).is_err()
    {
        ctx.error(
            "invalid-timezone",
            z.span,
            format!("`{}` is not a time zone of the IANA database", z.value),
        )
        .help =
            Some("write a zone name such as `UTC`, `Europe/Berlin` or `America/New_York`".into());
    }
    if let Some(c) = &schedule.cron
        && let Err(CronProblem::Pattern(message)) = Cron::parse(&c.value, None)
    {
        let d = ctx.error("invalid-cron", c.span, message);
        d.label = Some("not a cron pattern".into());
        d.help = Some(
            "write five fields, `minute hour day-of-month month day-of-week` (for example `0 6 * * *`, daily at 06:00), or six with seconds first".into(),
        );
    }
    if schedule.cron.is_none()
        && let Some(z) = zone
    {
        ctx.warning(
            "timezone-without-cron",
            z.span,
            "`schedule.timezone` has no effect without `schedule.cron`",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn utc_is_the_default_zone() {
        let c = Cron::parse("0 6 * * *", None).unwrap();
        assert_eq!(c.zone(), "UTC");
        assert_eq!(c.next(utc(2026, 3, 1, 6, 0)), Some(utc(2026, 3, 2, 6, 0)));
        assert_eq!(c.latest(utc(2026, 3, 1, 6, 0)), Some(utc(2026, 3, 1, 6, 0)));
        assert_eq!(
            c.latest(utc(2026, 3, 1, 5, 59)),
            Some(utc(2026, 2, 28, 6, 0))
        );
    }

    #[test]
    fn daily_times_follow_the_wall_clock_across_daylight_saving() {
        // Berlin: UTC+1 in winter, UTC+2 from 2026-03-29 02:00 local.
        let c = Cron::parse("0 6 * * *", Some("Europe/Berlin")).unwrap();
        assert_eq!(c.next(utc(2026, 3, 28, 0, 0)), Some(utc(2026, 3, 28, 5, 0)));
        assert_eq!(c.next(utc(2026, 3, 28, 5, 0)), Some(utc(2026, 3, 29, 4, 0)));
        // And back on 2026-10-25.
        assert_eq!(
            c.next(utc(2026, 10, 24, 4, 0)),
            Some(utc(2026, 10, 25, 5, 0))
        );
    }

    #[test]
    fn a_skipped_hour_fires_once_and_a_repeated_hour_once() {
        // 02:30 does not exist in Berlin on 2026-03-29.
        let c = Cron::parse("30 2 * * *", Some("Europe/Berlin")).unwrap();
        let mut fired = Vec::new();
        let mut t = utc(2026, 3, 28, 12, 0);
        while let Some(n) = c.next(t).filter(|n| *n < utc(2026, 3, 30, 12, 0)) {
            fired.push(n);
            t = n;
        }
        assert_eq!(fired.len(), 2, "{fired:?}");
        // 02:30 happens twice in Berlin on 2026-10-25: one run.
        let mut fired = Vec::new();
        let mut t = utc(2026, 10, 24, 12, 0);
        while let Some(n) = c.next(t).filter(|n| *n < utc(2026, 10, 26, 12, 0)) {
            fired.push(n);
            t = n;
        }
        assert_eq!(fired.len(), 2, "{fired:?}");
    }

    #[test]
    fn bad_patterns_and_zones_are_refused() {
        assert!(matches!(
            Cron::parse("61 * * * *", None),
            Err(CronProblem::Pattern(_))
        ));
        assert!(matches!(
            Cron::parse("every day", None),
            Err(CronProblem::Pattern(_))
        ));
        assert!(matches!(
            Cron::parse("0 6 * * *", Some("Mars/Olympus")),
            Err(CronProblem::Zone(_))
        ));
    }
}
