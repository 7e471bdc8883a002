//! `filter`: keeps the values a predicate accepts.

use super::{Stage, Stream, Then};
use crate::record::{Line, Meta};

/// The stage behind [`Stream::filter`].
#[derive(Debug, Clone)]
pub struct Filter<F> {
    /// The predicate; `true` keeps the value.
    keep: F,
}

impl<T, F: FnMut(&T) -> bool> Stage<T> for Filter<F> {
    type Out = T;

    #[inline]
    fn push<O: FnMut(T, &Meta)>(&mut self, item: T, meta: &Meta, out: &mut O) {
        if (self.keep)(&item) {
            out(item, meta)
        }
    }
}

impl<T, S: Stage<Line, Out = T>> Stream<T, S> {
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
