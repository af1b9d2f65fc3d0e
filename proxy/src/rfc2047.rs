//! RFC 2047 encoded words (`=?utf-8?q?J=C3=BCrgen?=`, `=?utf-8?b?SsO8cmdlbg==?=`), as tailscaled
//! sends a non-ASCII `Tailscale-User-Name`: decoded, so upstreams get the name tsnsrv gave them.
//! Anything that is not a well-formed UTF-8 encoded word is left as it is.

use base64::Engine;

/// Decodes the encoded words of a header value; whitespace between two encoded words goes.
pub fn decode(value: &str) -> String {
    if !value.contains("=?") {
        return value.to_string();
    }
    let mut out = String::new();
    let mut last_was_word = false;
    let mut pending_space = String::new();
    for token in value.split_inclusive(char::is_whitespace) {
        let word = token.trim_end();
        let space = &token[word.len()..];
        match decode_word(word) {
            Some(text) => {
                // RFC 2047 6.2: whitespace between adjacent encoded words is dropped.
                if !last_was_word {
                    out.push_str(&pending_space);
                }
                out.push_str(&text);
                last_was_word = true;
            }
            None => {
                out.push_str(&pending_space);
                out.push_str(word);
                last_was_word = false;
            }
        }
        pending_space = space.to_string();
    }
    out.push_str(&pending_space);
    out
}

fn decode_word(w: &str) -> Option<String> {
    let inner = w.strip_prefix("=?")?.strip_suffix("?=")?;
    let mut parts = inner.splitn(3, '?');
    let (charset, encoding, text) = (parts.next()?, parts.next()?, parts.next()?);
    if !charset.eq_ignore_ascii_case("utf-8") {
        return None;
    }
    let bytes = match encoding {
        "q" | "Q" => {
            let b = text.as_bytes();
            let mut out = Vec::with_capacity(b.len());
            let mut i = 0;
            while i < b.len() {
                match b[i] {
                    b'_' => out.push(b' '),
                    b'=' => {
                        let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                        out.push(u8::from_str_radix(hex, 16).ok()?);
                        i += 2;
                    }
                    c => out.push(c),
                }
                i += 1;
            }
            out
        }
        "b" | "B" => base64::engine::general_purpose::STANDARD.decode(text).ok()?,
        _ => return None,
    };
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn encoded_words_are_decoded_and_the_rest_kept() {
        assert_eq!(decode("Alice"), "Alice");
        assert_eq!(decode("=?utf-8?q?J=C3=BCrgen_M=C3=BCller?="), "Jürgen Müller");
        assert_eq!(decode("=?UTF-8?B?SsO8cmdlbg==?="), "Jürgen");
        assert_eq!(decode("=?utf-8?q?J=C3=BC?= =?utf-8?q?rgen?="), "Jürgen");
        assert_eq!(decode("Dr. =?utf-8?q?M=C3=BCller?="), "Dr. Müller");
        assert_eq!(decode("=?iso-8859-1?q?M=FCller?="), "=?iso-8859-1?q?M=FCller?=");
        assert_eq!(decode("=?utf-8?q?broken=Z?="), "=?utf-8?q?broken=Z?=");
    }
}
