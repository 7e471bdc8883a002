//! Windows: how events are grouped in time, and when groups close.
//!
//! - [`WindowSpec`] says the shape: global, tumbling, sliding or session.
//! - [`WindowConfig`] adds the time domain, the watermark and the output mode.
//! - [`operator::WindowOperator`] keeps the open windows and emits results.
//!
//! Tumbling and sliding windows are aligned to the Unix epoch: a window starts
//! at a multiple of its slide (plus [`WindowConfig::origin`], zero unless
//! set). Windows are half-open, `[start, end)`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::SpecError;
use crate::time::{format_duration, parse_duration, EpochNanos};

mod keys;
pub mod operator;
mod watermark;

pub use watermark::Watermarks;

/// The shape of the windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowSpec {
    /// One window over the whole run, emitted when the input ends.
    Global,
    /// Back-to-back windows of one size.
    Tumbling {
        /// The length of each window.
        size: Duration,
    },
    /// Overlapping windows of `size`, one starting every `slide`.
    Sliding {
        /// The length of each window.
        size: Duration,
        /// The distance between window starts.
        slide: Duration,
    },
    /// Per key, a window that stays open while events keep coming less than
    /// `gap` apart.
    Session {
        /// The longest quiet time inside one session.
        gap: Duration,
    },
}

impl FromStr for WindowSpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        let bad = || SpecError::Window(s.to_string());
        let shape = |why| SpecError::WindowShape { spec: s.to_string(), why };
        let (kind, arg) = s.split_once(':').unwrap_or((s, ""));
        let dur = |t: &str| -> Result<Duration, SpecError> {
            // A duration that is too long says so; any other problem gets the
            // window syntax.
            let d = parse_duration(t).map_err(|e| if matches!(e, SpecError::Invalid(_)) { e } else { bad() })?;
            if d.is_zero() {
                return Err(shape("a window length must be positive, like 10s"));
            }
            Ok(d)
        };
        match (kind.trim(), arg.trim()) {
            ("global", "") => Ok(WindowSpec::Global),
            ("tumbling", size) if !size.is_empty() => Ok(WindowSpec::Tumbling { size: dur(size)? }),
            ("sliding", rest) => {
                let (size, slide) = rest.split_once(',').ok_or_else(bad)?;
                let (size, slide) = (dur(size.trim())?, dur(slide.trim())?);
                if slide > size {
                    return Err(shape("the slide must not exceed the size, as in sliding:10s,2s"));
                }
                if size.as_nanos() % slide.as_nanos() != 0 {
                    return Err(shape("the size must be a whole multiple of the slide, as in sliding:10s,2s"));
                }
                Ok(WindowSpec::Sliding { size, slide })
            }
            ("session", gap) if !gap.is_empty() => Ok(WindowSpec::Session { gap: dur(gap)? }),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for WindowSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WindowSpec::Global => write!(f, "global"),
            WindowSpec::Tumbling { size } => write!(f, "tumbling:{}", format_duration(*size)),
            WindowSpec::Sliding { size, slide } => {
                write!(f, "sliding:{},{}", format_duration(*size), format_duration(*slide))
            }
            WindowSpec::Session { gap } => write!(f, "session:{}", format_duration(*gap)),
        }
    }
}

/// Which clock assigns events to windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimeDomain {
    /// The wall-clock time at which sluice read the event.
    #[default]
    Processing,
    /// The time the record itself carries.
    Event,
}

impl FromStr for TimeDomain {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        match s {
            "processing" => Ok(TimeDomain::Processing),
            "event" => Ok(TimeDomain::Event),
            _ => Err(SpecError::Invalid(format!("invalid time {s:?}: use processing or event"))),
        }
    }
}

/// When results are emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputMode {
    /// Each window once, when it closes.
    #[default]
    Final,
    /// Every change of a count, carrying the running total: per event in
    /// per-event mode, per batch in micro-batch mode.
    Update,
}

impl FromStr for OutputMode {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        match s {
            "final" => Ok(OutputMode::Final),
            "update" => Ok(OutputMode::Update),
            _ => Err(SpecError::Invalid(format!("invalid output {s:?}: use final or update"))),
        }
    }
}

/// Everything about windowing except the aggregation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowConfig {
    /// The shape of the windows.
    pub spec: WindowSpec,
    /// Which time assigns events to windows.
    pub time: TimeDomain,
    /// Bounded out-of-orderness: the watermark trails the latest event time
    /// seen by this much (event time only).
    pub watermark_delay: Duration,
    /// An input with no events for this long stops holding the watermark
    /// back (it never pushes it forward).
    pub idle_timeout: Duration,
    /// Final or update output.
    pub output: OutputMode,
    /// Tumbling and sliding windows start at `origin + k·slide` for whole
    /// `k`: the default, 0, aligns them to the Unix epoch. `sluice compare`
    /// aligns them to the start of each run, so that every mode sees the
    /// same windows.
    pub origin: EpochNanos,
}

impl WindowConfig {
    /// A config for `spec` in processing time, with no watermark delay, a
    /// 10 s idle timeout and final output.
    pub fn new(spec: WindowSpec) -> Self {
        WindowConfig {
            spec,
            time: TimeDomain::Processing,
            watermark_delay: Duration::ZERO,
            idle_timeout: Duration::from_secs(10),
            output: OutputMode::Final,
            origin: 0,
        }
    }

    /// The same config in event time, with this watermark delay.
    pub fn event_time(mut self, watermark_delay: Duration) -> Self {
        self.time = TimeDomain::Event;
        self.watermark_delay = watermark_delay;
        self
    }

    /// The same config with this output mode.
    pub fn output(mut self, output: OutputMode) -> Self {
        self.output = output;
        self
    }
}

/// A window: the half-open interval `[start, end)` of wall-clock ns.
/// The global window is `[i64::MIN, i64::MAX)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Window {
    /// First instant in the window.
    pub start: EpochNanos,
    /// First instant after the window.
    pub end: EpochNanos,
}

impl Window {
    /// The window of the global window spec.
    pub const GLOBAL: Window = Window { start: EpochNanos::MIN, end: EpochNanos::MAX };

    /// True for the global window.
    pub fn is_global(&self) -> bool {
        *self == Window::GLOBAL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_print() {
        for s in ["global", "tumbling:10s", "sliding:10s,2s", "session:30s", "tumbling:500ms"] {
            assert_eq!(s.parse::<WindowSpec>().unwrap().to_string(), s);
        }
        for bad in [
            "",
            "tumbling",
            "tumbling:",
            "tumbling:0s",
            "sliding:10s",
            "sliding:2s,10s",
            "sliding:10s,3s",
            "hopping:1s",
            "session:x",
            "global:1s",
        ] {
            let e = bad.parse::<WindowSpec>().unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains("window"), "{bad:?} gave {e}");
        }
    }
}
