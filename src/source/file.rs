//! Bounded files and stdin.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;

use sluice_lines::LineReader;

use super::{Feed, Source};
use crate::error::RunError;

/// Reads lines from `reader` and sends them until it ends or the run stops.
pub(crate) fn pump<R: Read>(mut reader: LineReader<R>, feed: &Feed, name: &str) -> Result<(), RunError> {
    let mut last_end = 0u64;
    let mut truncated = 0u64;
    loop {
        if feed.stopping() {
            return Ok(());
        }
        let chunk = match reader.next_chunk() {
            Ok(Some(chunk)) => chunk,
            Ok(None) => return Ok(()),
            Err(e) => return Err(RunError::Source { source_name: name.to_string(), message: describe_io(&e) }),
        };
        let stats = reader.stats();
        let bytes = chunk.end_offset - last_end;
        last_end = chunk.end_offset;
        let cut = (stats.truncated - truncated) as u32;
        truncated = stats.truncated;
        if cut > 0 {
            tracing::warn!(
                source = name,
                lines = cut,
                "cut lines longer than the maximum line length (--max-line-bytes)"
            );
        }
        if !feed.send_lines(chunk, bytes, cut) {
            return Ok(());
        }
    }
}

/// A one-line description of a read error, with what to do.
pub fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory; check the path".to_string(),
        io::ErrorKind::PermissionDenied => "permission denied; check the file's permissions".to_string(),
        io::ErrorKind::IsADirectory => "is a directory; name a file".to_string(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted | io::ErrorKind::BrokenPipe => {
            format!("the connection was closed abruptly ({e}); results up to here were kept, check the sender")
        }
        _ => format!("{e}"),
    }
}

/// A file read from its start to its end.
#[derive(Debug, Clone)]
pub struct FileSource {
    /// The file.
    path: PathBuf,
    /// Longest line before it is cut.
    max_line: usize,
}

impl FileSource {
    /// A source that reads `path` to its end.
    pub fn new(path: PathBuf, max_line: usize) -> Self {
        FileSource { path, max_line }
    }
}

impl Source for FileSource {
    fn name(&self) -> String {
        format!("file:{}", self.path.display())
    }

    fn run(self: Box<Self>, feed: Feed) -> Result<(), RunError> {
        let name = self.name();
        let file = File::open(&self.path).map_err(|e| RunError::Source {
            source_name: name.clone(),
            message: format!("cannot open: {}", describe_io(&e)),
        })?;
        if file.metadata().map(|m| m.is_dir()).unwrap_or(false) {
            return Err(RunError::Source { source_name: name, message: "is a directory; name a file".to_string() });
        }
        pump(LineReader::new(file, self.max_line), &feed, &name)
    }
}

/// Standard input, read until it closes.
#[derive(Debug, Clone)]
pub struct StdinSource {
    /// Longest line before it is cut.
    max_line: usize,
}

impl StdinSource {
    /// A source reading stdin.
    pub fn new(max_line: usize) -> Self {
        StdinSource { max_line }
    }
}

impl Source for StdinSource {
    fn name(&self) -> String {
        "stdin".to_string()
    }

    fn run(self: Box<Self>, feed: Feed) -> Result<(), RunError> {
        pump(LineReader::new(io::stdin().lock(), self.max_line), &feed, "stdin")
    }
}
