//! [`Word`]: the string type of the word count's keys, built for the hot
//! path.
//!
//! A word of up to 23 bytes lives inline, zero-padded. The tokenizer builds
//! it from whole 8-byte pieces of the line, and hashing and comparing read
//! it back the same way. A string built byte by byte and then read back in
//! wider pieces stalls the processor (the wide load cannot be served from
//! the narrow stores still in flight). With `compact_str`, whose strings
//! are built that way, the stall was two thirds of the tokenizer's time;
//! with this type the one-thread counter (`examples/cost_counter.rs`)
//! counts 25 MB in 182 ms instead of 220 ms (BENCHMARKS.md).

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::num::NonZeroU64;
use std::ops::Deref;

/// Bytes a word can hold inline.
const INLINE: usize = 23;

/// The last of an inline word's 24 bytes: never text (0xFF is not in
/// UTF-8), and never zero, which leaves room for the heap form beside it
/// in 24 bytes.
const MARK: u64 = 0xFF << 56;

/// A word: up to 23 bytes inline (no allocation), longer ones on the heap.
/// It reads as a `&str` (it derefs to `str`), compares and orders as its
/// text does, and is serialized as a string. It takes 24 bytes.
///
/// ```
/// use sluice::Word;
/// let w = Word::from("whale");
/// assert_eq!(w, "whale");
/// assert_eq!(w.len(), 5);
/// assert!(Word::from("ahab") < w);
/// ```
#[derive(Clone)]
pub struct Word(Repr);

/// One form per string, so that equal words have equal forms.
#[derive(Clone)]
enum Repr {
    /// Every string of at most 23 bytes that does not end in U+0000.
    Inline(Inline),
    /// Every other string.
    Heap(Box<str>),
}

/// An inline word: its bytes in memory order, zero-padded to 23, then
/// [`MARK`]. Kept as three 8-byte pieces, written and read whole.
#[derive(Clone, Copy, bytemuck::NoUninit)]
#[repr(C)]
struct Inline {
    a: u64,
    b: u64,
    c: NonZeroU64,
}

impl Inline {
    /// From the pieces' values as little-endian numbers (the first byte
    /// lowest); the last byte of `p[2]` is replaced by the mark.
    #[inline(always)]
    fn new(p: [u64; 3]) -> Self {
        let c = NonZeroU64::new((p[2] | MARK).to_le()).unwrap_or(NonZeroU64::MAX);
        Inline { a: p[0].to_le(), b: p[1].to_le(), c }
    }

    /// The pieces' values, without the mark.
    #[inline(always)]
    fn pieces(&self) -> [u64; 3] {
        [u64::from_le(self.a), u64::from_le(self.b), u64::from_le(self.c.get()) & !MARK]
    }

    /// The text.
    #[inline]
    fn text(&self) -> &str {
        let [a, b, c] = self.pieces();
        let len = if c != 0 {
            16 + used(c)
        } else if b != 0 {
            8 + used(b)
        } else {
            used(a)
        };
        // Built only from whole `str`s (or whole ASCII ranges).
        std::str::from_utf8(&bytemuck::bytes_of(self)[..len]).expect("a word holds UTF-8")
    }
}

/// The three pieces of a text of at most 23 bytes, zero-padded.
#[inline]
fn padded(text: &[u8]) -> [u64; 3] {
    let mut b = [0u8; 24];
    b[..text.len()].copy_from_slice(text);
    let at =
        |i: usize| u64::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3], b[i + 4], b[i + 5], b[i + 6], b[i + 7]]);
    [at(0), at(8), at(16)]
}

/// Reads 8 bytes at `at` (which must have 8 bytes after it).
#[inline(always)]
pub(crate) fn load8(b: &[u8], at: usize) -> u64 {
    let s = &b[at..at + 8];
    u64::from_le_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]])
}

/// Keeps the first `n` bytes of a piece (0 ≤ n ≤ 8) and zeroes the rest.
#[inline(always)]
fn keep(x: u64, n: usize) -> u64 {
    if n >= 8 {
        x
    } else {
        x & ((1u64 << (n * 8)) - 1)
    }
}

/// ASCII capitals to lower case in all eight bytes of a piece at once;
/// every other byte stays as it is.
#[inline(always)]
fn ascii_lower(x: u64) -> u64 {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let low7 = x & !HIGH;
    // The high bit of each byte: set from 'A' (0x41) up, and from past 'Z'
    // (0x5B) up; no carry crosses a byte, as every byte is below 0x80.
    let from_a = low7.wrapping_add(0x3F3F_3F3F_3F3F_3F3F);
    let past_z = low7.wrapping_add(0x2525_2525_2525_2525);
    let capital = from_a & !past_z & !x & HIGH;
    x | (capital >> 2)
}

impl Word {
    /// The word of `text`.
    pub fn new(text: &str) -> Self {
        let b = text.as_bytes();
        if b.len() > INLINE || b.last() == Some(&0) {
            return Word(Repr::Heap(text.into()));
        }
        Word(Repr::Inline(Inline::new(padded(b))))
    }

    /// The word of `text[start..end]`, lower-cased first when `lower`.
    /// The caller promises that the range is ASCII and ends in a letter or
    /// digit. A word of up to 23 bytes is read from `text` in whole 8-byte
    /// pieces (see the module's documentation).
    #[inline(always)]
    pub(crate) fn ascii(text: &[u8], start: usize, end: usize, lower: bool) -> Self {
        debug_assert!(start < end && text[end - 1] != 0 && text[start..end].is_ascii());
        let n = end - start;
        if n > INLINE {
            let mut s = String::from_utf8_lossy(&text[start..end]).into_owned();
            if lower {
                s.make_ascii_lowercase();
            }
            return Word(Repr::Heap(s.into_boxed_str()));
        }
        // Whole 8-byte pieces from the word's start; the last, partial one
        // (if any) by [`piece`]. Short words, most of them, take one piece.
        let lower = |x: u64| if lower { ascii_lower(x) } else { x };
        let p = if n <= 8 {
            [lower(piece(text, start, end)), 0, 0]
        } else if n <= 16 {
            [lower(load8(text, start)), lower(piece(text, start + 8, end)), 0]
        } else {
            [lower(load8(text, start)), lower(load8(text, start + 8)), lower(piece(text, start + 16, end))]
        };
        Word(Repr::Inline(Inline::new(p)))
    }

    /// The text.
    #[inline]
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline(w) => w.text(),
            Repr::Heap(s) => s,
        }
    }
}

/// Bytes in use in a piece: up to its last non-zero byte.
#[inline(always)]
fn used(x: u64) -> usize {
    (64 - x.leading_zeros() as usize).div_ceil(8)
}

/// The bytes `text[from..end]` (1 to 8 of them) as a zero-padded piece:
/// read whole when eight bytes follow `from`, else as the eight bytes that
/// end at `end` moved down, else (a text shorter than eight bytes) copied.
#[inline(always)]
pub(crate) fn piece(text: &[u8], from: usize, end: usize) -> u64 {
    let r = end - from;
    if from + 8 <= text.len() {
        keep(load8(text, from), r)
    } else if end >= 8 {
        load8(text, end - 8) >> (8 * (8 - r))
    } else {
        let mut t = [0u8; 8];
        t[..r].copy_from_slice(&text[from..end]);
        u64::from_le_bytes(t)
    }
}

impl Default for Word {
    fn default() -> Self {
        Word(Repr::Inline(Inline::new([0; 3])))
    }
}

impl Deref for Word {
    type Target = str;
    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Word {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Word {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            // Piece by piece, as the words were written.
            (Repr::Inline(a), Repr::Inline(b)) => (a.a ^ b.a) | (a.b ^ b.b) | (a.c.get() ^ b.c.get()) == 0,
            (Repr::Heap(a), Repr::Heap(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Word {}

impl Hash for Word {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        match &self.0 {
            // A word of up to 8 bytes (most of them) is one piece: the
            // others are zero but for the mark. One step of the hasher
            // then, instead of three in a row.
            Repr::Inline(w) if w.b == 0 && w.c.get() == MARK.to_le() => state.write_u64(w.a),
            Repr::Inline(w) => {
                state.write_u64(w.a);
                state.write_u64(w.b);
                state.write_u64(w.c.get());
            }
            Repr::Heap(s) => s.hash(state),
        }
    }
}

impl Ord for Word {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for Word {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq<str> for Word {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Word {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Word {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<Word> for str {
    fn eq(&self, other: &Word) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Word> for &str {
    fn eq(&self, other: &Word) -> bool {
        *self == other.as_str()
    }
}

impl From<&str> for Word {
    fn from(s: &str) -> Self {
        Word::new(s)
    }
}

impl From<String> for Word {
    fn from(s: String) -> Self {
        if s.len() > INLINE {
            Word(Repr::Heap(s.into_boxed_str()))
        } else {
            Word::new(&s)
        }
    }
}

impl From<&String> for Word {
    fn from(s: &String) -> Self {
        Word::new(s)
    }
}

impl From<Word> for String {
    fn from(w: Word) -> Self {
        match w.0 {
            Repr::Heap(s) => s.into(),
            Repr::Inline(_) => w.as_str().to_string(),
        }
    }
}

impl std::str::FromStr for Word {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Word::new(s))
    }
}

impl fmt::Display for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl fmt::Debug for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl serde::Serialize for Word {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Word {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = Word;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Word, E> {
                Ok(Word::new(s))
            }
            fn visit_string<E: serde::de::Error>(self, s: String) -> Result<Word, E> {
                Ok(Word::from(s))
            }
        }
        d.deserialize_str(Visit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;

    fn hash(w: &Word) -> u64 {
        let mut h = DefaultHasher::new();
        w.hash(&mut h);
        h.finish()
    }

    #[test]
    fn a_word_takes_24_bytes() {
        assert_eq!(std::mem::size_of::<Word>(), 24);
    }

    #[test]
    fn every_length_round_trips() {
        for n in 0..40 {
            let s: String = "abcdefghijklmnopqrstuvwxyz0123456789ABCD".chars().take(n).collect();
            let w = Word::new(&s);
            assert_eq!(w.as_str(), s);
            assert_eq!(w.len(), n);
            assert_eq!(w, Word::from(s.clone()));
            assert_eq!(hash(&w), hash(&Word::from(s.clone())));
            assert_eq!(String::from(w), s);
        }
    }

    #[test]
    fn zero_bytes_and_unicode() {
        for s in [
            "",
            "\0",
            "a\0",
            "a\0b",
            "\0\0\0",
            "é",
            "naïve",
            "日本語の単語",
            "x\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
        ] {
            let w = Word::new(s);
            assert_eq!(w.as_str(), s, "{s:?}");
            assert_eq!(w, Word::from(s.to_string()));
        }
        assert_ne!(Word::new("a"), Word::new("a\0"));
        assert_ne!(Word::new(""), Word::new("\0"));
    }

    #[test]
    fn orders_and_compares_as_text() {
        let mut v: Vec<Word> =
            ["whale", "ahab", "", "a", "ab", "a-very-long-word-that-does-not-fit", "b"].map(Word::from).to_vec();
        v.sort();
        let mut s: Vec<&str> = ["whale", "ahab", "", "a", "ab", "a-very-long-word-that-does-not-fit", "b"].to_vec();
        s.sort();
        assert_eq!(v, s);
        let long = Word::from("x".repeat(30));
        assert_eq!(long.as_str(), "x".repeat(30));
        assert_eq!(long, Word::new(&"x".repeat(30)));
    }

    #[test]
    fn serializes_as_a_string() {
        let w = Word::from("whale");
        assert_eq!(serde_json::to_string(&w).unwrap(), "\"whale\"");
        let back: Word = serde_json::from_str("\"whale\"").unwrap();
        assert_eq!(back, w);
        let long: Word = serde_json::from_str(&format!("\"{}\"", "y".repeat(50))).unwrap();
        assert_eq!(long, "y".repeat(50));
    }

    proptest::proptest! {
        /// A word cut from any place of any ASCII text, lower-cased or
        /// not, equals (and hashes like) the same word built from its
        /// text: at the start, in the middle and at the end of the text,
        /// and in texts shorter than 24 bytes.
        #[test]
        fn ascii_cut_equals_built(text in "[ -~]{1,60}", a in 0usize..60, len in 1usize..30, lower in proptest::bool::ANY) {
            let start = a % text.len();
            let end = (start + len).min(text.len());
            let mut want = text[start..end].to_string();
            if lower {
                want.make_ascii_lowercase();
            }
            // The contract asks for a last byte that is a letter or digit;
            // printable ASCII is never zero, which is what matters here.
            let got = Word::ascii(text.as_bytes(), start, end, lower);
            proptest::prop_assert_eq!(got.as_str(), want.as_str());
            let built = Word::new(&want);
            proptest::prop_assert_eq!(hash(&got), hash(&built));
            proptest::prop_assert!(got == built);
        }

        /// The eight-bytes-at-once lower-casing agrees with the standard
        /// library's on every byte value.
        #[test]
        fn lower_agrees_with_std(x in proptest::num::u64::ANY) {
            let mut want = x.to_le_bytes();
            for b in &mut want {
                if b.is_ascii_uppercase() {
                    *b = b.to_ascii_lowercase();
                }
            }
            proptest::prop_assert_eq!(ascii_lower(x).to_le_bytes(), want);
        }
    }
}
