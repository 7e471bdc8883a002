//! Bounded files and stdin.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;

use sluice_lines::LineReader;

use super::{Feed, Source};
use crate::error::RunError;

/// Reads lines from `reader` and sends them until it ends or the run stops.
pub(crate) fn pump<R: Read>(mut reader: LineReader<R>, feed: &Feed, name: &str, file: u64) -> Result<(), RunError> {
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
        if !feed.send_file_lines(chunk, file, bytes, cut) {
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

    fn extent(&self) -> Option<crate::metrics::Extent> {
        if sluice_file::is_glob(&self.path) {
            let pattern = self.path.to_string_lossy().into_owned();
            let files = glob::glob(&pattern).ok()?.flatten();
            let bytes = files.filter_map(|p| std::fs::metadata(p).ok()).filter(|m| m.is_file()).map(|m| m.len()).sum();
            return Some(crate::metrics::Extent::Bytes(bytes));
        }
        std::fs::metadata(&self.path).ok().filter(|m| m.is_file()).map(|m| crate::metrics::Extent::Bytes(m.len()))
    }

    fn run(self: Box<Self>, feed: Feed) -> Result<(), RunError> {
        let name = self.name();
        let fail = |message: String| RunError::Source { source_name: name.clone(), message };
        // A pattern in the file name reads every matching file, in name order.
        let paths = if sluice_file::is_glob(&self.path) {
            let pattern = self.path.to_string_lossy().into_owned();
            let mut paths: Vec<PathBuf> = glob::glob(&pattern)
                .map_err(|e| fail(format!("invalid pattern: {e}; use *, ? and [...] in the file name")))?
                .flatten()
                .filter(|p| p.is_file())
                .collect();
            paths.sort();
            if paths.is_empty() {
                return Err(fail("no file matches the pattern; check the directory and the pattern".to_string()));
            }
            paths
        } else {
            vec![self.path.clone()]
        };
        for (i, path) in paths.iter().enumerate() {
            let file =
                File::open(path).map_err(|e| fail(format!("cannot open {}: {}", path.display(), describe_io(&e))))?;
            if file.metadata().map(|m| m.is_dir()).unwrap_or(false) {
                return Err(fail(format!("{} is a directory; name a file", path.display())));
            }
            pump(LineReader::new(file, self.max_line), &feed, &name, i as u64)?;
            if feed.stopping() {
                break;
            }
        }
        Ok(())
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
        pump(LineReader::new(io::stdin().lock(), self.max_line), &feed, "stdin", 0)
    }
}
