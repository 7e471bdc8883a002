//! Watermarks: how far event time has surely progressed.

use crate::time::EpochNanos;

/// Tracks one watermark over several inputs.
///
/// Each input's own mark is the latest event time it delivered minus the
/// allowed out-of-orderness. The combined watermark is the least mark of the
/// inputs that are not idle. An input that has delivered nothing for the idle
/// timeout stops holding the watermark back, but it never pushes it forward:
/// if every input is idle, the watermark stays where it is. The watermark
/// never goes back.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Watermarks {
    /// Allowed out-of-orderness, ns.
    delay: i64,
    /// Idle timeout, monotonic ns.
    idle: u64,
    /// Per input (indexed by input number): latest event time and the
    /// monotonic time of its latest event.
    inputs: Vec<(EpochNanos, u64)>,
    /// The combined watermark.
    value: EpochNanos,
}

impl Watermarks {
    /// A tracker with this delay and idle timeout, in ns.
    pub fn new(delay: i64, idle: u64) -> Self {
        Watermarks { delay, idle, inputs: Vec::new(), value: EpochNanos::MIN }
    }

    /// The current watermark; `i64::MIN` before any event.
    #[inline]
    pub fn get(&self) -> EpochNanos {
        self.value
    }

    /// Notes an event of `input` with event time `t`, seen at monotonic `now`.
    #[inline]
    pub fn observe(&mut self, input: u32, t: EpochNanos, now: u64) {
        let i = input as usize;
        if i >= self.inputs.len() {
            self.inputs.resize(i + 1, (EpochNanos::MIN, 0));
        }
        let slot = &mut self.inputs[i];
        slot.0 = slot.0.max(t);
        slot.1 = now;
        let mark = slot.0.saturating_sub(self.delay);
        if self.inputs.len() == 1 {
            self.raise(mark);
        } else {
            self.recompute(now);
        }
    }

    /// Re-evaluates idleness at monotonic `now` (call it on timers).
    pub fn recompute(&mut self, now: u64) {
        let mut least = EpochNanos::MAX;
        for &(max, seen) in &self.inputs {
            if max == EpochNanos::MIN || now.saturating_sub(seen) > self.idle {
                continue;
            }
            least = least.min(max.saturating_sub(self.delay));
        }
        if least != EpochNanos::MAX {
            self.raise(least);
        }
    }

    /// Moves the watermark to `t` if that is later (processing time, and the
    /// end of input with `i64::MAX`).
    #[inline]
    pub fn raise(&mut self, t: EpochNanos) {
        self.value = self.value.max(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trails_by_delay_and_never_goes_back() {
        let mut w = Watermarks::new(2, 1_000);
        w.observe(0, 10, 0);
        assert_eq!(w.get(), 8);
        w.observe(0, 5, 1);
        assert_eq!(w.get(), 8);
        w.observe(0, 20, 2);
        assert_eq!(w.get(), 18);
    }

    #[test]
    fn slowest_active_input_holds_it_back_until_idle() {
        let mut w = Watermarks::new(0, 1_000);
        w.observe(1, 50, 0);
        w.observe(0, 100, 0);
        assert_eq!(w.get(), 50);
        w.observe(0, 200, 500);
        assert_eq!(w.get(), 50, "input 1 is not idle yet");
        w.observe(0, 300, 1_600);
        assert_eq!(w.get(), 300, "input 1 went idle and stopped holding it back");
        w.recompute(10_000);
        assert_eq!(w.get(), 300, "all idle: stays, never pushed forward");
        w.observe(1, 60, 10_001);
        assert_eq!(w.get(), 300, "never goes back");
    }
}
