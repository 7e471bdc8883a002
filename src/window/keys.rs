//! A window's per-key state: a hash index from key to slot, and the
//! states themselves by slot, in the order their keys came, one vector per
//! field.
//!
//! Keeping the states out of the hash table keeps its buckets small: a
//! bucket holds a key and a slot number (32 bytes for a word), where a key
//! with its state inline took 48, so the table for the book's 20,487 words
//! is 1 MiB instead of 1.5, a core's L2 here. Keeping each field in a
//! vector of its own keeps what an item touches small too: a count's
//! aggregates take 8 bytes a key (160 KiB for the book, and the frequent
//! keys, which come early, share a few cache lines at the front); the
//! latest event times are touched only by items that have an event time,
//! and the flags only by micro-batch update output. With the three fields
//! side by side (24 bytes a key), a rare word's look-up missed the cache
//! twice, once in the table and once in the states (BENCHMARKS.md).

use std::collections::hash_map::Entry as Slot;
use std::hash::Hash;

use rustc_hash::FxHashMap;

use super::operator::Entry;
use crate::time::{EpochNanos, NO_TIME};

/// Per-key window state (aggregates of type `A`), found by key.
#[derive(Debug, Clone)]
pub(crate) struct Keys<K, A> {
    /// Each key's slot in `states`.
    index: FxHashMap<K, usize>,
    /// The states, by slot: every slot is named by exactly one key.
    states: States<A>,
}

/// Keys' states, a vector per field.
#[derive(Debug, Clone)]
struct States<A> {
    /// The aggregates.
    accs: Vec<A>,
    /// The latest event time each aggregate includes, or `NO_TIME`.
    times: Vec<EpochNanos>,
    /// Whether each changed since its last update went out.
    dirty: Vec<bool>,
}

impl<A> States<A> {
    /// The state in `slot`: only its aggregate is looked at until another
    /// field is asked for.
    #[inline(always)]
    fn at(&mut self, slot: usize) -> EntryMut<'_, A> {
        let States { accs, times, dirty } = self;
        EntryMut { acc: &mut accs[slot], slot, times, dirty }
    }

    /// Adds a state in a new slot, unchanged since its last update.
    fn push(&mut self, acc: A, max_event_time: EpochNanos) -> usize {
        self.accs.push(acc);
        self.times.push(max_event_time);
        self.dirty.push(false);
        self.accs.len() - 1
    }

    /// Room for `n` more states.
    fn reserve(&mut self, n: usize) {
        self.accs.reserve(n);
        self.times.reserve(n);
        self.dirty.reserve(n);
    }

    /// Replaces the state in `slot`.
    fn set(&mut self, slot: usize, acc: A, max_event_time: EpochNanos) {
        self.accs[slot] = acc;
        self.times[slot] = max_event_time;
        self.dirty[slot] = false;
    }
}

/// One key's state, borrowed for a change.
pub(crate) struct EntryMut<'a, A> {
    /// The aggregate.
    pub acc: &'a mut A,
    /// Its slot in `times` and `dirty`.
    slot: usize,
    /// Every slot's latest event time.
    times: &'a mut [EpochNanos],
    /// Every slot's flag.
    dirty: &'a mut [bool],
}

impl<A> EntryMut<'_, A> {
    /// Notes that the state now includes an item of event time `t`
    /// (`NO_TIME` for none); an item without one reads nothing.
    #[inline(always)]
    pub(crate) fn note_time(&mut self, t: EpochNanos) {
        if t != NO_TIME && t > self.times[self.slot] {
            self.times[self.slot] = t;
        }
    }

    /// The latest event time included, or `NO_TIME`.
    pub(crate) fn max_event_time(&self) -> EpochNanos {
        self.times[self.slot]
    }

    /// Flags the state as changed since its last update went out; true if
    /// it was not flagged yet.
    #[inline]
    pub(crate) fn flag(&mut self) -> bool {
        !std::mem::replace(&mut self.dirty[self.slot], true)
    }

    /// Clears the flag; true if it was set.
    pub(crate) fn unflag(&mut self) -> bool {
        std::mem::replace(&mut self.dirty[self.slot], false)
    }
}

impl<K, A> Default for Keys<K, A> {
    fn default() -> Self {
        let states = States { accs: Vec::new(), times: Vec::new(), dirty: Vec::new() };
        Keys { index: FxHashMap::default(), states }
    }
}

impl<K, A> Keys<K, A> {
    /// Number of keys.
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Every key with its aggregate and latest event time, in no
    /// particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &A, EpochNanos)> {
        let states = &self.states;
        self.index.iter().map(move |(k, &slot)| (k, &states.accs[slot], states.times[slot]))
    }
}

impl<K: Hash + Eq, A> Keys<K, A> {
    /// The state of `key`, if it has one.
    #[inline(always)]
    pub(crate) fn get_mut(&mut self, key: &K) -> Option<EntryMut<'_, A>> {
        let slot = *self.index.get(key)?;
        Some(self.states.at(slot))
    }

    /// The state of `key`, a new one with aggregate `new()` if it has none.
    #[inline]
    pub(crate) fn get_or_insert_with(&mut self, key: K, new: impl FnOnce() -> A) -> EntryMut<'_, A> {
        let slot = match self.index.entry(key) {
            Slot::Occupied(o) => *o.get(),
            // The state first: a key never names a slot that is not there,
            // even if `new` panics.
            Slot::Vacant(v) => *v.insert(self.states.push(new(), NO_TIME)),
        };
        self.states.at(slot)
    }
}

impl<K: Hash + Eq, A> Extend<(K, Entry<A>)> for Keys<K, A> {
    /// Adds keys with their states; a key already here takes the new state.
    fn extend<I: IntoIterator<Item = (K, Entry<A>)>>(&mut self, pairs: I) {
        let pairs = pairs.into_iter();
        self.index.reserve(pairs.size_hint().0);
        self.states.reserve(pairs.size_hint().0);
        for (key, Entry { acc, max_event_time, .. }) in pairs {
            match self.index.entry(key) {
                Slot::Occupied(o) => self.states.set(*o.get(), acc, max_event_time),
                Slot::Vacant(v) => {
                    v.insert(self.states.push(acc, max_event_time));
                }
            }
        }
    }
}

/// [`Keys`] taken apart: each key with its state, in the order the keys
/// came.
pub(crate) struct IntoIter<K, A> {
    keys: std::vec::IntoIter<Option<K>>,
    accs: std::vec::IntoIter<A>,
    times: std::vec::IntoIter<EpochNanos>,
}

impl<K, A> Iterator for IntoIter<K, A> {
    type Item = (K, Entry<A>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (key, acc, time) = (self.keys.next()?, self.accs.next()?, self.times.next()?);
            if let Some(key) = key {
                return Some((key, Entry::new(acc, time)));
            }
        }
    }
}

impl<K, A> IntoIterator for Keys<K, A> {
    type Item = (K, Entry<A>);
    type IntoIter = IntoIter<K, A>;

    /// Every key with its state, in the order the keys came.
    fn into_iter(self) -> IntoIter<K, A> {
        let mut keys: Vec<Option<K>> = std::iter::repeat_with(|| None).take(self.states.accs.len()).collect();
        for (key, slot) in self.index {
            keys[slot] = Some(key);
        }
        IntoIter { keys: keys.into_iter(), accs: self.states.accs.into_iter(), times: self.states.times.into_iter() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_inserts_and_replaces_like_a_map() {
        let mut keys: Keys<String, u64> = Keys::default();
        let mut map: FxHashMap<String, (u64, EpochNanos)> = FxHashMap::default();
        let words = ["a", "b", "a", "c", "b", "a", "d"];
        for (i, w) in words.iter().enumerate() {
            let mut e = keys.get_or_insert_with(w.to_string(), || 100);
            *e.acc += i as u64;
            // Odd items carry an event time, even ones none.
            let t = if i % 2 == 1 { 10 * i as EpochNanos } else { NO_TIME };
            e.note_time(t);
            let m = map.entry(w.to_string()).or_insert((100, NO_TIME));
            m.0 += i as u64;
            m.1 = m.1.max(t);
        }
        assert_eq!(keys.len(), 4);
        let a = keys.get_mut(&"a".to_string()).expect("a is there");
        assert_eq!((*a.acc, a.max_event_time()), (100 + 7, 50));
        let b = keys.get_mut(&"b".to_string()).expect("b is there");
        assert_eq!((*b.acc, b.max_event_time()), (100 + 5, 10));
        let c = keys.get_mut(&"c".to_string()).expect("c is there");
        assert_eq!((*c.acc, c.max_event_time()), (100 + 3, 30));
        // Items without an event time leave none.
        let d = keys.get_mut(&"d".to_string()).expect("d is there");
        assert_eq!((*d.acc, d.max_event_time()), (100 + 6, NO_TIME));
        assert!(keys.get_mut(&"e".to_string()).is_none());
        // A flag set stays set, for that key only.
        assert!(keys.get_mut(&"c".to_string()).unwrap().flag(), "not flagged before");
        assert!(!keys.get_mut(&"c".to_string()).unwrap().flag(), "flagged already");
        assert!(keys.get_mut(&"d".to_string()).unwrap().flag(), "d is not");
        assert!(keys.get_mut(&"d".to_string()).unwrap().unflag());
        assert!(!keys.get_mut(&"d".to_string()).unwrap().unflag());
        // A key already there takes the new state, its flag cleared; a new
        // one is added.
        keys.extend([("c".to_string(), Entry::new(5, 7)), ("e".to_string(), Entry::new(6, NO_TIME))]);
        map.extend([("c".to_string(), (5, 7)), ("e".to_string(), (6, NO_TIME))]);
        assert!(!keys.get_mut(&"c".to_string()).unwrap().unflag());
        let mut seen: Vec<(String, u64, EpochNanos)> = keys.iter().map(|(k, a, t)| (k.clone(), *a, t)).collect();
        seen.sort();
        let mut want: Vec<(String, u64, EpochNanos)> = map.iter().map(|(k, &(a, t))| (k.clone(), a, t)).collect();
        want.sort();
        assert_eq!(seen, want);
        // Owned, in the order the keys came.
        let owned: Vec<(String, Entry<u64>)> = keys.into_iter().collect();
        let order: Vec<&str> = owned.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(order, ["a", "b", "c", "d", "e"]);
        assert_eq!(owned.len(), map.len());
        for (k, e) in owned {
            assert_eq!((e.acc, e.max_event_time), map[&k], "{k}");
        }
    }
}
