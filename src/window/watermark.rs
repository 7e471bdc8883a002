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
    /// Per input (indexed by input number): latest event time, the
    /// monotonic time of its latest event (or of its registration), and
    /// whether it takes part (it delivered an event, or was registered).
    inputs: Vec<(EpochNanos, u64, bool)>,
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

    /// An input opened at monotonic `now` (a Kafka partition assigned, a
    /// file of a pattern found): until it delivers an event or goes idle,
    /// it holds the watermark where it is, so that its first events are not
    /// late merely because another input started earlier.
    pub fn register(&mut self, input: u32, now: u64) {
        let i = input as usize;
        if i >= self.inputs.len() {
            self.inputs.resize(i + 1, (EpochNanos::MIN, 0, false));
        }
        let slot = &mut self.inputs[i];
        if !slot.2 {
            *slot = (EpochNanos::MIN, now, true);
        }
    }

    /// Notes an event of `input` with event time `t`, seen at monotonic `now`.
    #[inline]
    pub fn observe(&mut self, input: u32, t: EpochNanos, now: u64) {
        let i = input as usize;
        if i >= self.inputs.len() {
            self.inputs.resize(i + 1, (EpochNanos::MIN, 0, false));
        }
        let slot = &mut self.inputs[i];
        slot.0 = slot.0.max(t);
        slot.1 = now;
        slot.2 = true;
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
        for &(max, seen, active) in &self.inputs {
            if !active || now.saturating_sub(seen) > self.idle {
                continue;
            }
            // A registered input without events yet holds it where it is.
            least = least.min(max.saturating_sub(self.delay));
        }
        if least == EpochNanos::MIN {
            return;
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

    #[test]
    fn a_registered_input_holds_it_until_it_delivers_or_idles() {
        let mut w = Watermarks::new(0, 1_000);
        w.register(0, 0);
        w.register(1, 0);
        w.observe(0, 100, 10);
        assert_eq!(w.get(), i64::MIN, "input 1 has delivered nothing yet");
        w.observe(1, 40, 20);
        assert_eq!(w.get(), 40);
        w.observe(0, 200, 30);
        assert_eq!(w.get(), 40);
        // A third input, registered later, holds it where it is.
        w.register(2, 40);
        w.observe(1, 300, 50);
        assert_eq!(w.get(), 40);
        w.observe(1, 350, 1_050);
        assert_eq!(w.get(), 350, "input 2 went idle without delivering (and input 0 idle too)");
    }
}
