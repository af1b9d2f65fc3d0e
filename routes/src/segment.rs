//! What a percent-decoded path segment may read as to an upstream that normalises Unicode
//! (NFKC, IDNA, Windows' best-fit mappings) or trims it (Windows drops trailing dots and
//! spaces), written once: the proxy refuses such segments on Funnel
//! (`tailshift_proxy::clean::funnel_segment_risk`), and route validation refuses them in mounts
//! and prefixes ([`crate::mount_problem`], [`crate::prefix_problem`]).

use unicode_normalization::UnicodeNormalization;

/// Code points that upstreams read as a dot though NFKC leaves them alone (IDNA and best-fit
/// mappings): `｡` (U+FF61, NFKC gives `。`) and `。` (U+3002). The rest (`．` U+FF0E, `․`
/// U+2024, `‥`, `…`, `﹒` U+FE52, `︰` U+FE30, `︙` U+FE19, ...) are dots under NFKC.
pub const DOT_LOOKALIKES: [char; 2] = ['\u{FF61}', '\u{3002}'];

/// Code points that best-fit mappings read as `/` or `\` though NFKC leaves them alone: `∕`
/// (U+2215), `⁄` (U+2044), `⧵` (U+29F5). The rest (`／` U+FF0F, `＼` U+FF3C, `﹨` U+FE68,
/// `％` U+FF05, `﹪` U+FE6A, ...) are `/`, `\` or `%` under NFKC.
pub const SEPARATOR_LOOKALIKES: [char; 3] = ['\u{2215}', '\u{2044}', '\u{29F5}'];

/// How a decoded segment may be read as something else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentRisk {
    /// A control character (C0, DEL or C1: `%00` ends the path for C code, U+0085 is a line
    /// break to some).
    Control,
    /// A `/`, `\` or `%` once normalised (`／`, `＼`, `％`, `∕`): a separator, or an escape
    /// decoded once more.
    Separator,
    /// Dots and spaces only once normalised, before any `?`, `#` or `;` (`..%20`, `...`, `︰`
    /// (U+FE30, `..` under NFKC), `..` + NBSP, `..?x` to an upstream that decodes before it
    /// splits off the query, `..;x` to a servlet container): a dot-segment to some upstream.
    Dots,
}

/// Why a percent-decoded, UTF-8 path segment may read, at some upstream, as a control
/// character, a separator or a dot-segment ([`SegmentRisk`]); `None` for ordinary names
/// (`café.jpg`, `a b`, `..x`). A segment with non-ASCII text is judged on its NFKC form (every
/// code point whose NFKC holds `.`, `/`, `\` or `%`, or is only spaces, is covered), and on
/// the few look-alikes NFKC leaves alone ([`DOT_LOOKALIKES`], [`SEPARATOR_LOOKALIKES`]).
pub fn decoded_segment_risk(text: &str) -> Option<SegmentRisk> {
    if text.is_ascii() {
        return risk(text);
    }
    let normal: String = text.nfkc().collect();
    risk(&normal)
}

/// [`decoded_segment_risk`] of normalised text.
fn risk(text: &str) -> Option<SegmentRisk> {
    if text.chars().any(char::is_control) {
        return Some(SegmentRisk::Control);
    }
    if text.contains(['/', '\\', '%']) || text.contains(SEPARATOR_LOOKALIKES) {
        return Some(SegmentRisk::Separator);
    }
    let head = text.split(['?', '#', ';']).next().unwrap_or(text);
    dot_like(head).then_some(SegmentRisk::Dots)
}

/// Whether text is dots, spaces and dot look-alikes only, with at least one dot: an upstream
/// that folds look-alikes, or trims trailing dots and spaces as Windows does (`.. ` is `..`,
/// `...` is `..` to some), reads it as a dot-segment.
fn dot_like(text: &str) -> bool {
    let mut dots = false;
    for c in text.chars() {
        if c == '.' || DOT_LOOKALIKES.contains(&c) {
            dots = true;
        } else if c != ' ' {
            return false;
        }
    }
    dots
}

/// A path's escapes decoded, segment by segment, when every `%` starts one (`%XX`): `None`
/// for a bare or malformed `%` (`%`, `%4`, `%zz`).
pub fn percent_decoded(path: &str) -> Option<Vec<u8>> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = b.get(i + 1).copied().and_then(hex)?;
            let l = b.get(i + 2).copied().and_then(hex)?;
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nfkc_dots_spaces_and_separators_are_read_as_such() {
        let dots = [
            "︰",
            "︰︰",
            "︙",
            "．．",
            "‥",
            "…",
            "․․",
            "﹒.",
            "｡｡",
            "。。",
            "..\u{A0}",
            "..\u{2000}",
            "..\u{200A}",
            "..\u{202F}",
            "..\u{205F}",
            "..\u{3000}",
            ".. ",
            "...",
            "..?x",
            "..#",
            ".. ?",
            "..;x",
            "．．？x",
        ];
        for t in dots {
            assert_eq!(decoded_segment_risk(t), Some(SegmentRisk::Dots), "{t:?}");
        }
        for t in ["..／x", "..＼x", "..∕x", "..⁄x", "..﹨x", "..⧵x", "％2e", "﹪2e", "a/b"]
        {
            assert_eq!(decoded_segment_risk(t), Some(SegmentRisk::Separator), "{t:?}");
        }
        for t in ["..\0", "a\u{85}b", "\u{9f}", "a\rb", "\u{7f}"] {
            assert_eq!(decoded_segment_risk(t), Some(SegmentRisk::Control), "{t:?}");
        }
        for t in
            ["café.jpg", "こんにちは。.txt", "a b", "..x", "x..", ".hidden", "．jpg", "a?..", ""]
        {
            assert_eq!(decoded_segment_risk(t), None, "{t:?}");
        }
    }

    #[test]
    fn escapes_decode_or_are_malformed() {
        assert_eq!(percent_decoded("/a%2Eb%41").as_deref(), Some(b"/a.bA".as_slice()));
        for bad in ["%", "/a%4", "/%zz", "/%%32e"] {
            assert_eq!(percent_decoded(bad), None, "{bad}");
        }
    }
}
