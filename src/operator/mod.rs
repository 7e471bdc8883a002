//! The operator graph's building blocks.
//!
//! A pipeline is a chain of [`Stage`]s from input lines to a keyed window
//! aggregate. [`Stage::push`] takes one item and passes what it makes
//! straight on to the next stage, so an item goes through every operator up
//! to the window without being stored on the way. Both modes drive the chain
//! this way; they differ in when: per-event mode pushes each line as it
//! arrives and delivers its effect at once, micro-batch mode pushes a whole
//! batch's lines at the boundary and delivers only then (as Spark pipelines
//! a stage's narrow operators record by record over a partition).
//!
//! The chain is built from generic types, so a pipeline compiles into one
//! monomorphic function per mode with no dynamic call between operators.
//! An item's metadata (its event's [`Meta`]) travels beside it by
//! reference: the words of a line share the line's, and no stage copies it.
//! (Copying 56 bytes of metadata into every word's record, and again into
//! its keyed record, cost the router about a third of its time in stalled
//! loads; BENCHMARKS.md.)
//! Operators live one per file: [`map`], [`filter`], [`flat_map`], [`words`],
//! [`key_by`].

use std::marker::PhantomData;

use crate::record::{Line, Meta};

pub mod filter;
pub mod flat_map;
pub mod key_by;
pub mod map;
pub mod words;

pub use filter::Filter;
pub use flat_map::FlatMap;
pub use key_by::{KeyBy, KeySelf, Keyed, KeyedStream};
pub use map::Map;
pub use words::Words;

/// One operator of the graph: turns input items into output items.
pub trait Stage<I> {
    /// What the stage emits.
    type Out;

    /// Processes one item of the event `meta`, emitting its outputs to
    /// `out` right away, each with the metadata of the event it came from.
    fn push<F: FnMut(Self::Out, &Meta)>(&mut self, item: I, meta: &Meta, out: &mut F);
}

/// The start of every pipeline: passes input lines on unchanged.
#[derive(Debug, Default, Clone, Copy)]
pub struct Input;

impl Stage<Line> for Input {
    type Out = Line;

    #[inline]
    fn push<F: FnMut(Line, &Meta)>(&mut self, item: Line, meta: &Meta, out: &mut F) {
        out(item, meta)
    }
}

/// A chain whose middle items are values of `T`: what each operator
/// method returns.
pub type Then<S, B, T> = Chain<S, B, T>;

/// Two stages, one after the other; `M` is what passes between them.
#[derive(Debug)]
pub struct Chain<A, B, M> {
    /// The first stage.
    first: A,
    /// The stage fed by the first.
    then: B,
    /// The middle item type, for inference.
    _middle: PhantomData<fn(M)>,
}

impl<A, B, M> Chain<A, B, M> {
    /// `first`, then `then`.
    pub(crate) fn new(first: A, then: B) -> Self {
        Chain { first, then, _middle: PhantomData }
    }
}

impl<I, A, B> Stage<I> for Chain<A, B, A::Out>
where
    A: Stage<I>,
    B: Stage<A::Out>,
{
    type Out = B::Out;

    #[inline]
    fn push<F: FnMut(B::Out, &Meta)>(&mut self, item: I, meta: &Meta, out: &mut F) {
        let then = &mut self.then;
        self.first.push(item, meta, &mut |m, meta| then.push(m, meta, out));
    }
}

/// A stream of values of `T` under construction; `S` is the chain of stages
/// that makes them from input lines. Start one with [`lines`].
#[derive(Debug)]
pub struct Stream<T, S> {
    /// The stages so far.
    pub(crate) stages: S,
    /// The item type, for inference.
    _item: PhantomData<fn() -> T>,
}

/// The stream of input lines every pipeline starts from.
///
/// ```
/// let words = sluice::lines().flat_map(|line, emit| sluice::tokenize(&line.text(), emit));
/// # let _ = words;
/// ```
pub fn lines() -> Stream<Line, Input> {
    Stream::new(Input)
}

impl<T, S> Stream<T, S> {
    pub(crate) fn new(stages: S) -> Self {
        Stream { stages, _item: PhantomData }
    }

    /// The chain of stages built so far, to drive by hand with
    /// [`Stage::push`] (the operator benchmarks do).
    pub fn into_stage(self) -> S {
        self.stages
    }

    /// Appends a stage.
    pub(crate) fn then<U, B>(self, stage: B) -> Stream<U, Then<S, B, T>>
    where
        S: Stage<Line, Out = T>,
        B: Stage<T, Out = U>,
    {
        Stream::new(Chain::new(self.stages, stage))
    }
}
