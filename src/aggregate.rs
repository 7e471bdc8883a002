//! Aggregations over the values of one key in one window.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// An aggregation: how values of one key in one window combine.
///
/// `merge` is needed because session windows merge when an event bridges two
/// of them. `Clone` because with `--parallelism N` each of the N shards
/// aggregates with its own copy.
pub trait Aggregate<T>: Clone + Send + 'static {
    /// The running state for one key in one window; serializable so that
    /// window state can be checkpointed.
    type Acc: Clone + Send + Serialize + DeserializeOwned + 'static;
    /// What a window result carries.
    type Out: Send + 'static;
    /// The name of the result's value field in JSON output (`count`, `sum`...).
    fn name(&self) -> &'static str;
    /// The state before any value.
    fn init(&self) -> Self::Acc;
    /// Adds one value.
    fn add(&self, acc: &mut Self::Acc, value: &T);
    /// Adds everything of `other` into `into`.
    fn merge(&self, into: &mut Self::Acc, other: Self::Acc);
    /// The result for the state so far.
    fn result(&self, acc: &Self::Acc) -> Self::Out;
}

/// Counts values.
#[derive(Debug, Clone, Copy, Default)]
pub struct Count;

impl<T> Aggregate<T> for Count {
    type Acc = u64;
    type Out = u64;
    fn name(&self) -> &'static str {
        "count"
    }
    fn init(&self) -> u64 {
        0
    }
    #[inline]
    fn add(&self, acc: &mut u64, _value: &T) {
        *acc += 1;
    }
    fn merge(&self, into: &mut u64, other: u64) {
        *into += other;
    }
    fn result(&self, acc: &u64) -> u64 {
        *acc
    }
}

/// Sums an integer taken from each value (wrapping never: it saturates).
pub struct Sum<F, T> {
    /// Takes the number to add from a value.
    of: F,
    /// The value type.
    _t: PhantomData<fn(T)>,
}

impl<F: Clone, T> Clone for Sum<F, T> {
    fn clone(&self) -> Self {
        Sum { of: self.of.clone(), _t: PhantomData }
    }
}

impl<F, T> Sum<F, T> {
    /// Sums `of(value)` over the values.
    pub fn new(of: F) -> Self {
        Sum { of, _t: PhantomData }
    }
}

impl<T: 'static, F: Fn(&T) -> i64 + Clone + Send + 'static> Aggregate<T> for Sum<F, T> {
    type Acc = i64;
    type Out = i64;
    fn name(&self) -> &'static str {
        "sum"
    }
    fn init(&self) -> i64 {
        0
    }
    fn add(&self, acc: &mut i64, value: &T) {
        *acc = acc.saturating_add((self.of)(value));
    }
    fn merge(&self, into: &mut i64, other: i64) {
        *into = into.saturating_add(other);
    }
    fn result(&self, acc: &i64) -> i64 {
        *acc
    }
}

/// The least or greatest of a value taken from each value.
pub struct Extreme<F, T> {
    /// Takes the compared value from a value.
    of: F,
    /// True for the greatest, false for the least.
    greatest: bool,
    /// The value type.
    _t: PhantomData<fn(T)>,
}

impl<F: Clone, T> Clone for Extreme<F, T> {
    fn clone(&self) -> Self {
        Extreme { of: self.of.clone(), greatest: self.greatest, _t: PhantomData }
    }
}

impl<F, T> Extreme<F, T> {
    /// The least `of(value)`.
    pub fn min(of: F) -> Self {
        Extreme { of, greatest: false, _t: PhantomData }
    }
    /// The greatest `of(value)`.
    pub fn max(of: F) -> Self {
        Extreme { of, greatest: true, _t: PhantomData }
    }
    fn keep<V: Ord>(&self, acc: &mut Option<V>, v: V) {
        let better = match acc {
            None => true,
            Some(old) => (v > *old) == self.greatest && v != *old,
        };
        if better {
            *acc = Some(v);
        }
    }
}

impl<T: 'static, V, F> Aggregate<T> for Extreme<F, T>
where
    V: Ord + Clone + Send + Serialize + DeserializeOwned + 'static,
    F: Fn(&T) -> V + Clone + Send + 'static,
{
    type Acc = Option<V>;
    type Out = Option<V>;
    fn name(&self) -> &'static str {
        if self.greatest {
            "max"
        } else {
            "min"
        }
    }
    fn init(&self) -> Option<V> {
        None
    }
    fn add(&self, acc: &mut Option<V>, value: &T) {
        let v = (self.of)(value);
        self.keep(acc, v);
    }
    fn merge(&self, into: &mut Option<V>, other: Option<V>) {
        if let Some(v) = other {
            self.keep(into, v);
        }
    }
    fn result(&self, acc: &Option<V>) -> Option<V> {
        acc.clone()
    }
}

/// A user-supplied fold: a starting state, a step, and a merge for sessions.
pub struct Fold<A, I, F, M, T> {
    /// Makes the starting state.
    init: I,
    /// Adds one value to the state.
    step: F,
    /// Merges two states (session windows).
    merge: M,
    /// The state and value types.
    _t: PhantomData<fn(T) -> A>,
}

impl<A, I: Clone, F: Clone, M: Clone, T> Clone for Fold<A, I, F, M, T> {
    fn clone(&self) -> Self {
        Fold { init: self.init.clone(), step: self.step.clone(), merge: self.merge.clone(), _t: PhantomData }
    }
}

impl<A, I, F, M, T> Fold<A, I, F, M, T> {
    /// A fold from `init()`, adding with `step` and merging with `merge`.
    pub fn new(init: I, step: F, merge: M) -> Self {
        Fold { init, step, merge, _t: PhantomData }
    }
}

impl<A, I, F, M, T> Aggregate<T> for Fold<A, I, F, M, T>
where
    T: 'static,
    A: Clone + Send + Serialize + DeserializeOwned + 'static,
    I: Fn() -> A + Clone + Send + 'static,
    F: Fn(&mut A, &T) + Clone + Send + 'static,
    M: Fn(&mut A, A) + Clone + Send + 'static,
{
    type Acc = A;
    type Out = A;
    fn name(&self) -> &'static str {
        "value"
    }
    fn init(&self) -> A {
        (self.init)()
    }
    fn add(&self, acc: &mut A, value: &T) {
        (self.step)(acc, value)
    }
    fn merge(&self, into: &mut A, other: A) {
        (self.merge)(into, other)
    }
    fn result(&self, acc: &A) -> A {
        acc.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_aggregate_adds_and_merges() {
        let c = Count;
        let mut a = <Count as Aggregate<&str>>::init(&c);
        c.add(&mut a, &"x");
        c.add(&mut a, &"y");
        <Count as Aggregate<&str>>::merge(&c, &mut a, 3);
        assert_eq!(<Count as Aggregate<&str>>::result(&c, &a), 5);

        let s = Sum::new(|v: &i64| *v);
        let mut a = s.init();
        s.add(&mut a, &4);
        s.add(&mut a, &i64::MAX);
        assert_eq!(s.result(&a), i64::MAX, "sums saturate");

        let lo = Extreme::min(|v: &u32| *v);
        let hi = Extreme::max(|v: &u32| *v);
        let (mut a, mut b) = (lo.init(), hi.init());
        for v in [5, 2, 9, 2] {
            lo.add(&mut a, &v);
            hi.add(&mut b, &v);
        }
        lo.merge(&mut a, Some(1));
        hi.merge(&mut b, Some(3));
        assert_eq!((lo.result(&a), hi.result(&b)), (Some(1), Some(9)));

        let f = Fold::new(Vec::new, |acc: &mut Vec<u8>, v: &u8| acc.push(*v), |a: &mut Vec<u8>, b| a.extend(b));
        let mut a = f.init();
        f.add(&mut a, &1);
        f.merge(&mut a, vec![2, 3]);
        assert_eq!(f.result(&a), vec![1, 2, 3]);
    }
}
