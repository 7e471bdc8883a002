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
///
/// An event costs O(1) however many inputs there are (a topic's partitions,
/// a pattern's files), except when it comes from the input holding the
/// watermark back or an input may have gone idle since the last full look:
/// see [`Look`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
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
    /// What the last look at every input found; none when it must be
    /// taken again.
    #[serde(skip)]
    look: Option<Look>,
}

/// The inputs taking part at a full look (active and not idle), as far as
/// the watermark needs them: until `until`, none of them can go idle, so an
/// event of another input can only add that input, and an event of one of
/// them that is not `holder` only raises a mark above `least`.
#[derive(Debug, Clone, Copy)]
struct Look {
    /// The least mark among them (`i64::MAX` when there are none).
    least: EpochNanos,
    /// The input with that mark (`usize::MAX` when there are none).
    holder: usize,
    /// When it was taken (monotonic): an input idle then stays idle until
    /// it delivers, as long as time does not go back.
    at: u64,
    /// The earliest monotonic time at which one of them can go idle.
    until: u64,
}

impl Look {
    /// Counts input `i`, with its mark, which can go idle at `deadline`.
    fn include(&mut self, i: usize, mark: EpochNanos, deadline: u64) {
        if mark < self.least {
            self.least = mark;
            self.holder = i;
        }
        self.until = self.until.min(deadline);
    }
}

impl PartialEq for Watermarks {
    /// The same settings, inputs and watermark (what was last looked at
    /// is a cache).
    fn eq(&self, other: &Self) -> bool {
        (self.delay, self.idle, &self.inputs, self.value) == (other.delay, other.idle, &other.inputs, other.value)
    }
}

impl Watermarks {
    /// A tracker with this delay and idle timeout, in ns.
    pub fn new(delay: i64, idle: u64) -> Self {
        Watermarks { delay, idle, inputs: Vec::new(), value: EpochNanos::MIN, look: None }
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
            self.look = None;
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
            // Not a look at every input once there are more.
            self.look = None;
            return;
        }
        match self.look {
            Some(mut look) if look.at <= now && now <= look.until && i != look.holder => {
                // Every input of the last look still takes part; this one
                // does too (again, or anew), with a mark that only rose.
                look.include(i, mark, now.saturating_add(self.idle));
                self.look = Some(look);
                self.settle(look.least);
            }
            _ => self.recompute(now),
        }
    }

    /// Re-evaluates idleness at monotonic `now` (call it on timers): a
    /// full look at every input.
    pub fn recompute(&mut self, now: u64) {
        let mut look = Look { least: EpochNanos::MAX, holder: usize::MAX, at: now, until: u64::MAX };
        for (i, &(max, seen, active)) in self.inputs.iter().enumerate() {
            if !active || now.saturating_sub(seen) > self.idle {
                continue;
            }
            // A registered input without events yet holds it where it is.
            look.include(i, max.saturating_sub(self.delay), seen.saturating_add(self.idle));
        }
        self.look = Some(look);
        self.settle(look.least);
    }

    /// Moves the watermark to the least mark of the inputs taking part,
    /// unless one of them has delivered nothing yet (or none takes part).
    fn settle(&mut self, least: EpochNanos) {
        if least != EpochNanos::MIN && least != EpochNanos::MAX {
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

    /// The watermark as defined: a full look at every input on every call.
    struct Reference(Vec<(EpochNanos, u64, bool)>, EpochNanos);

    impl Reference {
        fn look(&mut self, now: u64, delay: i64, idle: u64) {
            let counted = self.0.iter().filter(|(_, seen, active)| *active && now.saturating_sub(*seen) <= idle);
            let least = counted.map(|(max, _, _)| max.saturating_sub(delay)).min().unwrap_or(EpochNanos::MAX);
            if least != EpochNanos::MIN && least != EpochNanos::MAX {
                self.1 = self.1.max(least);
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]

        /// Events from up to 12 inputs, registrations and timer looks, with
        /// time mostly moving on but sometimes stepping back a little (two
        /// sources stamp their chunks independently): the watermark always
        /// equals a full look's.
        #[test]
        fn equals_a_full_look_every_time(
            ops in proptest::collection::vec((0u8..10, 0u32..12, 0i64..400, 0u64..60), 1..300),
            delay in 0i64..20,
        ) {
            let idle = 100;
            let mut w = Watermarks::new(delay, idle);
            let mut r = Reference(Vec::new(), EpochNanos::MIN);
            let mut now = 0u64;
            for (kind, input, t, step) in ops {
                // Time goes on by `step`, or back by a little.
                now = if step < 6 { now.saturating_sub(step) } else { now + step - 6 };
                let i = input as usize;
                if r.0.len() <= i {
                    r.0.resize(i + 1, (EpochNanos::MIN, 0, false));
                }
                match kind {
                    0 => {
                        w.register(input, now);
                        if !r.0[i].2 {
                            r.0[i] = (EpochNanos::MIN, now, true);
                        }
                    }
                    1 => {
                        w.recompute(now);
                        r.look(now, delay, idle);
                    }
                    _ => {
                        w.observe(input, t, now);
                        let slot = &mut r.0[i];
                        *slot = (slot.0.max(t), now, true);
                        if r.0.len() == 1 {
                            r.1 = r.1.max(t.saturating_sub(delay));
                        } else {
                            r.look(now, delay, idle);
                        }
                    }
                }
                proptest::prop_assert_eq!(w.get(), r.1);
            }
        }
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
