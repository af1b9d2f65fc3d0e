//! tsnsrv command lines: bash word splitting (with `nom`) and tsnsrv's Go `flag` parsing,
//! including the fork's `-service k=v,...` form.

use crate::inventory::{Options, Sourced};
use crate::options::{self, OptKind};
use nom::{
    IResult, Parser,
    branch::alt,
    bytes::complete::{is_not, tag, take},
    character::complete::{char, none_of},
    combinator::{map, recognize},
    multi::many0,
    sequence::{delimited, preceded},
};
use serde_json::{Value as Json, json};

/// One shell word and the byte offset where it starts in its line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word {
    /// The word after quote removal (variables are left as written).
    pub text: String,
    /// Offset of its first character.
    pub offset: usize,
}

/// A piece of a word.
fn single_quoted(i: &str) -> IResult<&str, String> {
    map(delimited(char('\''), recognize(many0(is_not("'"))), char('\'')), str::to_string).parse(i)
}

fn double_quoted(i: &str) -> IResult<&str, String> {
    let escaped = preceded(
        char('\\'),
        alt((
            map(alt((char('"'), char('\\'), char('$'), char('`'))), |c: char| c.to_string()),
            map(char('\n'), |_| String::new()),
            map(none_of(""), |c: char| format!("\\{c}")),
        )),
    );
    let plain = map(is_not("\"\\"), str::to_string);
    map(delimited(char('"'), many0(alt((escaped, plain))), char('"')), |parts| parts.concat())
        .parse(i)
}

fn unquoted(i: &str) -> IResult<&str, String> {
    alt((
        map(preceded(char('\\'), take(1usize)), str::to_string),
        map(is_not(" \t\n'\"\\;|&"), str::to_string),
    ))
    .parse(i)
}

fn word(i: &str) -> IResult<&str, String> {
    let (rest, parts) =
        nom::multi::many1(alt((single_quoted, double_quoted, unquoted))).parse(i)?;
    Ok((rest, parts.concat()))
}

/// Splits a shell line into words as bash does (quotes, escapes, `\` line continuations);
/// `Err` names the offset of an unterminated quote.
pub fn shell_words(line: &str) -> Result<Vec<Word>, usize> {
    let mut out = Vec::new();
    let mut rest = line;
    loop {
        let trimmed = rest.trim_start_matches([' ', '\t']);
        let trimmed =
            trimmed.strip_prefix("\\\n").unwrap_or(trimmed).trim_start_matches([' ', '\t', '\n']);
        if trimmed.is_empty() || trimmed.starts_with('#') {
            return Ok(out);
        }
        let offset = line.len() - trimmed.len();
        if let Ok((r, _)) = alt((
            tag::<&str, &str, nom::error::Error<&str>>(";"),
            tag("&&"),
            tag("||"),
            tag("|"),
            tag("&"),
        ))
        .parse(trimmed)
        {
            // A command separator ends the command we read.
            let _ = r;
            return Ok(out);
        }
        match word(trimmed) {
            Ok((r, w)) => {
                out.push(Word { text: w, offset });
                rest = r;
            }
            Err(_) => return Err(offset),
        }
    }
}

/// The result of parsing tsnsrv's flags.
#[derive(Debug, Default)]
pub struct ParsedFlags {
    /// Options by canonical name, each located by the offset of its word.
    pub options: Options,
    /// Word offsets of each option (for locations), by canonical name.
    pub offsets: Vec<(String, usize)>,
    /// Positional arguments (the destination URL should be the only one).
    pub positional: Vec<Word>,
    /// Flags tsnsrv does not have.
    pub unknown_flags: Vec<String>,
    /// `-service k=v,...` entries (fork).
    pub service_flags: Vec<Word>,
    /// `-config <file>` (fork).
    pub config: Option<String>,
    /// Flag values that do not parse (`-funnel=maybe`).
    pub bad_values: Vec<(String, String)>,
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Parses tsnsrv flags as Go's `flag` package does: `-f`, `--f`, `-f=v`, `-f v` (non-booleans);
/// parsing stops at the first non-flag word or `--`.
pub fn parse_flags(words: &[Word], fork: bool) -> ParsedFlags {
    let mut p = ParsedFlags::default();
    let mut lists: std::collections::BTreeMap<String, Vec<Json>> = Default::default();
    let mut maps: std::collections::BTreeMap<String, serde_json::Map<String, Json>> =
        Default::default();
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        let t = w.text.as_str();
        if t == "--" {
            i += 1;
            break;
        }
        if !t.starts_with('-') || t == "-" {
            break;
        }
        let body = t.trim_start_matches('-');
        let (flag, inline) = match body.split_once('=') {
            Some((f, v)) => (f, Some(v.to_string())),
            None => (body, None),
        };
        match flag {
            "name" | "service" | "config" => {
                let v = match inline {
                    Some(v) => v,
                    None => {
                        i += 1;
                        words.get(i).map(|w| w.text.clone()).unwrap_or_default()
                    }
                };
                match flag {
                    "name" => {
                        p.options.set_named("name", Sourced::declared(json!(v), None));
                        p.offsets.push(("name".into(), w.offset));
                    }
                    "service" => p.service_flags.push(Word { text: v, offset: w.offset }),
                    _ => p.config = Some(v),
                }
                i += 1;
                continue;
            }
            _ => {}
        }
        let Some(spec) = options::by_flag(flag).filter(|s| fork || !s.fork_only) else {
            p.unknown_flags.push(t.to_string());
            // An unknown flag makes tsnsrv exit; skip its value if it looks like one.
            i += 1;
            continue;
        };
        let value = if spec.kind == OptKind::Bool {
            match inline.as_deref() {
                None => Some(json!(true)),
                Some(v) => match parse_bool(v) {
                    Some(b) => Some(json!(b)),
                    None => {
                        p.bad_values.push((t.to_string(), v.to_string()));
                        None
                    }
                },
            }
        } else {
            let v = match inline {
                Some(v) => v,
                None => {
                    i += 1;
                    words.get(i).map(|w| w.text.clone()).unwrap_or_default()
                }
            };
            match spec.kind {
                OptKind::List => {
                    lists.entry(spec.name.into()).or_default().push(json!(v));
                    None
                }
                OptKind::Map => {
                    // `-upstreamHeader=Name: value`: the separator is ": " (tsnsrv.md 2).
                    match v.split_once(": ") {
                        Some((k, val)) => {
                            maps.entry(spec.name.into())
                                .or_default()
                                .insert(k.to_string(), json!(val));
                        }
                        None => p.bad_values.push((t.to_string(), v.clone())),
                    }
                    None
                }
                _ => Some(json!(v)),
            }
        };
        p.offsets.push((spec.name.to_string(), w.offset));
        if let Some(v) = value {
            p.options.set(spec.key, Sourced::declared(v, None));
        }
        i += 1;
    }
    for (k, v) in lists {
        p.options.set_named(k, Sourced::declared(Json::Array(v), None));
    }
    for (k, v) in maps {
        p.options.set_named(k, Sourced::declared(Json::Object(v), None));
    }
    p.positional = words[i.min(words.len())..].to_vec();
    p
}

/// Parses one `-service k=v,k=v` value of the fork into flag words (`tag`, `prefix`,
/// `upstreamHeader`, `authCopyHeader` repeat; `upstream` is the destination URL).
pub fn service_flag_words(value: &str) -> Vec<Word> {
    let mut words = Vec::new();
    let mut url = None;
    for pair in value.split(',') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = k.trim();
        let v = v.trim();
        let v = match v {
            "yes" | "y" => "true",
            "no" | "n" => "false",
            other => other,
        };
        let v = if k == "upstreamHeader" || k == "authCopyHeader" {
            // The -service form separates header name and value with ':' (no space needed).
            match v.split_once(':') {
                Some((n, val)) => format!("{}: {}", n.trim(), val.trim()),
                None => v.to_string(),
            }
        } else {
            v.to_string()
        };
        if k == "upstream" {
            url = Some(v);
            continue;
        }
        words.push(Word { text: format!("-{k}={v}"), offset: 0 });
    }
    if let Some(u) = url {
        words.push(Word { text: u, offset: 0 });
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Opt;

    fn texts(line: &str) -> Vec<String> {
        shell_words(line).unwrap().into_iter().map(|w| w.text).collect()
    }

    #[test]
    fn bash_quoting_is_removed_like_bash_does() {
        assert_eq!(
            texts(
                r#"exec /bin/tsnsrv "-stateDir=$STATE_DIRECTORY/x" '-name=a b' -x=c\ d "q\"x" 'it'\''s'"#
            ),
            vec![
                "exec",
                "/bin/tsnsrv",
                "-stateDir=$STATE_DIRECTORY/x",
                "-name=a b",
                "-x=c d",
                "q\"x",
                "it's"
            ]
        );
    }

    #[test]
    fn separators_and_comments_end_the_command() {
        assert_eq!(texts("a b ; c"), vec!["a", "b"]);
        assert_eq!(texts("a # comment"), vec!["a"]);
    }

    #[test]
    fn unterminated_quote_is_an_error_at_its_offset() {
        assert_eq!(shell_words("a 'b"), Err(2));
    }

    #[test]
    fn go_flags_stop_at_the_first_positional() {
        let words: Vec<Word> =
            ["-name=x", "-funnel", "-tag", "tag:a", "-tag=tag:b", "http://u", "-plaintext"]
                .iter()
                .map(|t| Word { text: t.to_string(), offset: 0 })
                .collect();
        let p = parse_flags(&words, false);
        assert_eq!(p.options.bool(Opt::Funnel), Some(true));
        assert_eq!(p.options.list(Opt::Tags), Some(vec!["tag:a".to_string(), "tag:b".to_string()]));
        assert_eq!(
            p.positional.iter().map(|w| w.text.as_str()).collect::<Vec<_>>(),
            vec!["http://u", "-plaintext"]
        );
        assert!(p.options.get(Opt::Plaintext).is_none());
    }

    #[test]
    fn fork_only_flags_are_unknown_to_upstream() {
        let words = vec![Word { text: "-authURL=https://a".into(), offset: 0 }];
        assert_eq!(parse_flags(&words, false).unknown_flags, vec!["-authURL=https://a"]);
        assert_eq!(parse_flags(&words, true).options.str(Opt::AuthUrl), Some("https://a"));
    }

    #[test]
    fn upstream_header_needs_colon_space() {
        let words = vec![
            Word { text: "-upstreamHeader=X-A: 1".into(), offset: 0 },
            Word { text: "-upstreamHeader=X-B:2".into(), offset: 0 },
        ];
        let p = parse_flags(&words, false);
        assert_eq!(
            p.options.map(Opt::UpstreamHeaders).unwrap().get("X-A").map(String::as_str),
            Some("1")
        );
        assert_eq!(p.bad_values.len(), 1);
    }

    #[test]
    fn service_form_expands_to_flags() {
        let w = service_flag_words("name=a,upstream=http://x:1,tag=tag:t,funnel=yes");
        let p = parse_flags(&w, true);
        assert_eq!(p.options.get_named("name").and_then(|v| v.known()), Some(&json!("a")));
        assert_eq!(p.options.bool(Opt::Funnel), Some(true));
        assert_eq!(p.positional[0].text, "http://x:1");
    }
}
