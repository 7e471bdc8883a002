//! JSON-lines output, to stdout or a file.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use super::{RunInfo, Sink};
use crate::time::{write_rfc3339_ms_bytes, EpochNanos};
use crate::window::operator::{LateEvent, WindowResult};
use crate::window::Window;

/// Something that can be written as one JSON object.
pub trait JsonRow {
    /// Appends this item as one JSON object (no newline) to `out`.
    fn write_json(&self, info: &RunInfo, out: &mut Vec<u8>);
}

// Everything below writes into a reused buffer: no allocation per result.

fn push_time(out: &mut Vec<u8>, t: Option<EpochNanos>) {
    match t {
        Some(t) => {
            out.push(b'"');
            write_rfc3339_ms_bytes(out, t);
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
}

fn push_json<V: Serialize + ?Sized>(out: &mut Vec<u8>, v: &V) {
    let mark = out.len();
    if serde_json::to_writer(&mut *out, v).is_err() {
        out.truncate(mark);
        out.extend_from_slice(b"null");
    }
}

fn push_window(out: &mut Vec<u8>, w: &Window) {
    let global = w.is_global();
    out.extend_from_slice(b"\"window_start\":");
    push_time(out, (!global).then_some(w.start));
    out.extend_from_slice(b",\"window_end\":");
    push_time(out, (!global).then_some(w.end));
}

impl<K: Serialize, O: Serialize> JsonRow for WindowResult<K, O> {
    fn write_json(&self, info: &RunInfo, out: &mut Vec<u8>) {
        out.push(b'{');
        push_window(out, &self.window);
        out.extend_from_slice(b",\"key\":");
        push_json(out, &self.key);
        out.extend_from_slice(b",\"");
        out.extend_from_slice(info.value_field.as_bytes());
        out.extend_from_slice(b"\":");
        push_json(out, &self.value);
        out.extend_from_slice(b",\"mode\":\"");
        out.extend_from_slice(info.mode.as_bytes());
        out.extend_from_slice(b"\",\"final\":");
        out.extend_from_slice(if self.is_final { b"true" } else { b"false" });
        if let Some(t) = self.max_event_time {
            out.extend_from_slice(b",\"max_event_time\":");
            push_time(out, Some(t));
        }
        out.push(b'}');
    }
}

impl<K: Serialize> JsonRow for LateEvent<K> {
    fn write_json(&self, _info: &RunInfo, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"late\":true,\"key\":");
        push_json(out, &self.key);
        out.extend_from_slice(b",\"time\":");
        push_time(out, Some(self.time));
        out.push(b',');
        push_window(out, &self.window);
        out.extend_from_slice(b",\"watermark\":");
        push_time(out, Some(self.watermark));
        let _ = write!(out, ",\"input\":{},\"offset\":{}}}", self.pos.input, self.pos.offset);
    }
}

/// Writes each item as one JSON object per line.
pub struct JsonLines {
    /// Where the lines go.
    out: Box<dyn Write + Send>,
    /// The sink's name in messages: `stdout` or the file path.
    name: String,
    /// Set at open.
    info: RunInfo,
    /// Reused for formatting, so a line costs no allocation.
    line: Vec<u8>,
    /// An exactly-once file: the file, to sync, and its length.
    durable: Option<(Arc<File>, u64)>,
}

impl JsonLines {
    /// JSON lines on stdout.
    pub fn stdout() -> Self {
        Self::to_writer(Box::new(io::stdout()), "stdout".to_string())
    }

    /// JSON lines in a file, truncated when the sink is created.
    pub fn create(path: &Path) -> io::Result<Self> {
        let file = File::create(path)?;
        Ok(Self::to_writer(Box::new(file), format!("jsonl:{}", path.display())))
    }

    /// JSON lines appended to a file that checkpoints cover (exactly
    /// once): the file is first cut back to `committed` bytes, what the
    /// last snapshot covers (0 without one), so that results written after
    /// it, which the restarted run writes again, are not there twice.
    /// [`Sink::commit`] then syncs it and tells its length; for a
    /// checkpoint, [`Sink::commit_deferred`] tells the length and hands the
    /// file over, for the checkpoint writer to sync. A file shorter
    /// than `committed` was changed by someone else, and is refused.
    pub fn exactly_once(path: &Path, committed: u64) -> io::Result<Self> {
        let existed = path.exists();
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        if !existed {
            // The new file's name must survive a power cut as surely as the
            // checkpoint that will record its length.
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            File::open(dir)?.sync_all()?;
        }
        let len = file.metadata()?.len();
        if len < committed {
            return Err(io::Error::other(format!(
                "it holds {len} bytes, fewer than the {committed} the last checkpoint committed, so it was changed outside sluice; put the file back, or start over with an empty --checkpoint-dir"
            )));
        }
        if len > committed {
            file.set_len(committed)?;
            file.sync_all()?;
            tracing::info!(
                sink = %path.display(),
                "cut {} bytes of results the last checkpoint does not cover; they are written again",
                len - committed
            );
        }
        let writer = file.try_clone()?;
        let mut sink = Self::to_writer(Box::new(writer), format!("jsonl:{}", path.display()));
        sink.durable = Some((Arc::new(file), committed));
        Ok(sink)
    }

    /// JSON lines to any writer.
    pub fn to_writer(out: Box<dyn Write + Send>, name: String) -> Self {
        JsonLines {
            out: Box::new(BufWriter::with_capacity(1 << 16, out)),
            name,
            info: RunInfo { mode: "", batch_interval_ms: None, value_field: "value" },
            line: Vec::with_capacity(256),
            durable: None,
        }
    }
}

impl<R: JsonRow> Sink<R> for JsonLines {
    fn open(&mut self, info: &RunInfo) -> io::Result<()> {
        self.info = *info;
        Ok(())
    }
    fn write(&mut self, item: &R) -> io::Result<()> {
        self.line.clear();
        item.write_json(&self.info, &mut self.line);
        self.line.push(b'\n');
        self.out.write_all(&self.line)?;
        if let Some((_, len)) = &mut self.durable {
            *len += self.line.len() as u64;
        }
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
    fn commit(&mut self) -> io::Result<Option<u64>> {
        let (len, sync) = <Self as Sink<R>>::commit_deferred(self)?;
        if let Some(file) = sync {
            file.sync_data()?;
        }
        Ok(len)
    }
    /// Writes out the buffer and hands the file over to be synced: what
    /// is written after this only adds to what the sync makes durable.
    fn commit_deferred(&mut self) -> io::Result<super::Deferred> {
        self.out.flush()?;
        Ok(match &self.durable {
            Some((file, len)) => (Some(*len), Some(file.clone())),
            None => (None, None),
        })
    }
    fn name(&self) -> String {
        self.name.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize::Word;

    fn result(key: &str, value: u64) -> WindowResult<Word, u64> {
        WindowResult { window: Window::GLOBAL, key: Word::from(key), value, max_event_time: None, is_final: true }
    }

    /// A checkpoint's commit writes the buffer out and hands the file over
    /// to be synced instead of syncing it; the length it tells is what the
    /// file holds, and later writes only add to it.
    #[test]
    fn a_deferred_commit_tells_the_length_written_and_hands_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let mut sink = JsonLines::exactly_once(&path, 0).unwrap();
        Sink::<WindowResult<Word, u64>>::write(&mut sink, &result("whale", 3)).unwrap();
        Sink::<WindowResult<Word, u64>>::write(&mut sink, &result("sea", 1)).unwrap();
        let (len, sync) = Sink::<WindowResult<Word, u64>>::commit_deferred(&mut sink).unwrap();
        let len = len.expect("an exactly-once file tells its length");
        assert_eq!(len, std::fs::metadata(&path).unwrap().len());
        let file = sync.expect("an exactly-once file is handed over to be synced");
        assert_eq!(file.metadata().unwrap().len(), len);
        file.sync_data().unwrap();
        Sink::<WindowResult<Word, u64>>::write(&mut sink, &result("ship", 2)).unwrap();
        let again = Sink::<WindowResult<Word, u64>>::commit(&mut sink).unwrap().unwrap();
        assert!(again > len);
        assert_eq!(again, std::fs::metadata(&path).unwrap().len());
        // A restart from the first commit cuts the third result away.
        drop(sink);
        let _ = JsonLines::exactly_once(&path, len).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("whale") && !text.contains("ship"), "{text}");
    }

    /// A plain file (no checkpoints) has nothing to commit or sync.
    #[test]
    fn a_plain_file_hands_over_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = JsonLines::create(&dir.path().join("o.jsonl")).unwrap();
        Sink::<WindowResult<Word, u64>>::write(&mut sink, &result("whale", 3)).unwrap();
        let (len, sync) = Sink::<WindowResult<Word, u64>>::commit_deferred(&mut sink).unwrap();
        assert!(len.is_none() && sync.is_none());
    }
}
