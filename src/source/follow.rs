//! A followed file: the `sluice-file` tailer adapted to the engine.

use std::time::Duration;

use sluice_file::{Notice, Output, StartAt, TailConfig, Tailer};

use super::{Feed, Source};
use crate::error::RunError;

/// How a followed file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowOptions {
    /// Read the file found at start from its beginning rather than its end.
    pub from_beginning: bool,
    /// How often to look at the file without a notification.
    pub poll_interval: Duration,
    /// How long a partial last line may wait for its newline.
    pub idle_flush: Duration,
}

impl Default for FollowOptions {
    fn default() -> Self {
        FollowOptions {
            from_beginning: false,
            poll_interval: Duration::from_millis(250),
            idle_flush: Duration::from_secs(5),
        }
    }
}

/// Follows a file like `tail -F` until the run stops.
#[derive(Debug, Clone)]
pub struct FollowSource {
    /// What the tailer follows.
    config: TailConfig,
}

impl FollowSource {
    /// A source following `path`.
    pub fn new(path: std::path::PathBuf, opts: FollowOptions, max_line: usize) -> Self {
        let mut config = TailConfig::new(path);
        config.start = if opts.from_beginning { StartAt::Beginning } else { StartAt::End };
        config.poll_interval = opts.poll_interval;
        config.idle_flush = opts.idle_flush;
        config.max_line = max_line;
        FollowSource { config }
    }
}

impl Source for FollowSource {
    fn name(&self) -> String {
        format!("file:{}", self.config.path.display())
    }

    fn run(self: Box<Self>, feed: Feed) -> Result<(), RunError> {
        let name = self.name();
        Tailer::new(self.config).run(feed.stop_flag(), |out| match out {
            Output::Lines(lines) => {
                let cut = lines.chunk.lines.iter().filter(|l| l.truncated).count() as u32;
                if cut > 0 {
                    tracing::warn!(source = %name, lines = cut, "cut lines longer than the maximum line length (--max-line-bytes)");
                }
                let bytes = lines.chunk.data.len() as u64;
                feed.send_lines(lines.chunk, bytes, cut)
            }
            Output::Notice(n) => {
                match n {
                    Notice::Waiting(path) => tracing::warn!(source = %name, "waiting for {} to appear", path.display()),
                    Notice::Rotated { .. } => tracing::info!(source = %name, "file rotated; reading the old one to its end"),
                    Notice::Truncated { read_to, .. } => {
                        tracing::warn!(source = %name, read_to, "file truncated; reading again from its start")
                    }
                    Notice::Unreadable(why) => tracing::warn!(source = %name, "cannot read {why}; will keep trying"),
                    Notice::SavedFileGone(_) => {
                        tracing::warn!(source = %name, "the file of the saved position is gone; reading from the start")
                    }
                    Notice::Opened { .. } => {}
                }
                true
            }
        });
        Ok(())
    }
}
