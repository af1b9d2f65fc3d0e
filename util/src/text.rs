//! Line and column of a byte offset, as people count them (from 1, in characters).

/// The start of every line of a text, for repeated lookups (the Nix reader asks for thousands).
#[derive(Clone, Debug)]
pub struct LineIndex {
    line_starts: Vec<u32>,
}

impl LineIndex {
    /// Indexes `text`.
    pub fn new(text: &str) -> LineIndex {
        let mut line_starts = vec![0];
        for (i, b) in text.bytes().enumerate() {
            if b == b'\n' {
                line_starts.push(i as u32 + 1);
            }
        }
        LineIndex { line_starts }
    }

    /// 1-based line and column (in characters) of a byte offset of `text`, the text indexed.
    /// Offsets past the end, or inside a character, count as the nearest valid one before.
    pub fn line_col(&self, text: &str, offset: usize) -> (usize, usize) {
        let offset = offset.min(text.len());
        let line = match self.line_starts.binary_search(&(offset as u32)) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line] as usize;
        let mut end = offset;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        (line + 1, text[start..end].chars().count() + 1)
    }

    /// Byte offset of a 1-based line's first character (0 past the end).
    pub fn line_offset(&self, line: usize) -> usize {
        self.line_starts.get(line.saturating_sub(1)).map(|&o| o as usize).unwrap_or(0)
    }

    /// The text of a 1-based line of `text`, without its line ending ("" past the end).
    pub fn line_text<'a>(&self, text: &'a str, line: usize) -> &'a str {
        let i = line.saturating_sub(1);
        let Some(&start) = self.line_starts.get(i) else { return "" };
        let end = self.line_starts.get(i + 1).map(|&e| e as usize).unwrap_or(text.len());
        text[start as usize..end].trim_end_matches(['\n', '\r'])
    }
}

/// `1 service`, `2 services`: a count with its noun, plural when it is not one (nouns whose
/// plural is not `+s` are given both ways with [`count_of`]).
pub fn plural(n: usize, noun: &str) -> String {
    count_of(n, noun, &format!("{noun}s"))
}

/// A count with the singular or the plural noun.
pub fn count_of(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// 1-based line and column (in characters) of a byte offset, for a single lookup.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    LineIndex::new(text).line_col(text, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals() {
        assert_eq!(plural(1, "service"), "1 service");
        assert_eq!(plural(0, "service"), "0 services");
        assert_eq!(count_of(2, "entry", "entries"), "2 entries");
    }

    #[test]
    fn counts_from_one_and_in_characters() {
        let t = "ab\ncé d\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 3), (2, 1));
        assert_eq!(line_col(t, 6), (2, 3));
        assert_eq!(line_col(t, 5), (2, 2), "inside a character: the character's column");
        assert_eq!(line_col(t, 99), (3, 1));
        let index = LineIndex::new(t);
        assert_eq!(
            (index.line_text(t, 2), index.line_text(t, 3), index.line_text(t, 9)),
            ("cé d", "", "")
        );
    }
}
