//! Finding a record's event time in its line.
//!
//! | format | what it reads | where |
//! | --- | --- | --- |
//! | `first-field` | a Unix timestamp (s, ms, µs, ns by magnitude) or RFC 3339 | the first field |
//! | `syslog` | `Dec 10 06:55:46` (no year, no zone) | the start of the line |
//! | `apache` | `[17/May/2015:10:05:03 +0000]` | anywhere: the first `[` that holds one |
//! | `iso8601` | `2015-10-18 18:01:47,978`, `2015-10-18T18:01:47.978Z`, with or without zone | the start of the line |
//! | `regex:PATTERN` with a time format | the first capture group (or the whole match), read with the chrono format | the first match |
//!
//! A time at the start of the line is not part of the text: the words after
//! it are counted, not the time. A time elsewhere stays in the text.
//!
//! Times without a zone are taken as UTC. A syslog time has no year: it is
//! given the current year (UTC), or the previous one when that would put it
//! more than a day in the future (a December line read in January).

use std::cell::RefCell;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

use crate::error::SpecError;
use crate::time::{parse_timestamp, EpochNanos, MAX_ABS_TIME};

/// How a record's event time is found.
#[derive(Debug, Clone, Default)]
pub enum EventTimeFormat {
    /// Events have no event time of their own.
    #[default]
    None,
    /// The first whitespace-separated field is a Unix timestamp or RFC 3339.
    FirstField,
    /// A syslog (RFC 3164) time at the start of the line.
    Syslog,
    /// An Apache/NCSA access-log time in brackets.
    Apache,
    /// An ISO 8601 date and time at the start of the line.
    Iso8601,
    /// A regular expression and a chrono time format.
    Pattern {
        /// Finds the time; its first group (or the whole match) is parsed.
        regex: regex::bytes::Regex,
        /// The chrono format of what it finds.
        format: String,
        /// Reused match positions, so a line costs no allocation.
        locations: RefCell<regex::bytes::CaptureLocations>,
    },
}

impl PartialEq for EventTimeFormat {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (
                EventTimeFormat::Pattern { regex: a, format: f, .. },
                EventTimeFormat::Pattern { regex: b, format: g, .. },
            ) => a.as_str() == b.as_str() && f == g,
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

impl EventTimeFormat {
    /// Parses `--event-time` (with `--time-format` for `regex:`).
    pub fn parse(spec: &str, time_format: Option<&str>) -> Result<Self, SpecError> {
        let needs_no_format = |f: EventTimeFormat| match time_format {
            Some(_) => Err(SpecError::Invalid(format!(
                "--time-format goes with --event-time regex:PATTERN, not with {spec:?}; remove it"
            ))),
            None => Ok(f),
        };
        match spec {
            "none" => needs_no_format(EventTimeFormat::None),
            "first-field" => needs_no_format(EventTimeFormat::FirstField),
            "syslog" => needs_no_format(EventTimeFormat::Syslog),
            "apache" => needs_no_format(EventTimeFormat::Apache),
            "iso8601" => needs_no_format(EventTimeFormat::Iso8601),
            _ => {
                let Some(pattern) = spec.strip_prefix("regex:") else {
                    return Err(SpecError::Invalid(format!(
                        "invalid event time {spec:?}: use first-field, syslog, apache, iso8601 or regex:PATTERN with --time-format"
                    )));
                };
                let Some(format) = time_format else {
                    return Err(SpecError::Invalid(
                        "--event-time regex:PATTERN needs --time-format, a chrono format like '%Y-%m-%d %H:%M:%S'"
                            .into(),
                    ));
                };
                let regex = regex::bytes::Regex::new(pattern).map_err(|e| {
                    let first = e.to_string().lines().last().unwrap_or("").trim().to_string();
                    SpecError::Invalid(format!("invalid --event-time regex {pattern:?}: {first}"))
                })?;
                let locations = RefCell::new(regex.capture_locations());
                Ok(EventTimeFormat::Pattern { regex, format: format.to_string(), locations })
            }
        }
    }

    /// The event time of a line and how many bytes at its start belong to
    /// the time (to leave out of the text); `None` when it has none.
    /// `now` is the wall clock, for the syslog year.
    pub fn find(&self, text: &[u8], now: EpochNanos) -> Option<(EpochNanos, usize)> {
        let found = match self {
            EventTimeFormat::None => return None,
            EventTimeFormat::FirstField => return split_time_field(text),
            EventTimeFormat::Syslog => syslog(text, now),
            EventTimeFormat::Apache => apache(text).map(|t| (t, 0)),
            EventTimeFormat::Iso8601 => iso8601(text),
            EventTimeFormat::Pattern { regex, format, locations } => {
                let mut locs = locations.borrow_mut();
                regex.captures_read(&mut locs, text)?;
                let (start, end) = locs.get(1).or_else(|| locs.get(0))?;
                let (m0, m1) = locs.get(0)?;
                let t = with_format(std::str::from_utf8(&text[start..end]).ok()?, format)?;
                Some((t, if m0 == 0 { m1 } else { 0 }))
            }
        }?;
        (found.0.unsigned_abs() <= MAX_ABS_TIME as u64).then(|| (found.0, skip_blanks(text, found.1)))
    }
}

/// Splits a leading timestamp field off `text`: its time, and how many bytes
/// the field and the blanks after it take.
pub fn split_time_field(text: &[u8]) -> Option<(EpochNanos, usize)> {
    let end = text.iter().position(|b| b.is_ascii_whitespace()).unwrap_or(text.len());
    let t = parse_timestamp(&text[..end])?;
    Some((t, skip_blanks(text, end)))
}

fn skip_blanks(text: &[u8], mut at: usize) -> usize {
    if at == 0 {
        return 0;
    }
    while at < text.len() && (text[at] == b' ' || text[at] == b'\t') {
        at += 1;
    }
    at
}

fn nanos(dt: NaiveDateTime) -> Option<EpochNanos> {
    dt.and_utc().timestamp_nanos_opt()
}

const MONTHS: [&[u8]; 12] =
    [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];

fn month(name: &[u8]) -> Option<u32> {
    MONTHS.iter().position(|m| m.eq_ignore_ascii_case(name)).map(|i| i as u32 + 1)
}

fn digits(text: &[u8]) -> Option<u32> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(text.iter().fold(0u32, |v, &d| v * 10 + (d - b'0') as u32))
}

fn hms(text: &[u8]) -> Option<NaiveTime> {
    if text.len() < 8 || text[2] != b':' || text[5] != b':' {
        return None;
    }
    NaiveTime::from_hms_opt(digits(&text[0..2])?, digits(&text[3..5])?, digits(&text[6..8])?)
}

/// `Dec 10 06:55:46` (the day may be space-padded: `Dec  9`).
fn syslog(text: &[u8], now: EpochNanos) -> Option<(EpochNanos, usize)> {
    if text.len() < 15 || text[3] != b' ' || text[6] != b' ' {
        return None;
    }
    let m = month(&text[0..3])?;
    let day = digits(text[4..6].trim_ascii_start())?;
    let time = hms(&text[7..15])?;
    let now_utc = Utc.timestamp_nanos(now);
    let at = |year| NaiveDate::from_ymd_opt(year, m, day).map(|d| d.and_time(time)).and_then(nanos);
    let this_year = at(now_utc.year());
    let t = match this_year {
        Some(t) if t <= now.saturating_add(86_400_000_000_000) => t,
        _ => at(now_utc.year() - 1)?,
    };
    Some((t, 15))
}

/// `[17/May/2015:10:05:03 +0000]`, anywhere in the line.
fn apache(text: &[u8]) -> Option<EpochNanos> {
    let mut from = 0;
    while let Some(i) = memchr_byte(b'[', &text[from..]) {
        let start = from + i + 1;
        if let Some(inner) = text.get(start..start + 26) {
            if text.get(start + 26) == Some(&b']') {
                if let Some(t) = std::str::from_utf8(inner).ok().and_then(|s| with_format(s, "%d/%b/%Y:%H:%M:%S %z")) {
                    return Some(t);
                }
            }
        }
        from = start;
    }
    None
}

fn memchr_byte(b: u8, text: &[u8]) -> Option<usize> {
    text.iter().position(|&c| c == b)
}

/// `2015-10-18 18:01:47,978`, `2015-10-18T18:01:47.978Z`, `...+02:00`.
fn iso8601(text: &[u8]) -> Option<(EpochNanos, usize)> {
    if text.len() < 19 || text[4] != b'-' || text[7] != b'-' || !(text[10] == b'T' || text[10] == b' ') {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(digits(&text[0..4])? as i32, digits(&text[5..7])?, digits(&text[8..10])?)?;
    let time = hms(&text[11..19])?;
    let mut at = 19;
    let mut frac_ns = 0i64;
    if at < text.len() && (text[at] == b'.' || text[at] == b',') {
        let start = at + 1;
        let mut end = start;
        while end < text.len() && text[end].is_ascii_digit() {
            end += 1;
        }
        if end == start {
            return None;
        }
        let used = &text[start..end.min(start + 9)];
        frac_ns = digits(used)? as i64 * 10i64.pow(9 - used.len() as u32);
        at = end;
    }
    let mut offset_s = 0i64;
    match text.get(at) {
        Some(b'Z') => at += 1,
        Some(&sign @ (b'+' | b'-')) => {
            let rest = &text[at + 1..];
            let (h, m, used) = if rest.len() >= 5 && rest[2] == b':' {
                (digits(&rest[0..2])?, digits(&rest[3..5])?, 5)
            } else if rest.len() >= 4 {
                (digits(&rest[0..2])?, digits(&rest[2..4])?, 4)
            } else {
                return None;
            };
            offset_s = (h * 3600 + m * 60) as i64 * if sign == b'+' { 1 } else { -1 };
            at += 1 + used;
        }
        _ => {}
    }
    let t = nanos(date.and_time(time))?.checked_add(frac_ns)?.checked_sub(offset_s * 1_000_000_000)?;
    Some((t, at))
}

/// Parses `s` with a chrono format: with a zone when the format has one,
/// else as UTC; a date alone is midnight UTC.
fn with_format(s: &str, format: &str) -> Option<EpochNanos> {
    if let Ok(t) = DateTime::parse_from_str(s, format) {
        return t.timestamp_nanos_opt();
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
        return nanos(t);
    }
    NaiveDate::parse_from_str(s, format).ok().and_then(|d| nanos(d.and_time(NaiveTime::MIN)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn ts(s: &str) -> EpochNanos {
        DateTime::parse_from_rfc3339(s).unwrap().timestamp_nanos_opt().unwrap()
    }

    #[test]
    fn first_field() {
        assert_eq!(EventTimeFormat::FirstField.find(b"1700000000 hello", 0), Some((1_700_000_000 * S, 11)));
        assert_eq!(EventTimeFormat::FirstField.find(b"hello", 0), None);
    }

    #[test]
    fn syslog_infers_the_year() {
        let now = ts("2026-03-01T00:00:00Z");
        let f = EventTimeFormat::Syslog;
        assert_eq!(f.find(b"Feb 28 06:55:46 host sshd[42]: ok", now), Some((ts("2026-02-28T06:55:46Z"), 16)));
        assert_eq!(
            f.find(b"Dec 10 06:55:46 host x", now),
            Some((ts("2025-12-10T06:55:46Z"), 16)),
            "December read in March is last year's"
        );
        assert_eq!(
            f.find(b"Mar  1 12:00:00 host x", now),
            Some((ts("2026-03-01T12:00:00Z"), 16)),
            "within a day ahead: this year"
        );
        assert_eq!(f.find(b"Foo 10 06:55:46 x", now), None);
        assert_eq!(f.find(b"Feb 30 06:55:46 x", now), None);
        assert_eq!(f.find(b"short", now), None);
    }

    #[test]
    fn apache_anywhere_in_the_line() {
        let f = EventTimeFormat::Apache;
        let line = b"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET /apache_pb.gif HTTP/1.0\" 200 2326";
        assert_eq!(f.find(line, 0), Some((ts("2000-10-10T13:55:36-07:00"), 0)));
        assert_eq!(f.find(b"[x] [17/May/2015:10:05:03 +0000]", 0), Some((ts("2015-05-17T10:05:03Z"), 0)));
        assert_eq!(f.find(b"[17/Mai/2015:10:05:03 +0000]", 0), None);
    }

    #[test]
    fn iso8601_forms() {
        let f = EventTimeFormat::Iso8601;
        assert_eq!(f.find(b"2015-10-18 18:01:47,978 INFO started", 0), Some((ts("2015-10-18T18:01:47.978Z"), 24)));
        assert_eq!(f.find(b"2015-10-18T18:01:47.5+02:00 x", 0), Some((ts("2015-10-18T16:01:47.5Z"), 28)));
        assert_eq!(f.find(b"2015-10-18T18:01:47-0130 x", 0), Some((ts("2015-10-18T19:31:47Z"), 25)));
        assert_eq!(f.find(b"2015-10-18T18:01:47Z", 0), Some((ts("2015-10-18T18:01:47Z"), 20)));
        assert_eq!(f.find(b"2015-13-18T18:01:47Z", 0), None);
        assert_eq!(f.find(b"in 2015-10-18T18:01:47Z", 0), None, "only at the start");
    }

    #[test]
    fn regex_with_a_chrono_format() {
        let f = EventTimeFormat::parse(r"time=(\S+ \S+)", Some("%Y/%m/%d %H:%M:%S")).unwrap_err();
        assert!(f.to_string().contains("regex:PATTERN"), "{f}");
        let f = EventTimeFormat::parse(r"regex:time=(\d+/\d+/\d+ [\d:]+)", Some("%Y/%m/%d %H:%M:%S")).unwrap();
        assert_eq!(f.find(b"level=info time=2024/01/02 03:04:05 msg=hi", 0), Some((ts("2024-01-02T03:04:05Z"), 0)));
        let f = EventTimeFormat::parse(r"regex:^\d{8}", Some("%Y%m%d")).unwrap();
        assert_eq!(
            f.find(b"20240102 rest", 0),
            Some((ts("2024-01-02T00:00:00Z"), 9)),
            "a match at the start leaves the text"
        );
        assert_eq!(f.find(b"nothing here", 0), None);
        assert!(EventTimeFormat::parse("regex:(", Some("%Y")).unwrap_err().to_string().contains("regex"));
        assert!(EventTimeFormat::parse("regex:x", None).unwrap_err().to_string().contains("--time-format"));
        assert!(EventTimeFormat::parse("syslog", Some("%Y")).unwrap_err().to_string().contains("--time-format"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]

        /// Whatever a line holds, finding its time never panics, and what it
        /// skips stays within the line.
        #[test]
        fn finding_times_in_any_line_never_panics(
            line in proptest::collection::vec(proptest::num::u8::ANY, 0..60),
            text in "[0-9 :.TZ+\\-/\\[\\]A-Za-z,]{0,40}",
        ) {
            let formats = [
                EventTimeFormat::parse("first-field", None).unwrap(),
                EventTimeFormat::parse("syslog", None).unwrap(),
                EventTimeFormat::parse("apache", None).unwrap(),
                EventTimeFormat::parse("iso8601", None).unwrap(),
                EventTimeFormat::parse("regex:t=(\\S+)", Some("%Y-%m-%dT%H:%M:%S")).unwrap(),
            ];
            for f in &formats {
                for l in [&line[..], text.as_bytes()] {
                    if let Some((_, skip)) = f.find(l, 1_700_000_000 * S) {
                        proptest::prop_assert!(skip <= l.len());
                    }
                }
            }
        }
    }
}
