//! Typed errors of the library. Each message names the problem and the fix.

use std::io;

/// A malformed specification: a duration, window, source, sink or option.
/// These are usage errors: the command line or the pipeline file is wrong.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpecError {
    /// A duration that does not parse.
    #[error("invalid duration {0:?}: write a number and a unit, like 500ms, 2s or 1m")]
    Duration(String),
    /// A window spec that does not parse.
    #[error(
        "invalid window {0:?}: use global, tumbling:SIZE, sliding:SIZE,SLIDE or session:GAP (for example tumbling:10s)"
    )]
    Window(String),
    /// A window whose sizes do not make sense together.
    #[error("invalid window {spec:?}: {why}")]
    WindowShape {
        /// The spec as written.
        spec: String,
        /// What is wrong with it and how to fix it.
        why: &'static str,
    },
    /// A source spec that does not parse.
    #[error(
        "invalid source {0:?}: use file:PATH, stdin, tcp:HOST:PORT, kafka:BROKERS/TOPIC, gen[:RATE] or demo[:RATE]"
    )]
    Source(String),
    /// A sink spec that does not parse.
    #[error("invalid sink {0:?}: use stdout, stdout:json, jsonl:PATH, kafka:BROKERS/TOPIC or null")]
    Sink(String),
    /// Any other invalid option, with its explanation.
    #[error("{0}")]
    Invalid(String),
}

/// A failure while a pipeline runs: reading a source or writing a sink.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// A source could not be opened or read.
    #[error("source {source_name}: {message}")]
    Source {
        /// The source as the user named it.
        source_name: String,
        /// What went wrong, and what to do.
        message: String,
    },
    /// The checkpoint directory cannot be used.
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    /// A source position could not be saved at the end of the run.
    #[error(
        "{message}; the results are complete, but a restart would count the lines since the last saved position again"
    )]
    SavePosition {
        /// What failed.
        message: String,
    },
    /// The last checkpoint of a run could not be written.
    #[error("{message}; free space in the checkpoint directory, or give another --checkpoint-dir")]
    CheckpointWrite {
        /// What failed, and what stays.
        message: String,
    },
    /// A checkpoint's state cannot be restored, or taken.
    #[error("checkpoint: {message}; move the checkpoint directory away to start over")]
    Restore {
        /// What failed.
        message: String,
    },
    /// A worker thread of the engine failed.
    #[error("{message}; this is a bug in sluice: please report it with the command that ran")]
    Worker {
        /// What failed.
        message: String,
    },
    /// A sink could not be written.
    #[error("sink {sink}: {err}{hint}", hint = sink_hint(err))]
    Sink {
        /// The sink as the user named it.
        sink: String,
        /// The underlying error.
        #[source]
        err: io::Error,
    },
}

/// What to check after a sink error: for files, the path and free space;
/// other sinks (Kafka) say what to do in their own message.
fn sink_hint(err: &io::Error) -> &'static str {
    if err.kind() == io::ErrorKind::Other {
        ""
    } else {
        "; check the path and free space"
    }
}
