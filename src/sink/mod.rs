//! Sinks: where results go.
//!
//! A [`Sink`] has one required method, [`Sink::write`], and defaulted
//! lifecycle hooks. Built-in sinks: [`JsonLines`] (stdout or a file),
//! [`TopTable`] (a readable top-N table per window), [`Null`], and
//! [`from_fn`] to turn a closure into a sink.

use std::fs::File;
use std::io;
use std::sync::Arc;

/// What [`Sink::commit_deferred`] hands a checkpoint: the committed
/// length, if the sink has one, and the file the checkpoint writer must
/// sync before it writes, if the sink left the sync to it.
pub type Deferred = (Option<u64>, Option<Arc<File>>);

mod json;
mod kafka;
mod table;

pub use json::{JsonLines, JsonRow};
pub use kafka::{KafkaKey, KafkaSink};
pub use table::TopTable;

/// What a sink is told when the run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunInfo {
    /// `micro-batch` or `per-event`: the `mode` field of JSON results.
    pub mode: &'static str,
    /// The batch interval in ms, in micro-batch mode.
    pub batch_interval_ms: Option<u64>,
    /// The JSON field name of the aggregate value (`count`, `sum`...).
    pub value_field: &'static str,
}

/// A destination for items of type `R`.
pub trait Sink<R>: Send {
    /// Writes one item. It may be buffered until [`Sink::flush`].
    fn write(&mut self, item: &R) -> io::Result<()>;

    /// Called once before the first write.
    fn open(&mut self, info: &RunInfo) -> io::Result<()> {
        let _ = info;
        Ok(())
    }

    /// Makes everything written so far visible. The executors call it at
    /// each batch boundary, and in per-event mode whenever the input queue
    /// is empty.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// Makes everything written so far durable. A sink whose output a
    /// restart can cut back (an exactly-once file) returns how far it is
    /// committed, which a checkpoint records; the others flush and return
    /// `None`. Checkpoints call [`Sink::commit_deferred`], which calls this
    /// unless the sink says otherwise.
    fn commit(&mut self) -> io::Result<Option<u64>> {
        self.flush().map(|()| None)
    }

    /// [`Sink::commit`] for a checkpoint written off the executor: a sink
    /// may hand over a file to sync instead of syncing it here. The
    /// checkpoint writer syncs it before the checkpoint that records the
    /// returned length reaches disk, so events are not held back while the
    /// disk catches up. The default commits.
    fn commit_deferred(&mut self) -> io::Result<Deferred> {
        self.commit().map(|len| (len, None))
    }

    /// Called once at the end of the run, after the last write.
    fn close(&mut self) -> io::Result<()> {
        self.flush()
    }

    /// A name for error messages.
    fn name(&self) -> String {
        "sink".to_string()
    }
}

/// A sink that drops everything, for benchmarks.
#[derive(Debug, Default, Clone, Copy)]
pub struct Null;

impl<R> Sink<R> for Null {
    #[inline]
    fn write(&mut self, _item: &R) -> io::Result<()> {
        Ok(())
    }
    fn name(&self) -> String {
        "null".to_string()
    }
}

/// A sink made from a closure.
pub struct FnSink<F>(F);

/// Turns `f` into a sink.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// let seen = Arc::new(Mutex::new(0u64));
/// let s = seen.clone();
/// let sink = sluice::sink::from_fn(move |r: &sluice::WindowResult<sluice::Word, u64>| {
///     *s.lock().unwrap() += r.value;
///     Ok(())
/// });
/// # let _ = sink;
/// ```
pub fn from_fn<R, F: FnMut(&R) -> io::Result<()> + Send>(f: F) -> FnSink<F> {
    FnSink(f)
}

impl<R, F: FnMut(&R) -> io::Result<()> + Send> Sink<R> for FnSink<F> {
    fn write(&mut self, item: &R) -> io::Result<()> {
        (self.0)(item)
    }
    fn name(&self) -> String {
        "closure".to_string()
    }
}
