//! Clocks, durations and timestamps.
//!
//! sluice reads two clocks and says which one each figure uses:
//! - the **monotonic clock** ([`std::time::Instant`]) for ingest times and
//!   processing latency, so that wall-clock steps never distort a latency;
//! - the **wall clock** ([`std::time::SystemTime`], Unix epoch) for event
//!   times, processing-time windows and end-to-end latency, because event
//!   times written by other machines are wall-clock times.
//!
//! A [`Clock`] reads both once at start; converting a monotonic reading to wall
//! time is then an addition, with no second clock read per event. Per-event
//! mode reads the monotonic clock through a [`Stopwatch`], which fills in
//! between readings of it with the CPU's time-stamp counter.

use std::sync::LazyLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::SpecError;

/// Nanoseconds since the Unix epoch on the wall clock.
pub type EpochNanos = i64;

/// Marks a missing event time.
pub const NO_TIME: EpochNanos = i64::MIN;

/// The latest (and, negated, the earliest) timestamp sluice accepts: 2^62 ns
/// from the epoch, about the years 1824 to 2116. Keeping times and durations
/// well inside `i64` makes every window computation free of overflow.
pub const MAX_ABS_TIME: EpochNanos = 1 << 62;

/// The longest duration sluice accepts: 3650 days.
pub const MAX_DURATION: Duration = Duration::from_secs(3650 * 86_400);

/// A pair of clock readings taken together at start, so that every later
/// monotonic reading can be expressed both as "ns since start" and as wall time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// The monotonic reading at start.
    anchor: Instant,
    /// The wall-clock reading taken at the same moment.
    anchor_wall: EpochNanos,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// Reads both clocks now.
    pub fn new() -> Self {
        // Calibrates the counter now, not at a first event.
        LazyLock::force(&TICKS);
        let anchor = Instant::now();
        let anchor_wall = wall_now();
        let clock = Clock { anchor, anchor_wall };
        // And takes a first reading, so that the first touches of the code
        // on the way (page faults, several µs on this VM) do not fall
        // between the clock reading and the counter reading a run's first
        // stopwatch pairs: it would lag the clock by them until it resyncs.
        let _ = Stopwatch::new(&clock, clock.now()).now();
        clock
    }

    /// Monotonic nanoseconds since this clock was made.
    #[inline]
    pub fn now(&self) -> u64 {
        self.anchor.elapsed().as_nanos() as u64
    }

    /// The wall-clock time that corresponds to a monotonic reading.
    #[inline]
    pub fn to_wall(&self, mono: u64) -> EpochNanos {
        self.anchor_wall.saturating_add(mono as i64)
    }

    /// The monotonic reading that corresponds to a wall-clock time
    /// (saturating at the clock's start).
    pub fn to_mono(&self, wall: EpochNanos) -> u64 {
        wall.saturating_sub(self.anchor_wall).max(0) as u64
    }

    /// Waits towards monotonic `at`: sleeps while it is more than `spin` ns
    /// away (50 ms at most, so that a stop is noticed; the caller asks
    /// again), and polls the clock until `at` for the last `spin` ns.
    /// [`PRECISE_SPIN`] is on time to the microsecond; 0 only sleeps.
    pub(crate) fn wait_until(&self, at: u64, spin: u64) {
        let now = self.now();
        if at > now + spin {
            std::thread::sleep(Duration::from_nanos(at - now - spin).min(Duration::from_millis(50)));
            return;
        }
        while self.now() < at {
            std::hint::spin_loop();
        }
    }
}

/// The CPU's time-stamp counter, calibrated against the monotonic clock
/// once per process (about half a millisecond here), when the kernel keeps
/// its own time with that counter: it then checked that the counter runs
/// at a constant rate and in step on every core. Otherwise (another
/// clocksource, or no `/sys` to ask) stopwatches read the monotonic clock.
static TICKS: LazyLock<Option<quanta::Clock>> = LazyLock::new(|| {
    let path = "/sys/devices/system/clocksource/clocksource0/current_clocksource";
    let source = std::fs::read_to_string(path).unwrap_or_default();
    matches!(source.trim(), "tsc" | "arch_sys_counter").then(quanta::Clock::new)
});

/// The longest a [`Stopwatch`] goes on its counter alone before it reads
/// the monotonic clock again (ns).
const RESYNC: u64 = 1_000_000;

/// Monotonic readings taken one after another on one thread, for a
/// fraction of the cost: per-event mode reads the time twice for every
/// event, and a read of the monotonic clock costs 25 ns here (a virtual
/// machine's `clock_gettime`), against 10 ns for the time-stamp counter
/// (BENCHMARKS.md).
///
/// It starts from a reading of the monotonic clock and adds the counter's
/// time since. Once that is a millisecond ([`RESYNC`]) it reads the
/// monotonic clock again and goes on from there, so a reading is never
/// further from that clock than the counter's calibration error over one
/// millisecond (about a nanosecond). Its readings never go back.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch {
    clock: Clock,
    /// The monotonic reading it counts from.
    base: u64,
    /// The counter at `base`.
    ticks: u64,
    /// The latest reading it gave.
    last: u64,
}

impl Stopwatch {
    /// A stopwatch counting from `now`, a reading of `clock` just taken.
    #[inline]
    pub fn new(clock: &Clock, now: u64) -> Self {
        Stopwatch { clock: *clock, base: now, ticks: TICKS.as_ref().map_or(0, |t| t.raw()), last: now }
    }

    /// Monotonic nanoseconds since the clock was made, as
    /// [`Clock::now`].
    #[inline]
    pub fn now(&mut self) -> u64 {
        let t = match TICKS.as_ref() {
            None => self.clock.now(),
            Some(ticks) => {
                let since = ticks.delta_as_nanos(self.ticks, ticks.raw());
                if since < RESYNC {
                    self.base + since
                } else {
                    self.base = self.clock.now();
                    self.ticks = ticks.raw();
                    self.base
                }
            }
        };
        self.last = self.last.max(t);
        self.last
    }
}

/// How long before a time [`Clock::wait_until`] stops sleeping and polls
/// the clock, to be on time to the microsecond: a sleeping thread wakes up
/// some 50 µs late here, which would send a paced source's lines in bursts
/// and make the input, not the engine, the source of latency.
pub(crate) const PRECISE_SPIN: u64 = 100_000;

/// The wall clock now, in ns since the Unix epoch.
pub fn wall_now() -> EpochNanos {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

/// Parses a duration written as a number and a unit: `500ms`, `2s`, `1m`,
/// `1h`, `250us`, `100ns`, or `1.5s`. Zero is allowed; callers that need a
/// positive value check for it. More than [`MAX_DURATION`] is refused.
pub fn parse_duration(text: &str) -> Result<Duration, SpecError> {
    let bad = || SpecError::Duration(text.to_string());
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(bad());
    }
    let unit_ns: u64 = match unit.trim() {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" | "min" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        _ => return Err(bad()),
    };
    let too_long = || SpecError::Invalid(format!("duration {text:?} is too long: the limit is 3650d"));
    let ns = if num.bytes().all(|b| b.is_ascii_digit()) {
        // Whole numbers exactly: a float loses nanoseconds past 2^53.
        num.parse::<u128>().map_err(|_| too_long())?.checked_mul(unit_ns as u128).ok_or_else(too_long)?
    } else {
        let value: f64 = num.parse().map_err(|_| bad())?;
        let ns = value * unit_ns as f64;
        if !ns.is_finite() || ns > MAX_DURATION.as_nanos() as f64 {
            return Err(too_long());
        }
        ns.round() as u128
    };
    if ns > MAX_DURATION.as_nanos() {
        return Err(too_long());
    }
    Ok(Duration::from_nanos(ns as u64))
}

/// Formats a duration the way [`parse_duration`] reads it, choosing the
/// largest unit that keeps it whole.
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    for (unit, size) in
        [("h", 3_600_000_000_000u128), ("m", 60_000_000_000), ("s", 1_000_000_000), ("ms", 1_000_000), ("us", 1_000)]
    {
        if ns >= size && ns.is_multiple_of(size) {
            return format!("{}{}", ns / size, unit);
        }
    }
    format!("{ns}ns")
}

/// Parses a timestamp field: an integer or decimal Unix time whose unit is
/// told by magnitude (below 10^11 seconds, below 10^14 milliseconds, below
/// 10^17 microseconds, else nanoseconds), or an RFC 3339 date-time.
/// Returns `None` when the field is neither, or is a time further than
/// [`MAX_ABS_TIME`] from the epoch.
pub fn parse_timestamp(field: &[u8]) -> Option<EpochNanos> {
    parse_timestamp_any(field).filter(|t| t.unsigned_abs() <= MAX_ABS_TIME as u64)
}

fn parse_timestamp_any(field: &[u8]) -> Option<EpochNanos> {
    if field.is_empty() {
        return None;
    }
    if field.iter().all(u8::is_ascii_digit) && field.len() <= 19 {
        let mut v: u64 = 0;
        for &b in field {
            v = v.checked_mul(10)?.checked_add((b - b'0') as u64)?;
        }
        let ns = if v < 100_000_000_000 {
            v.checked_mul(1_000_000_000)?
        } else if v < 100_000_000_000_000 {
            v.checked_mul(1_000_000)?
        } else if v < 100_000_000_000_000_000 {
            v.checked_mul(1_000)?
        } else {
            v
        };
        return i64::try_from(ns).ok();
    }
    let text = std::str::from_utf8(field).ok()?;
    if let Some((int, frac)) = text.split_once('.') {
        if !int.is_empty()
            && int.bytes().all(|b| b.is_ascii_digit())
            && !frac.is_empty()
            && frac.bytes().all(|b| b.is_ascii_digit())
        {
            // Decimal seconds, as many tools print them.
            let secs: f64 = text.parse().ok()?;
            if secs < 1e11 {
                return Some((secs * 1e9).round() as i64);
            }
            return None;
        }
    }
    if text.len() >= 20 && text.as_bytes()[4] == b'-' {
        return chrono::DateTime::parse_from_rfc3339(text).ok().and_then(|t| t.timestamp_nanos_opt());
    }
    None
}

/// Formats a wall-clock time as RFC 3339 in UTC with milliseconds, into `out`.
pub fn write_rfc3339_ms(out: &mut String, t: EpochNanos) {
    let text = rfc3339_ms(t);
    out.push_str(std::str::from_utf8(&text).unwrap_or("out-of-range"));
}

/// Like [`write_rfc3339_ms`], into bytes.
pub fn write_rfc3339_ms_bytes(out: &mut Vec<u8>, t: EpochNanos) {
    out.extend_from_slice(&rfc3339_ms(t));
}

/// How many formatted times each thread keeps.
const KEPT: usize = 32;

/// The formatted times a thread keeps: the last [`KEPT`] distinct ones.
struct Kept {
    times: [EpochNanos; KEPT],
    texts: [[u8; 24]; KEPT],
    /// The slot the next new time takes (the oldest).
    next: usize,
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`: always 24 bytes, as every `EpochNanos`
/// falls in the years 1677 to 2262. Sinks write two per result (the
/// window's start and end), the same two for every result of a window, and
/// with sliding windows an event's results go to many windows in turn (11
/// distinct bounds for `sliding:10s,1s`): the last [`KEPT`] distinct times
/// are kept, per thread. A new time of the same day as the last one takes
/// its date from it, and only the time of day is worked out.
fn rfc3339_ms(t: EpochNanos) -> [u8; 24] {
    thread_local! {
        static KEPT_TIMES: std::cell::RefCell<Kept> = const {
            std::cell::RefCell::new(Kept { times: [NO_TIME; KEPT], texts: [[0; 24]; KEPT], next: 0 })
        };
    }
    if t == NO_TIME {
        // The mark of an empty slot.
        return format_rfc3339_ms(t);
    }
    KEPT_TIMES.with(|kept| {
        let Ok(mut k) = kept.try_borrow_mut() else { return format_rfc3339_ms(t) };
        if let Some(i) = k.times.iter().position(|&at| at == t) {
            return k.texts[i];
        }
        let last = (k.next + KEPT - 1) % KEPT;
        let text = if k.times[last] != NO_TIME && day_of(k.times[last]) == day_of(t) {
            with_time_of_day(k.texts[last], t)
        } else {
            format_rfc3339_ms(t)
        };
        let i = k.next;
        k.times[i] = t;
        k.texts[i] = text;
        k.next = (i + 1) % KEPT;
        text
    })
}

/// The day of a time, counted from 1970-01-01.
#[inline]
fn day_of(t: EpochNanos) -> i64 {
    t.div_euclid(86_400 * 1_000_000_000)
}

/// [`rfc3339_ms`] without the memory: integer arithmetic only.
fn format_rfc3339_ms(t: EpochNanos) -> [u8; 24] {
    let (year, month, day) = civil_date(day_of(t));
    let mut b = *b"0000-00-00T00:00:00.000Z";
    put_digits(&mut b, 0, 4, year as u32);
    put_digits(&mut b, 5, 2, month);
    put_digits(&mut b, 8, 2, day);
    with_time_of_day(b, t)
}

/// `text` (a formatted time of the same day as `t`) with the time of day
/// of `t`.
#[inline]
fn with_time_of_day(mut b: [u8; 24], t: EpochNanos) -> [u8; 24] {
    let in_day_ms = t.rem_euclid(86_400 * 1_000_000_000) / 1_000_000;
    let (in_day, ms) = ((in_day_ms / 1000) as u32, (in_day_ms % 1000) as u32);
    put_digits(&mut b, 11, 2, in_day / 3600);
    put_digits(&mut b, 14, 2, in_day / 60 % 60);
    put_digits(&mut b, 17, 2, in_day % 60);
    put_digits(&mut b, 20, 3, ms);
    b
}

/// Writes `v` in decimal into `b[at..at + width]`, zero-padded.
#[inline]
fn put_digits(b: &mut [u8; 24], at: usize, width: usize, mut v: u32) {
    for i in (at..at + width).rev() {
        b[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// The proleptic Gregorian (year, month, day) of a day counted from
/// 1970-01-01. Days are shifted to start the year on March 1st, so that
/// the leap day ends it; the 400-year cycle (146,097 days) then repeats
/// exactly.
fn civil_date(days: i64) -> (i64, u32, u32) {
    let from_0000_03_01 = days + 719_468;
    let cycle = from_0000_03_01.div_euclid(146_097);
    let day_of_cycle = from_0000_03_01.rem_euclid(146_097);
    // Years into the cycle: every 4th year has a leap day, but not every
    // 100th, except the 400th (the last day of the cycle).
    let year_of_cycle = (day_of_cycle - day_of_cycle / 1_460 + day_of_cycle / 36_524 - day_of_cycle / 146_096) / 365;
    let day_of_year = day_of_cycle - (365 * year_of_cycle + year_of_cycle / 4 - year_of_cycle / 100);
    // Months from March: their lengths repeat 31 30 31 30 31 in steps of
    // 153 days per 5 months.
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 } as u32;
    let year = cycle * 400 + year_of_cycle + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every stopwatch reading lies between two readings of the monotonic
    /// clock taken around it (give or take a microsecond of calibration),
    /// never goes back, and stays so across several resyncs.
    #[test]
    fn a_stopwatch_reads_the_monotonic_clock() {
        let clock = Clock::new();
        let mut watch = Stopwatch::new(&clock, clock.now());
        let (mut last, mut resynced) = (0, 0);
        let base = watch.base;
        let until = clock.now() + 5 * RESYNC;
        loop {
            let before = clock.now();
            let t = watch.now();
            let after = clock.now();
            assert!(t + 1_000 >= before && t <= after + 1_000, "{before} ≤ {t} ≤ {after}");
            assert!(t >= last, "went back from {last} to {t}");
            last = t;
            if watch.base != base {
                resynced += 1;
            }
            if after > until {
                break;
            }
        }
        // Without a time-stamp counter every reading is the clock's own,
        // and there is nothing to resync.
        if TICKS.is_some() {
            assert!(resynced > 0, "never read the clock again");
        }
        // A thread that slept past the resync time reads the clock again.
        std::thread::sleep(Duration::from_millis(3));
        let (before, t) = (clock.now(), watch.now());
        assert!(t + 1_000 >= before && t <= clock.now() + 1_000);
    }

    #[test]
    fn durations_parse_and_round_trip() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert!(parse_duration("3650d").is_ok());
        for bad in ["", "s", "10", "ten s", "5 parsecs", "-1s", "1e999s", "3651d", "110000d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
        for d in ["1h", "90s", "200ms", "7us", "3ns", "2m"] {
            assert_eq!(format_duration(parse_duration(d).unwrap()), d);
        }
    }

    #[test]
    fn timestamps_by_magnitude_and_rfc3339() {
        let s = 1_700_000_000i64;
        assert_eq!(parse_timestamp(b"1700000000"), Some(s * 1_000_000_000));
        assert_eq!(parse_timestamp(b"1700000000123"), Some(s * 1_000_000_000 + 123_000_000));
        assert_eq!(parse_timestamp(b"1700000000123456"), Some(s * 1_000_000_000 + 123_456_000));
        assert_eq!(parse_timestamp(b"1700000000123456789"), Some(s * 1_000_000_000 + 123_456_789));
        assert_eq!(parse_timestamp(b"1700000000.5"), Some(s * 1_000_000_000 + 500_000_000));
        assert_eq!(parse_timestamp(b"2023-11-14T22:13:20.250Z"), Some(s * 1_000_000_000 + 250_000_000));
        assert_eq!(parse_timestamp(b"2023-11-15T00:13:20+02:00"), Some(s * 1_000_000_000));
        assert_eq!(parse_timestamp(b"hello"), None);
        assert_eq!(parse_timestamp(b""), None);
        assert_eq!(parse_timestamp(b"99999999999999999999999"), None);
        // Far outside 1824..2116, or overflowing on the way: refused.
        assert_eq!(parse_timestamp(b"99999999999999"), None);
        assert_eq!(parse_timestamp(b"9223372036000000000"), None);
        assert_eq!(parse_timestamp(b"1690-01-01T00:00:00Z"), None);
        assert!(parse_timestamp(b"2100-01-01T00:00:00Z").is_some());
    }

    #[test]
    fn rfc3339_has_milliseconds() {
        let mut s = String::new();
        write_rfc3339_ms(&mut s, 1_700_000_000_250_000_000);
        assert_eq!(s, "2023-11-14T22:13:20.250Z");
        // Leap days, century rules, before 1970, and both ends of the range.
        for (t, want) in [
            (951_782_400_000_000_000, "2000-02-29T00:00:00.000Z"),
            (4_107_542_399_999_000_000, "2100-02-28T23:59:59.999Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
            (i64::MIN, "1677-09-21T00:12:43.145Z"),
            (i64::MAX, "2262-04-11T23:47:16.854Z"),
        ] {
            let mut s = String::new();
            write_rfc3339_ms(&mut s, t);
            assert_eq!(s, want, "{t}");
            // Again, from the memory of the last two.
            let mut again = Vec::new();
            write_rfc3339_ms_bytes(&mut again, t);
            assert_eq!(again, want.as_bytes(), "{t}");
        }
    }

    /// Times in turn that share days (the sliding-window pattern: many
    /// bounds, over and over), across midnight and before 1970: each is
    /// written as it is, whether its date came from the memory or not.
    #[test]
    fn dates_taken_from_the_memory_are_right() {
        for base in [1_700_006_390_000_000_000i64, -86_400_000_000_000 - 5_000_000_000, 951_868_790_000_000_000] {
            let times: Vec<i64> = (0..20).map(|i| base + i * 1_000_000_000 + i * 7_000_000).collect();
            for round in 0..3 {
                for (i, &t) in times.iter().enumerate().skip(round) {
                    for t in [t, times[i / 2], t + 1] {
                        let mut got = Vec::new();
                        write_rfc3339_ms_bytes(&mut got, t);
                        assert_eq!(got, format_rfc3339_ms(t), "{t}");
                        let secs = t.div_euclid(1_000_000_000);
                        let nanos = t.rem_euclid(1_000_000_000) as u32;
                        let want = chrono::DateTime::from_timestamp(secs, nanos).unwrap();
                        assert_eq!(got, want.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string().as_bytes(), "{t}");
                    }
                }
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        #[test]
        fn durations_parse_or_refuse_without_panic(text in "\\PC{0,16}|[0-9.]{1,12}(ns|us|µs|ms|s|m|min|h|d|x)?") {
            let _ = parse_duration(&text);
        }

        #[test]
        fn formatted_durations_read_back(ns in 0u64..MAX_DURATION.as_nanos() as u64) {
            let d = Duration::from_nanos(ns);
            proptest::prop_assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }

        #[test]
        fn timestamps_parse_or_refuse_without_panic(field in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            if let Some(t) = parse_timestamp(&field) {
                proptest::prop_assert!(t.unsigned_abs() <= MAX_ABS_TIME as u64);
            }
        }

        #[test]
        fn written_times_match_chrono(t in proptest::num::i64::ANY) {
            let secs = t.div_euclid(1_000_000_000);
            let nanos = t.rem_euclid(1_000_000_000) as u32;
            let want = chrono::DateTime::from_timestamp(secs, nanos).unwrap().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
            let mut got = String::new();
            write_rfc3339_ms(&mut got, t);
            proptest::prop_assert_eq!(got, want);
        }

        #[test]
        fn written_times_read_back(ms in -2_000_000_000_000i64..4_000_000_000_000i64) {
            let t = ms * 1_000_000;
            let mut out = Vec::new();
            write_rfc3339_ms_bytes(&mut out, t);
            proptest::prop_assert_eq!(parse_timestamp(&out), Some(t), "{}", String::from_utf8_lossy(&out));
            if ms >= 0 && ms % 1000 == 0 {
                proptest::prop_assert_eq!(parse_timestamp((ms / 1000).to_string().as_bytes()), Some(t));
            }
        }
    }
}
