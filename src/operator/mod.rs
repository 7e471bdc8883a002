//! The operator graph's building blocks.
//!
//! A pipeline is a chain of [`Stage`]s from input lines to a keyed window
//! aggregate. Each stage can be driven two ways, and the executors pick one:
//! - [`Stage::push`] takes one item and passes what it makes straight on to the
//!   next stage (per-event mode: an event goes through the whole graph);
//! - [`Stage::push_batch`] takes a whole batch and hands the next stage a
//!   whole batch (micro-batch mode: each operator sees the batch as a whole).
//!
//! The chain is built from generic types, so a pipeline compiles into one
//! monomorphic function per mode with no dynamic call between operators.
//! Operators live one per file: [`map`], [`filter`], [`flat_map`], [`key_by`].

use std::marker::PhantomData;

use crate::record::{Line, Record};

pub mod filter;
pub mod flat_map;
pub mod key_by;
pub mod map;

pub use filter::Filter;
pub use flat_map::FlatMap;
pub use key_by::{KeyBy, KeySelf, Keyed, KeyedStream};
pub use map::Map;

/// One operator of the graph: turns input items into output items.
pub trait Stage<I> {
    /// What the stage emits.
    type Out;

    /// Processes one item, emitting its outputs to `out` right away.
    fn push<F: FnMut(Self::Out)>(&mut self, item: I, out: &mut F);

    /// Processes a whole batch, appending the outputs to `out` and leaving
    /// `items` empty (its capacity is kept for the next batch).
    fn push_batch(&mut self, items: &mut Vec<I>, out: &mut Vec<Self::Out>) {
        for item in items.drain(..) {
            self.push(item, &mut |o| out.push(o));
        }
    }
}

/// The start of every pipeline: passes input lines on unchanged.
#[derive(Debug, Default, Clone, Copy)]
pub struct Input;

impl Stage<Record<Line>> for Input {
    type Out = Record<Line>;

    #[inline]
    fn push<F: FnMut(Record<Line>)>(&mut self, item: Record<Line>, out: &mut F) {
        out(item)
    }

    fn push_batch(&mut self, items: &mut Vec<Record<Line>>, out: &mut Vec<Record<Line>>) {
        if out.is_empty() {
            std::mem::swap(items, out);
        } else {
            out.append(items);
        }
    }
}

/// A chain whose middle batch holds records of `T`: what each operator
/// method returns.
pub type Then<S, B, T> = Chain<S, B, Record<T>>;

/// Two stages, one after the other.
#[derive(Debug)]
pub struct Chain<A, B, M> {
    /// The first stage.
    first: A,
    /// The stage fed by the first.
    then: B,
    /// The batch between them in micro-batch mode, kept to reuse its memory.
    middle: Vec<M>,
}

impl<I, A, B> Stage<I> for Chain<A, B, A::Out>
where
    A: Stage<I>,
    B: Stage<A::Out>,
{
    type Out = B::Out;

    #[inline]
    fn push<F: FnMut(B::Out)>(&mut self, item: I, out: &mut F) {
        let then = &mut self.then;
        self.first.push(item, &mut |m| then.push(m, out));
    }

    fn push_batch(&mut self, items: &mut Vec<I>, out: &mut Vec<B::Out>) {
        self.first.push_batch(items, &mut self.middle);
        self.then.push_batch(&mut self.middle, out);
    }
}

/// A stream of records of `T` under construction; `S` is the chain of stages
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
    /// [`Stage::push`] or [`Stage::push_batch`] (the operator benchmarks do).
    pub fn into_stage(self) -> S {
        self.stages
    }

    /// Appends a stage.
    pub(crate) fn then<U, B>(self, stage: B) -> Stream<U, Then<S, B, T>>
    where
        S: Stage<Record<Line>, Out = Record<T>>,
        B: Stage<Record<T>, Out = Record<U>>,
    {
        Stream::new(Chain { first: self.stages, then: stage, middle: Vec::new() })
    }
}
