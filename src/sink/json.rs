//! JSON-lines output, to stdout or a file.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{RunInfo, Sink};
use crate::time::{write_rfc3339_ms, EpochNanos};
use crate::window::operator::{LateEvent, WindowResult};
use crate::window::Window;

/// Something that can be written as one JSON object.
pub trait JsonRow {
    /// Appends this item as one JSON object (no newline) to `out`.
    fn write_json(&self, info: &RunInfo, out: &mut String);
}

fn push_time(out: &mut String, t: Option<EpochNanos>) {
    match t {
        Some(t) => {
            out.push('"');
            write_rfc3339_ms(out, t);
            out.push('"');
        }
        None => out.push_str("null"),
    }
}

fn push_json<V: Serialize + ?Sized>(out: &mut String, v: &V) {
    match serde_json::to_string(v) {
        Ok(s) => out.push_str(&s),
        Err(_) => out.push_str("null"),
    }
}

fn push_window(out: &mut String, w: &Window) {
    let global = w.is_global();
    out.push_str("\"window_start\":");
    push_time(out, (!global).then_some(w.start));
    out.push_str(",\"window_end\":");
    push_time(out, (!global).then_some(w.end));
}

impl<K: Serialize, O: Serialize> JsonRow for WindowResult<K, O> {
    fn write_json(&self, info: &RunInfo, out: &mut String) {
        out.push('{');
        push_window(out, &self.window);
        out.push_str(",\"key\":");
        push_json(out, &self.key);
        out.push_str(",\"");
        out.push_str(info.value_field);
        out.push_str("\":");
        push_json(out, &self.value);
        out.push_str(",\"mode\":\"");
        out.push_str(info.mode);
        out.push_str("\",\"final\":");
        out.push_str(if self.is_final { "true" } else { "false" });
        if let Some(t) = self.max_event_time {
            out.push_str(",\"max_event_time\":");
            push_time(out, Some(t));
        }
        out.push('}');
    }
}

impl<K: Serialize> JsonRow for LateEvent<K> {
    fn write_json(&self, _info: &RunInfo, out: &mut String) {
        out.push_str("{\"late\":true,\"key\":");
        push_json(out, &self.key);
        out.push_str(",\"time\":");
        push_time(out, Some(self.time));
        out.push(',');
        push_window(out, &self.window);
        out.push_str(",\"watermark\":");
        push_time(out, Some(self.watermark));
        out.push_str(&format!(",\"input\":{},\"offset\":{}}}", self.pos.input, self.pos.offset));
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
    line: String,
}

impl JsonLines {
    /// JSON lines on stdout.
    pub fn stdout() -> Self {
        Self::to_writer(Box::new(io::stdout()), "stdout".to_string())
    }

    /// JSON lines in a file, truncated when the sink is created.
    pub fn create(path: &Path) -> io::Result<Self> {
        let file = File::create(path)?;
        Ok(Self::to_writer(Box::new(BufWriter::with_capacity(1 << 16, file)), format!("jsonl:{}", path.display())))
    }

    /// JSON lines to any writer.
    pub fn to_writer(out: Box<dyn Write + Send>, name: String) -> Self {
        JsonLines {
            out: Box::new(BufWriter::with_capacity(1 << 16, out)),
            name,
            info: RunInfo { mode: "", batch_interval_ms: None, value_field: "value" },
            line: String::with_capacity(256),
        }
    }

    /// The path of a `jsonl:` sink, for messages.
    pub fn path_of(spec: &str) -> Option<PathBuf> {
        spec.strip_prefix("jsonl:").map(PathBuf::from)
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
        self.line.push('\n');
        self.out.write_all(self.line.as_bytes())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
    fn name(&self) -> String {
        self.name.clone()
    }
}
