//! `key_by`: gives every value a key, for the keyed window that follows.

use std::marker::PhantomData;

use super::{Chain, Stage, Stream, Then};
use crate::record::{Line, Meta};

/// A value with its key (its metadata goes beside it, see [`Stage::push`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyed<K, T> {
    /// The key the window groups by.
    pub key: K,
    /// The value.
    pub value: T,
}

/// The stage behind [`Stream::key_by`].
#[derive(Debug, Clone)]
pub struct KeyBy<F> {
    /// Computes the key of a value.
    key_of: F,
}

impl<T, K, F: FnMut(&T) -> K> Stage<T> for KeyBy<F> {
    type Out = Keyed<K, T>;

    #[inline]
    fn push<O: FnMut(Keyed<K, T>, &Meta)>(&mut self, value: T, meta: &Meta, out: &mut O) {
        out(Keyed { key: (self.key_of)(&value), value }, meta)
    }
}

/// The stage behind [`Stream::key`]: each value becomes its own key.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeySelf;

impl<T> Stage<T> for KeySelf {
    type Out = Keyed<T, ()>;

    #[inline]
    fn push<O: FnMut(Keyed<T, ()>, &Meta)>(&mut self, value: T, meta: &Meta, out: &mut O) {
        out(Keyed { key: value, value: () }, meta)
    }
}

/// A stream whose values have keys; the next step is [`KeyedStream::window`].
#[derive(Debug)]
pub struct KeyedStream<K, T, S> {
    /// The stages that make the keyed values from input lines.
    pub(crate) stages: S,
    /// The key and value types, for inference.
    _types: PhantomData<fn() -> (K, T)>,
}

impl<K, T, S> KeyedStream<K, T, S> {
    /// The chain of stages built so far, to drive by hand.
    pub fn into_stage(self) -> S {
        self.stages
    }
}

impl<T, S: Stage<Line, Out = T>> Stream<T, S> {
    /// Keys every value by `key_of`.
    ///
    /// ```
    /// use sluice::{tokenize, Word};
    /// let keyed = sluice::lines()
    ///     .flat_map(|line, emit| tokenize(&line.text(), emit))
    ///     .key_by(|word: &Word| word.clone());
    /// # let _ = keyed;
    /// ```
    pub fn key_by<K, F: FnMut(&T) -> K>(self, key_of: F) -> KeyedStream<K, T, Then<S, KeyBy<F>, T>> {
        KeyedStream { stages: Chain::new(self.stages, KeyBy { key_of }), _types: PhantomData }
    }

    /// Makes every value its own key, moving it rather than copying it; the
    /// window then sees `()` values, which is all counting needs.
    ///
    /// ```
    /// use sluice::{tokenize, WindowConfig, WindowSpec};
    /// let counts = sluice::lines()
    ///     .flat_map(|line, emit| tokenize(&line.text(), emit))
    ///     .key()
    ///     .window(WindowConfig::new(WindowSpec::Global))
    ///     .count();
    /// # let _ = counts;
    /// ```
    pub fn key(self) -> KeyedStream<T, (), Then<S, KeySelf, T>> {
        KeyedStream { stages: Chain::new(self.stages, KeySelf), _types: PhantomData }
    }
}
