//! `filter`: keeps the values a predicate accepts.

use super::{Stage, Stream, Then};
use crate::record::{Line, Record};

/// The stage behind [`Stream::filter`].
#[derive(Debug, Clone)]
pub struct Filter<F> {
    /// The predicate; `true` keeps the value.
    keep: F,
}

impl<T, F: FnMut(&T) -> bool> Stage<Record<T>> for Filter<F> {
    type Out = Record<T>;

    #[inline]
    fn push<O: FnMut(Record<T>)>(&mut self, item: Record<T>, out: &mut O) {
        if (self.keep)(&item.value) {
            out(item)
        }
    }
}

impl<T, S: Stage<Record<Line>, Out = Record<T>>> Stream<T, S> {
    /// Keeps only the values for which `keep` returns `true`.
    ///
    /// ```
    /// let long_lines = sluice::lines().filter(|line| line.as_bytes().len() > 80);
    /// # let _ = long_lines;
    /// ```
    pub fn filter<F: FnMut(&T) -> bool>(self, keep: F) -> Stream<T, Then<S, Filter<F>, T>> {
        self.then(Filter { keep })
    }
}
