//! A readable table of the top N keys per window, for a terminal.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::io::{self, Write};

use super::{RunInfo, Sink};
use crate::time::write_rfc3339_ms;
use crate::window::operator::WindowResult;
use crate::window::Window;

/// Prints, at each flush, the top N keys by count of every window that had
/// results since the last flush: once per closed window in final output, once
/// per batch (or per drained queue in per-event mode) in update output.
pub struct TopTable<W: Write + Send> {
    /// Where the table goes.
    out: W,
    /// How many keys per window.
    top: usize,
    /// Results since the last flush, per window, as (count, key).
    pending: BTreeMap<Window, Vec<(u64, String)>>,
    /// Set at open.
    mode: &'static str,
}

impl TopTable<io::Stdout> {
    /// A table on stdout.
    pub fn stdout(top: usize) -> Self {
        TopTable::new(io::stdout(), top)
    }
}

impl<W: Write + Send> TopTable<W> {
    /// A table of the top `top` keys per window, written to `out`.
    pub fn new(out: W, top: usize) -> Self {
        TopTable { out, top: top.max(1), pending: BTreeMap::new(), mode: "" }
    }
}

impl<K: Display, W: Write + Send> Sink<WindowResult<K, u64>> for TopTable<W> {
    fn open(&mut self, info: &RunInfo) -> io::Result<()> {
        self.mode = info.mode;
        Ok(())
    }

    fn write(&mut self, r: &WindowResult<K, u64>) -> io::Result<()> {
        let rows = self.pending.entry(r.window).or_default();
        // Keep only a bounded candidate list: the table shows `top` rows.
        rows.push((r.value, r.key.to_string()));
        if rows.len() >= self.top * 8 {
            best_first(rows);
            rows.truncate(self.top * 4);
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut text = String::new();
        for (w, mut rows) in std::mem::take(&mut self.pending) {
            best_first(&mut rows);
            text.push_str("── window ");
            if w.is_global() {
                text.push_str("global");
            } else {
                write_rfc3339_ms(&mut text, w.start);
                text.push_str(" .. ");
                write_rfc3339_ms(&mut text, w.end);
            }
            text.push_str(&format!(" · {} · top {}\n", self.mode, rows.len().min(self.top)));
            let width = rows.iter().take(self.top).map(|r| r.1.chars().count()).max().unwrap_or(0);
            for (count, key) in rows.iter().take(self.top) {
                text.push_str(&format!("  {key:<width$}  {count:>10}\n"));
            }
        }
        self.out.write_all(text.as_bytes())?;
        self.out.flush()
    }

    fn name(&self) -> String {
        "stdout".to_string()
    }
}

/// Sorts rows by count, largest first, keeping one row per key: updates
/// repeat a key with growing totals, and its largest is its latest.
fn best_first(rows: &mut Vec<(u64, String)>) {
    rows.sort_unstable_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(&a.0)));
    rows.dedup_by(|a, b| a.1 == b.1);
    rows.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
}
