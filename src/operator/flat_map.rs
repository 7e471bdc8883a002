//! `flat_map`: any number of outputs per input.

use std::marker::PhantomData;

use super::{Stage, Stream, Then};
use crate::record::{Line, Meta};

/// The stage behind [`Stream::flat_map`].
pub struct FlatMap<F, U> {
    /// Called with each value and an emitter for its outputs.
    f: F,
    /// The output type, which only the emitter's signature names.
    _out: PhantomData<fn(U)>,
}

impl<T, U, F: FnMut(T, &mut dyn FnMut(U))> Stage<T> for FlatMap<F, U> {
    type Out = U;

    #[inline]
    fn push<O: FnMut(U, &Meta)>(&mut self, item: T, meta: &Meta, out: &mut O) {
        (self.f)(item, &mut |value| out(value, meta));
    }
}

impl<T, S: Stage<Line, Out = T>> Stream<T, S> {
    /// Calls `f` with every value and an `emit` function; every value passed
    /// to `emit` goes on, carrying the metadata of the input it came from.
    /// The emitter style lets `f` borrow from its input while it emits, so
    /// words can be cut out of a line without copying the line.
    ///
    /// ```
    /// let words = sluice::lines().flat_map(|line, emit| sluice::tokenize(&line.text(), emit));
    /// # let _ = words;
    /// ```
    pub fn flat_map<U, F>(self, f: F) -> Stream<U, Then<S, FlatMap<F, U>, T>>
    where
        F: FnMut(T, &mut dyn FnMut(U)),
    {
        self.then(FlatMap { f, _out: PhantomData })
    }
}
