//! `map`: one output per input.

use super::{Stage, Stream, Then};
use crate::record::{Line, Record};

/// The stage behind [`Stream::map`].
#[derive(Debug, Clone)]
pub struct Map<F> {
    /// The function applied to each value.
    f: F,
}

impl<T, U, F: FnMut(T) -> U> Stage<Record<T>> for Map<F> {
    type Out = Record<U>;

    #[inline]
    fn push<O: FnMut(Record<U>)>(&mut self, item: Record<T>, out: &mut O) {
        out(Record { value: (self.f)(item.value), meta: item.meta })
    }
}

impl<T, S: Stage<Record<Line>, Out = Record<T>>> Stream<T, S> {
    /// Applies `f` to every value.
    ///
    /// ```
    /// let lengths = sluice::lines().map(|line| line.as_bytes().len());
    /// # let _ = lengths;
    /// ```
    pub fn map<U, F: FnMut(T) -> U>(self, f: F) -> Stream<U, Then<S, Map<F>, T>> {
        self.then(Map { f })
    }
}
