//! A window's per-key state: a hash index from key to slot, and the
//! states themselves in a dense vector, in the order their keys came.
//!
//! Keeping the states out of the hash table keeps its buckets small: a
//! bucket holds a key and a slot number (32 bytes for a word), where a key
//! with its state inline took 48, so the table for the book's 20,487 words
//! is 1 MiB instead of 1.5, a core's L2 here. The states of the frequent
//! keys, which come early, share a few cache lines at the front of the
//! vector (after a restore, the checkpoint's order decides). On a word
//! count the look-up was where the engine lost most to the one-thread
//! counter (BENCHMARKS.md).

use std::collections::hash_map::Entry as Slot;
use std::hash::Hash;

use rustc_hash::FxHashMap;

/// Per-key values of type `V`, found by key.
#[derive(Debug, Clone)]
pub(crate) struct Keys<K, V> {
    /// Each key's slot in `values`.
    index: FxHashMap<K, usize>,
    /// The values, by slot: every slot is named by exactly one key.
    values: Vec<V>,
}

impl<K, V> Default for Keys<K, V> {
    fn default() -> Self {
        Keys { index: FxHashMap::default(), values: Vec::new() }
    }
}

impl<K, V> Keys<K, V> {
    /// Number of keys.
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Every key with its value, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.index.iter().map(|(k, &slot)| (k, &self.values[slot]))
    }
}

impl<K: Hash + Eq, V> Keys<K, V> {
    /// The value of `key`, if it has one.
    #[inline(always)]
    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let slot = *self.index.get(key)?;
        self.values.get_mut(slot)
    }

    /// The value of `key`, made by `new` if it has none.
    #[inline]
    pub(crate) fn get_or_insert_with(&mut self, key: K, new: impl FnOnce() -> V) -> &mut V {
        let slot = match self.index.entry(key) {
            Slot::Occupied(o) => *o.get(),
            Slot::Vacant(v) => {
                // The value first: a key never names a slot that is not
                // there, even if `new` panics.
                let slot = self.values.len();
                self.values.push(new());
                v.insert(slot);
                slot
            }
        };
        &mut self.values[slot]
    }
}

impl<K: Hash + Eq, V> Extend<(K, V)> for Keys<K, V> {
    /// Adds keys with their values; a key already here takes the new value.
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, pairs: I) {
        let pairs = pairs.into_iter();
        self.index.reserve(pairs.size_hint().0);
        self.values.reserve(pairs.size_hint().0);
        for (key, value) in pairs {
            match self.index.entry(key) {
                Slot::Occupied(o) => self.values[*o.get()] = value,
                Slot::Vacant(v) => {
                    v.insert(self.values.len());
                    self.values.push(value);
                }
            }
        }
    }
}

impl<K: Hash + Eq, V> IntoIterator for Keys<K, V> {
    type Item = (K, V);
    type IntoIter = std::iter::FilterMap<
        std::iter::Zip<std::vec::IntoIter<Option<K>>, std::vec::IntoIter<V>>,
        fn((Option<K>, V)) -> Option<(K, V)>,
    >;

    /// Every key with its value, in the order the keys came.
    fn into_iter(self) -> Self::IntoIter {
        let mut keys: Vec<Option<K>> = std::iter::repeat_with(|| None).take(self.values.len()).collect();
        for (key, slot) in self.index {
            keys[slot] = Some(key);
        }
        keys.into_iter().zip(self.values).filter_map(|(k, v)| Some((k?, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_inserts_and_replaces_like_a_map() {
        let mut keys: Keys<String, u64> = Keys::default();
        let mut map: FxHashMap<String, u64> = FxHashMap::default();
        let words = ["a", "b", "a", "c", "b", "a", "d"];
        for (i, w) in words.iter().enumerate() {
            *keys.get_or_insert_with(w.to_string(), || 100) += i as u64;
            *map.entry(w.to_string()).or_insert(100) += i as u64;
        }
        assert_eq!(keys.len(), 4);
        assert_eq!(keys.get_mut(&"a".to_string()).copied(), Some(100 + 7));
        assert_eq!(keys.get_mut(&"e".to_string()), None);
        // A key already there takes the new value; a new one is added.
        keys.extend([("b".to_string(), 5), ("e".to_string(), 6)]);
        map.extend([("b".to_string(), 5), ("e".to_string(), 6)]);
        let mut seen: Vec<(String, u64)> = keys.iter().map(|(k, v)| (k.clone(), *v)).collect();
        seen.sort();
        let mut want: Vec<(String, u64)> = map.clone().into_iter().collect();
        want.sort();
        assert_eq!(seen, want);
        // Owned, in the order the keys came.
        let owned: Vec<(String, u64)> = keys.into_iter().collect();
        let order: Vec<&str> = owned.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(order, ["a", "b", "c", "d", "e"]);
        assert_eq!(owned.len(), map.len());
        for (k, v) in owned {
            assert_eq!(map[&k], v, "{k}");
        }
    }
}
