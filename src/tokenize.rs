//! The word tokenizer, with an exact contract so that counts can be checked
//! against other tools:
//!
//! - a token is a maximal run of characters that are not [`char::is_whitespace`]
//!   (U+FEFF, the byte-order mark, also separates tokens, so it never becomes
//!   part of a word);
//! - leading and trailing characters that are not [`char::is_alphanumeric`]
//!   are trimmed;
//! - the rest is lower-cased exactly as [`str::to_lowercase`] does;
//! - empty tokens are dropped.
//!
//! Words are [`Word`]s: strings of up to 23 bytes live inline, so almost every
//! word costs no allocation.

pub use crate::word::Word;
use crate::word::{load8, piece};

fn is_separator(c: char) -> bool {
    c.is_whitespace() || c == '\u{FEFF}'
}

/// The high bit of every byte of a `u64`.
const HIGH: u64 = 0x8080_8080_8080_8080;
/// One in every byte.
const ONES: u64 = 0x0101_0101_0101_0101;

/// Eight bytes of text as one number, classified all at once: each test
/// answers with the high bit of every byte it holds for (SWAR).
#[derive(Clone, Copy)]
struct Lanes {
    /// The bytes, the first one lowest.
    x: u64,
    /// The bytes with their high bits cleared, for arithmetic that must not
    /// carry from one byte into the next.
    low: u64,
}

impl Lanes {
    #[inline(always)]
    fn new(x: u64) -> Self {
        Lanes { x, low: x & !HIGH }
    }

    /// Bytes below 0x80 that are at least `lo` and at most `hi`.
    #[inline(always)]
    fn within(self, lo: u8, hi: u8) -> u64 {
        let at_least = self.low + ONES * u64::from(0x80 - lo);
        let above = self.low + ONES * u64::from(0x7F - hi);
        at_least & !above & !self.x & HIGH
    }

    /// ASCII whitespace: tab, LF, VT, FF, CR and space.
    #[inline(always)]
    fn space(self) -> u64 {
        self.within(b'\t', b'\r') | self.within(b' ', b' ')
    }
}

/// The text of a line's bytes, as the engine reads it: invalid UTF-8 is
/// replaced by U+FFFD, which allocates only for such lines. Valid text is
/// checked with the standard library's validator, which goes through ASCII
/// a word at a time, before the byte-by-byte replacing one is needed.
#[inline]
pub fn text_of(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// The classes of up to 64 bytes of text, one bit per byte (bit `i` for
/// the `i`th byte): built eight bytes at a time from [`Lanes`], so that the
/// tokenizer finds a word's ends and learns what is in it with a few bit
/// operations per word instead of a loop over its bytes.
#[derive(Clone, Copy)]
struct Block {
    /// ASCII whitespace, and every place past the end of the text.
    space: u64,
    /// ASCII letters and digits.
    alnum: u64,
    /// ASCII capitals.
    upper: u64,
    /// Bytes of non-ASCII characters.
    wide: u64,
}

/// The high bits of the eight bytes of `high` (every other bit clear) as
/// the low eight bits of the result, the first byte's lowest. The product
/// puts byte `j`'s bit at bit 56 + `j`, and no two partial products meet.
#[inline(always)]
fn pack(high: u64) -> u64 {
    ((high >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
}

impl Block {
    /// The classes of `b[at..]`, at most 64 bytes of it.
    #[inline(always)]
    fn of(b: &[u8], at: usize) -> Block {
        let len = (b.len() - at).min(64);
        let mut m = Block { space: 0, alnum: 0, upper: 0, wide: 0 };
        let mut k = 0;
        while k + 8 <= len {
            m.add(Lanes::new(load8(b, at + k)), k);
            k += 8;
        }
        if k < len {
            // The last 1 to 7 bytes of the text, zero-padded.
            m.add(Lanes::new(piece(b, at + k, at + len)), k);
        }
        if len < 64 {
            m.space |= u64::MAX << len;
        }
        m
    }

    /// Adds the classes of eight bytes at bit `k`.
    #[inline(always)]
    fn add(&mut self, l: Lanes, k: usize) {
        let upper = l.within(b'A', b'Z');
        let alnum = upper | l.within(b'a', b'z') | l.within(b'0', b'9');
        self.space |= pack(l.space()) << k;
        self.alnum |= pack(alnum) << k;
        self.upper |= pack(upper) << k;
        self.wide |= pack(l.x & HIGH) << k;
    }
}

/// What the tokenizer knows of the token it is in, which may have started
/// in an earlier [`Block`].
struct Token {
    start: usize,
    /// The first and the last ASCII letter or digit, if there is one.
    alnum: Option<(usize, usize)>,
    upper: bool,
    wide: bool,
}

impl Token {
    /// The token, which ends at `end` in `text`: its word if it has one,
    /// or, with non-ASCII characters in it, its words one at a time.
    #[inline(always)]
    fn finish(self, text: &str, end: usize) -> Finished {
        if self.wide {
            // The token starts after ASCII whitespace (or at the text's
            // start) and ends at it (or at its end): char boundaries.
            Finished::General { start: self.start, end }
        } else if let Some((first, last)) = self.alnum {
            // Capitals are alphanumeric, so none was trimmed away.
            Finished::Word(Word::ascii(text.as_bytes(), first, last + 1, self.upper))
        } else {
            Finished::Nothing
        }
    }
}

/// The words of a finished token, handed out one at a time so that the
/// tokenizer calls its `emit` from one place only: the compiler then
/// inlines the caller's closure (in the engine, the whole way into the
/// window) into the tokenizer's loop, instead of calling it for every word
/// (BENCHMARKS.md).
enum Finished {
    /// No letter or digit in it.
    Nothing,
    /// An ASCII token's word.
    Word(Word),
    /// The part of a token with non-ASCII characters not yet gone through:
    /// `text[start..end]`, on char boundaries.
    General { start: usize, end: usize },
}

impl Finished {
    #[inline(always)]
    fn next(&mut self, text: &str) -> Option<Word> {
        match std::mem::replace(self, Finished::Nothing) {
            Finished::Nothing => None,
            Finished::Word(word) => Some(word),
            Finished::General { start, end } => {
                let (word, rest) = general(text, start, end);
                if rest < end {
                    *self = Finished::General { start: rest, end };
                }
                word
            }
        }
    }
}

/// Calls `emit` with each word of `text`, in order.
///
/// ```
/// let mut words = Vec::new();
/// sluice::tokenize("\u{FEFF}“Call me Ishmael.” — Some years ago…", |w| words.push(w));
/// assert_eq!(words, ["call", "me", "ishmael", "some", "years", "ago"]);
/// ```
#[inline]
pub fn tokenize(text: &str, mut emit: impl FnMut(Word)) {
    // The text is cut at ASCII whitespace, 64 bytes at a time (`Block`).
    // A piece with only ASCII in it is a token and is finished here: its
    // first and last letter or digit, and whether it has capitals, come
    // from the block's bits. A piece with other characters goes to the
    // general path, which also cuts at Unicode whitespace. Cutting at ASCII
    // whitespace first and at the rest second gives the same maximal runs
    // as cutting at all of it at once (in ASCII, `char::is_whitespace` is
    // exactly tab, LF, VT, FF, CR and space).
    let b = text.as_bytes();
    let mut tok: Option<Token> = None;
    let mut at = 0;
    // A token still open after the last full block ends in the empty
    // block at the text's end, so that every word leaves by one `emit`.
    while at < b.len() || tok.is_some() {
        let m = Block::of(b, at);
        // The bits of this block not yet gone through.
        let mut rest = u64::MAX;
        loop {
            let t = match &mut tok {
                Some(t) => t,
                None => {
                    let starts = !m.space & rest;
                    if starts == 0 {
                        break;
                    }
                    let s = starts.trailing_zeros() as usize;
                    rest &= u64::MAX << s;
                    tok.insert(Token { start: at + s, alnum: None, upper: false, wide: false })
                }
            };
            // The token's bits in this block: up to the next space, or to
            // the block's end when it goes on into the next one.
            let ends = m.space & rest;
            let mine = if ends == 0 { rest } else { rest & ((1u64 << ends.trailing_zeros()) - 1) };
            t.wide |= m.wide & mine != 0;
            t.upper |= m.upper & mine != 0;
            let alnum = m.alnum & mine;
            if alnum != 0 {
                let last = at + 63 - alnum.leading_zeros() as usize;
                let first = t.alnum.map_or(at + alnum.trailing_zeros() as usize, |(f, _)| f);
                t.alnum = Some((first, last));
            }
            if ends == 0 {
                break;
            }
            let end = at + ends.trailing_zeros() as usize;
            rest &= !mine;
            let mut words = tok.take().expect("in a token").finish(text, end);
            while let Some(word) = words.next(text) {
                emit(word);
            }
        }
        at += 64;
    }
}

/// The general path for a piece of `text` between ASCII whitespace that
/// has non-ASCII characters in it (`text[start..end]`): in one pass over
/// its characters, its next word, by its first and last letter or digit,
/// and where the rest of the piece starts (`end` when nothing is left).
#[inline(never)]
fn general(text: &str, start: usize, end: usize) -> (Option<Word>, usize) {
    let piece = &text[start..end];
    // The current token's trimmed extent in `piece`, once it has a letter
    // or digit.
    let mut span: Option<(usize, usize)> = None;
    for (i, c) in piece.char_indices() {
        let (separator, alnum) = classify(c);
        if separator {
            if let Some((s, e)) = span.take() {
                // An ASCII word (one in quotation marks, say) is read from
                // the text around it.
                return (Some(lower(text.as_bytes(), start + s, &piece[s..e])), start + i + c.len_utf8());
            }
        } else if alnum {
            span = Some((span.map_or(i, |(s, _)| s), i + c.len_utf8()));
        }
    }
    (span.map(|(s, e)| lower(text.as_bytes(), start + s, &piece[s..e])), end)
}

/// Whether `c` separates tokens, and whether it is a letter or digit. ASCII
/// and General Punctuation (U+2000 to U+206F: dashes, curly quotes, the
/// ellipsis; no letters or digits, some spaces) skip the Unicode tables.
#[inline]
fn classify(c: char) -> (bool, bool) {
    if c.is_ascii() {
        (matches!(c, '\t'..='\r' | ' '), c.is_ascii_alphanumeric())
    } else if ('\u{2000}'..='\u{206F}').contains(&c) {
        (c.is_whitespace(), false)
    } else {
        (is_separator(c), c.is_alphanumeric())
    }
}

/// The word of `t`, which starts at `at` in `text`.
fn lower(text: &[u8], at: usize, t: &str) -> Word {
    if t.is_ascii() {
        // Trimmed: it ends in a letter or digit.
        return Word::ascii(text, at, at + t.len(), true);
    }
    if t.contains('Σ') {
        // Final sigma depends on context; let the standard library decide.
        return Word::from(t.to_lowercase());
    }
    // Character by character (the same as `to_lowercase` without a
    // sigma), into a buffer on the stack while it fits.
    let mut buf = [0u8; 24];
    let mut n = 0;
    for c in t.chars() {
        if c.is_ascii() {
            if n == buf.len() {
                return Word::from(t.to_lowercase());
            }
            buf[n] = c.to_ascii_lowercase() as u8;
            n += 1;
            continue;
        }
        for l in c.to_lowercase() {
            let len = l.len_utf8();
            if n + len > buf.len() {
                return Word::from(t.to_lowercase());
            }
            l.encode_utf8(&mut buf[n..]);
            n += len;
        }
    }
    match std::str::from_utf8(&buf[..n]) {
        Ok(text) => Word::new(text),
        Err(_) => Word::from(t.to_lowercase()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        let mut v = Vec::new();
        tokenize(s, |w| v.push(w.to_string()));
        v
    }

    /// A second, deliberately naive implementation of the contract.
    fn reference(s: &str) -> Vec<String> {
        s.split(|c: char| c.is_whitespace() || c == '\u{FEFF}')
            .map(|t| t.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase())
            .filter(|t| !t.is_empty())
            .collect()
    }

    #[test]
    fn bom_crlf_and_punctuation() {
        assert_eq!(words("\u{FEFF}The Project\r"), ["the", "project"]);
        assert_eq!(words("a\u{FEFF}b"), ["a", "b"]);
        assert_eq!(words("Hello,\r\n"), ["hello"]);
        assert_eq!(words("“Call me Ishmael.”"), ["call", "me", "ishmael"]);
        assert_eq!(words("whale—the"), ["whale—the"]);
        assert_eq!(words("— ... ?! —"), Vec::<String>::new());
        assert_eq!(words("don’t can't"), ["don’t", "can't"]);
    }

    #[test]
    fn accents_and_case() {
        assert_eq!(words("Les Misérables PÈRE-LACHAISE"), ["les", "misérables", "père-lachaise"]);
        assert_eq!(words("ΟΔΥΣΣΕΥΣ"), ["οδυσσευς"]);
        assert_eq!(words("İstanbul"), ["i̇stanbul"]);
        assert_eq!(words("ǅemal"), ["ǆemal"]);
    }

    #[test]
    fn words_at_the_inline_limit() {
        // 23 bytes fit inline, 24 do not, on both paths.
        for n in [22, 23, 24, 25] {
            let ascii = "Q".repeat(n);
            assert_eq!(words(&ascii), [ascii.to_lowercase()]);
            let wide = format!("{}{}", "É".repeat(n / 2), "X".repeat(n % 2));
            assert_eq!(words(&wide), [wide.to_lowercase()]);
            let padded = format!("“{wide}”, {ascii}.");
            assert_eq!(words(&padded), reference(&padded));
        }
    }

    #[test]
    fn blocks_and_eight_byte_steps_agree_with_the_contract_at_every_alignment() {
        // Every kind of ASCII whitespace, capitals, digits, punctuation and a
        // non-ASCII letter, shifted through all eight positions of a step
        // and across the end of a 64-byte block, in words shorter and longer
        // than a step: a word that starts in one block and has its letters,
        // capitals or wide characters only in the next one included.
        let parts = [
            "Ab",
            "\t",
            "x1",
            "\u{0B}",
            "ÉTÉ",
            "\u{0C}",
            "(q)",
            "\r\n",
            "LONGERTHANEIGHT",
            " ",
            "z",
            "  ",
            "9.",
            "--Q",
            "((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((aZ",
            "é",
        ];
        for shift in 0..80 {
            for rot in 0..parts.len() {
                let mut text = " ".repeat(shift);
                for k in 0..parts.len() * 2 {
                    text.push_str(parts[(k + rot) % parts.len()]);
                }
                assert_eq!(words(&text), reference(&text), "{text:?}");
            }
        }
    }

    #[test]
    fn a_word_that_runs_to_the_end_of_a_full_block_is_emitted() {
        // Text that ends exactly at a 64-byte block's end, inside a token:
        // the token ends in the empty block after it. Every text length
        // from 1 to 200 with the last token ASCII, wide, or a piece of
        // several words joined by non-ASCII separators.
        for last in ["end", "fin,", "Été", "«a\u{2003}b\u{3000}c»", "x\u{FEFF}"] {
            for len in 1..=200 {
                let mut text = "ab ".repeat(len / 3);
                while text.len() + last.len() < len {
                    text.push('z');
                }
                text.push_str(last);
                assert_eq!(words(&text), reference(&text), "{text:?}");
            }
        }
        assert_eq!(words(&"a".repeat(64)), ["a".repeat(64)]);
        assert_eq!(words(&"b".repeat(128)), ["b".repeat(128)]);
    }

    #[test]
    fn general_punctuation_has_no_letters_or_digits() {
        // What `classify` assumes of U+2000 to U+206F.
        for c in '\u{2000}'..='\u{206F}' {
            assert!(!c.is_alphanumeric(), "{c:?}");
        }
    }

    #[test]
    fn whitespace_kinds_and_empty_lines() {
        assert!(words("").is_empty());
        assert!(words("   \t  ").is_empty());
        assert_eq!(words("a\u{00A0}b\u{2003}c\u{3000}d\te"), ["a", "b", "c", "d", "e"]);
        assert_eq!(words("a\x0Bb\x0Cc"), ["a", "b", "c"]);
    }

    #[test]
    fn invalid_utf8_is_replaced_not_an_error() {
        // U+FFFD is not alphanumeric, so it is trimmed at the edges of a word.
        let line = crate::record::Line::new(bytes::Bytes::from_static(b"caf\xE9 ok \xFF\xFEx ca\xE9f"));
        assert_eq!(words(&line.text()), ["caf", "ok", "x", "ca\u{FFFD}f"]);
    }

    #[test]
    fn a_single_16_mib_line() {
        let mut s = String::with_capacity(16 << 20);
        while s.len() < (16 << 20) - 16 {
            s.push_str("Alpha beta, ");
        }
        let w = words(&s);
        assert_eq!(w.len(), reference(&s).len());
        assert_eq!(w.len() % 2, 0);
        assert!(w.iter().step_by(2).all(|x| x == "alpha"));
    }

    #[test]
    fn agrees_with_reference_on_random_mixtures() {
        // Pieces chosen to hit every branch: ASCII and Unicode whitespace,
        // the BOM, punctuation at the edges, capitals, non-ASCII letters,
        // final sigma, and long words that do not fit inline.
        let parts = [
            " ",
            "\t",
            "\r\n",
            "\x0B",
            "\u{A0}",
            "\u{2003}",
            "\u{FEFF}",
            "\u{3000}",
            ".",
            ",",
            "“",
            "”",
            "—",
            "'",
            "-",
            "a",
            "Z",
            "7",
            "É",
            "ß",
            "Σ",
            "σ",
            "İ",
            "ǅ",
            "whale",
            "WHALE",
            "Ahab's",
            "x".repeat(30).leak(),
            "ÀB".repeat(13).leak(),
        ];
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..3000 {
            let mut text = String::new();
            for _ in 0..(state % 24) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push_str(parts[(state % parts.len() as u64) as usize]);
            }
            assert_eq!(words(&text), reference(&text), "{text:?}");
        }
    }

    #[test]
    fn agrees_with_reference_on_mixed_text() {
        let text = "\u{FEFF}It was the best of times—it was the WORST; “Quoth” the Raven: ‘Nevermore.’\r\n\
                    Ñandú ÆSIR straße ﬁne 123 4.5 -- «guillemets» Σίσυφος ΣΑΣ";
        assert_eq!(words(text), reference(text));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Any text at all, Unicode and control characters included: the
        /// fast path gives exactly the reference tokenizer's words.
        #[test]
        fn agrees_with_reference_on_any_text(text in "\\PC{0,40}|[ -~\\t\\r\\n\u{A0}\u{FEFF}\u{2003}ÉßΣσİǅ—“”]{0,60}") {
            proptest::prop_assert_eq!(words(&text), reference(&text));
        }

        /// Invalid UTF-8, as a line's text, tokenizes like its replacement.
        #[test]
        fn any_bytes_tokenize_without_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..80)) {
            let line = crate::record::Line::new(bytes::Bytes::from(bytes));
            let text = line.text();
            proptest::prop_assert_eq!(words(&text), reference(&text));
        }
    }
}
