//! `map`: one output per input.

use super::{Stage, Stream, Then};
use crate::record::{Line, Meta};

/// The stage behind [`Stream::map`].
#[derive(Debug, Clone)]
pub struct Map<F> {
    /// The function applied to each value.
    f: F,
}

impl<T, U, F: FnMut(T) -> U> Stage<T> for Map<F> {
    type Out = U;

    #[inline]
    fn push<O: FnMut(U, &Meta)>(&mut self, item: T, meta: &Meta, out: &mut O) {
        out((self.f)(item), meta)
    }
}

impl<T, S: Stage<Line, Out = T>> Stream<T, S> {
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
