//! `words`: a line's words, as [`crate::tokenize`] cuts them.

use super::{Stage, Stream, Then};
use crate::record::{Line, Meta};
use crate::tokenize::{tokenize, Word};

/// The stage behind [`Stream::words`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Words;

impl Stage<Line> for Words {
    type Out = Word;

    #[inline]
    fn push<O: FnMut(Word, &Meta)>(&mut self, line: Line, meta: &Meta, out: &mut O) {
        tokenize(&line.text(), |word| out(word, meta));
    }
}

impl<S: Stage<Line, Out = Line>> Stream<Line, S> {
    /// Cuts every line into its words with [`crate::tokenize`]: the same
    /// words as `flat_map(|line, emit| tokenize(&line.text(), emit))`, but
    /// each word goes on to the next stage by a direct call the compiler
    /// can inline into the tokenizer's loop, where `flat_map`'s emitter is
    /// a call through a `dyn FnMut` for every word (BENCHMARKS.md).
    ///
    /// ```
    /// let counts = sluice::lines().words().key();
    /// # let _ = counts;
    /// ```
    pub fn words(self) -> Stream<Word, Then<S, Words, Line>> {
        self.then(Words)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::operator::lines;
    use crate::record::Position;
    use crate::time::NO_TIME;
    use crate::tokenize::tokenize;

    /// The words of `text`'s lines through a stage, each with the number
    /// of the line whose metadata came with it.
    fn through<S: Stage<Line, Out = Word>>(mut stage: S, text: &[u8]) -> Vec<(u64, Word)> {
        let mut words = Vec::new();
        for (seq, line) in text.split(|&b| b == b'\n').enumerate() {
            let line = Line::new(Bytes::copy_from_slice(line));
            let meta =
                Meta { seq: seq as u64, ingest: 0, event_time: NO_TIME, pos: Position::default(), frontier: NO_TIME };
            stage.push(line, &meta, &mut |w, meta| words.push((meta.seq, w)));
        }
        words
    }

    #[test]
    fn the_same_words_as_tokenizing_in_a_flat_map() {
        let mut text = crate::source::DEMO_TEXT.as_bytes().to_vec();
        // Invalid UTF-8, curly quotes, CRLF and a byte-order mark too.
        text.extend_from_slice(b"caf\xe9 \xe2\x80\x9cQuoted\xe2\x80\x9d words\r\n\xef\xbb\xbfBOM line\n");
        let direct = through(lines().words().into_stage(), &text);
        let flat = through(lines().flat_map(|line: Line, emit| tokenize(&line.text(), emit)).into_stage(), &text);
        assert!(direct.len() > 200_000, "{} words", direct.len());
        assert_eq!(direct, flat);
        // Each word comes with its own line's metadata.
        let lines: Vec<String> =
            text.split(|&b| b == b'\n').map(|l| String::from_utf8_lossy(l).to_lowercase()).collect();
        for (seq, w) in &direct {
            assert!(
                lines[*seq as usize].contains(w.as_str()),
                "{w:?} is not on line {seq}: {:?}",
                lines[*seq as usize]
            );
        }
    }
}
