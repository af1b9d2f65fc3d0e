//! What the running system shows: `systemctl cat 'tsnsrv-*'` dumps, a unit's start script,
//! `/proc/<pid>/cmdline` copies and tsnsrv's `Serving ...` startup log lines.

use crate::cmdline::{self, ParsedFlags, Word};
use crate::diagnostic::Diagnostic;
use crate::diagnostic::DiagnosticCode;
use crate::effective::Origin;
use crate::inventory::{Flavour, Options, Sourced};
use crate::options::Opt;
use crate::source::{FileId, Location, SourceMap};
use serde_json::{Value as Json, json};

/// A service read from something other than the NixOS module.
#[derive(Debug, Clone)]
pub struct RawService {
    /// `-name`.
    pub name: String,
    /// Where the name was given.
    pub location: Option<Location>,
    /// Options as written.
    pub declared: Options,
    /// Which defaults apply below them.
    pub origin: Origin,
    /// What the input says about the flavour.
    pub flavour_hint: Option<(Flavour, String, Option<Location>)>,
    /// Findings about this service (a unit that cannot start, ...).
    pub findings: Vec<Diagnostic>,
    /// Options or flags that are not tsnsrv's (coverage: unsupported).
    pub unsupported: Vec<(String, String)>,
}

/// One logical line (continuations joined) with a map back to file positions.
struct Logical {
    text: String,
    /// (offset in `text`, byte offset in the file) at each physical line start.
    pieces: Vec<(usize, u32)>,
}

impl Logical {
    fn file_offset(&self, off: usize) -> u32 {
        let mut best = self.pieces[0];
        for p in &self.pieces {
            if p.0 <= off {
                best = *p;
            }
        }
        best.1 + (off - best.0) as u32
    }
}

fn logical_lines(text: &str) -> Vec<Logical> {
    let mut out = Vec::new();
    let mut cur: Option<Logical> = None;
    let mut pos = 0u32;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let l = cur.get_or_insert_with(|| Logical { text: String::new(), pieces: Vec::new() });
        l.pieces.push((l.text.len(), pos));
        pos += line.len() as u32;
        if let Some(stripped) = body.strip_suffix('\\') {
            l.text.push_str(stripped);
            l.text.push(' ');
            continue;
        }
        l.text.push_str(body);
        out.extend(cur.take());
    }
    out.extend(cur);
    out
}

fn is_tsnsrv_binary(word: &str) -> bool {
    let base = word.rsplit('/').next().unwrap_or(word);
    base == "tsnsrv"
}

/// Reads every tsnsrv invocation in a unit dump, start script or log file.
pub fn read_invocations(
    sources: &SourceMap,
    file: FileId,
    stated: Option<Flavour>,
) -> (Vec<RawService>, Vec<Diagnostic>) {
    let src = sources.get(file);
    let mut services = Vec::new();
    let mut diags = Vec::new();
    let mut unit_hint: Option<(Flavour, String, Option<Location>)> =
        stated.map(|f| (f, "--tsnsrv".to_string(), None));
    for (lineno, line) in src.text.lines().enumerate() {
        if line.trim() == "StateDirectory=tsnsrv-all" && stated.is_none() {
            let loc = sources.location_at(file, lineno as u32 + 1, 1);
            unit_hint =
                Some((Flavour::ForkAll, "the unit is the fork's tsnsrv-all".into(), Some(loc)));
        }
    }
    for logical in logical_lines(&src.text) {
        let mut text = logical.text.as_str();
        let mut shift = 0;
        let trimmed = text.trim_start();
        shift += text.len() - trimmed.len();
        text = trimmed;
        if text.starts_with('#') && !text.contains("tsnsrv") {
            continue;
        }
        if let Some(rest) = text.strip_prefix("ExecStart=") {
            let rest2 = rest.trim_start_matches(['@', '-', '+', '!', ':']);
            shift += text.len() - rest2.len();
            text = rest2;
        }
        if !text.contains("tsnsrv") {
            continue;
        }
        if text.starts_with('#') {
            continue;
        }
        let words = match cmdline::shell_words(text) {
            Ok(w) => w,
            Err(off) => {
                let at = logical.file_offset(shift + off);
                diags.push(
                    Diagnostic::error(
                        DiagnosticCode::UnterminatedQuote,
                        "unterminated quote in a command line",
                    )
                    .at(Some(sources.location(crate::Span { file, start: at, end: at + 1 })))
                    .len(1),
                );
                continue;
            }
        };
        let Some(bin) = words.iter().position(|w| is_tsnsrv_binary(&w.text)) else { continue };
        let loc_of = |off: usize| {
            let at = logical.file_offset(shift + off);
            sources.location(crate::Span { file, start: at, end: at + 1 })
        };
        let line_loc = loc_of(words[bin].offset);
        let args: Vec<Word> = words[bin + 1..].to_vec();
        services.extend(from_args(&args, &loc_of, line_loc, unit_hint.clone(), &mut diags));
    }
    (services, diags)
}

/// Reads a `/proc/<pid>/cmdline` copy: NUL-separated words, the binary first.
pub fn read_cmdline(
    sources: &SourceMap,
    file: FileId,
    stated: Option<Flavour>,
) -> (Vec<RawService>, Vec<Diagnostic>) {
    let src = sources.get(file);
    let mut words = Vec::new();
    let mut offset = 0;
    for part in src.text.split('\0') {
        if !part.is_empty() {
            words.push(Word { text: part.to_string(), offset });
        }
        offset += part.len() + 1;
    }
    let mut diags = Vec::new();
    let loc_of =
        |off: usize| sources.location(crate::Span { file, start: off as u32, end: off as u32 + 1 });
    let Some(bin) = words.iter().position(|w| is_tsnsrv_binary(&w.text)) else {
        diags.push(
            Diagnostic::error(DiagnosticCode::NotTsnsrv, "this command line does not run tsnsrv")
                .at(Some(loc_of(0))),
        );
        return (Vec::new(), diags);
    };
    let line_loc = loc_of(words[bin].offset);
    let args = words[bin + 1..].to_vec();
    let hint = stated.map(|f| (f, "--tsnsrv".to_string(), None));
    let services = from_args(&args, &loc_of, line_loc, hint, &mut diags);
    (services, diags)
}

fn flavour_hint_of(
    p: &ParsedFlags,
    args: &[Word],
    loc_of: &dyn Fn(usize) -> Location,
) -> Option<(Flavour, String, Option<Location>)> {
    let fork_flag = args.iter().find(|w| {
        let f = w.text.trim_start_matches('-');
        let f = f.split('=').next().unwrap_or(f);
        crate::options::by_flag(f).is_some_and(|s| s.fork_only) || f == "service" || f == "config"
    });
    if let Some(w) = fork_flag {
        return Some((
            Flavour::Fork,
            format!("{} is a flag only the fork has", w.text.split('=').next().unwrap_or(&w.text)),
            Some(loc_of(w.offset)),
        ));
    }
    if let Some(w) =
        args.iter().find(|w| w.text.contains("-stateDir=") && w.text.contains("tsnet-tsnsrv"))
    {
        return Some((
            Flavour::Upstream,
            "-stateDir=$STATE_DIRECTORY/tsnet-tsnsrv is the upstream module's layout".into(),
            Some(loc_of(w.offset)),
        ));
    }
    if let Some(w) = args.iter().find(|w| w.text.starts_with("-stateDir=/var/lib/tsnsrv-")) {
        return Some((
            Flavour::Fork,
            "-stateDir=/var/lib/tsnsrv-<name> is the fork module's layout".into(),
            Some(loc_of(w.offset)),
        ));
    }
    let _ = p;
    None
}

fn from_args(
    args: &[Word],
    loc_of: &dyn Fn(usize) -> Location,
    line_loc: Location,
    unit_hint: Option<(Flavour, String, Option<Location>)>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<RawService> {
    // Parse once permissively (fork flags allowed) to see which flavour this is.
    let probe = cmdline::parse_flags(args, true);
    let hint = unit_hint.or_else(|| flavour_hint_of(&probe, args, loc_of));
    if let Some(cfg) = &probe.config {
        diags.push(
            Diagnostic::warning(
                DiagnosticCode::ConfigFileNotRead,
                format!("tsnsrv runs with -config={cfg}; pass that YAML file to read its services"),
            )
            .at(Some(line_loc.clone())),
        );
        return Vec::new();
    }
    if !probe.service_flags.is_empty() {
        let mut out = Vec::new();
        for sf in &probe.service_flags {
            let words = cmdline::service_flag_words(&sf.text);
            let located: Vec<Word> =
                words.into_iter().map(|w| Word { offset: sf.offset, ..w }).collect();
            let hint = Some((
                Flavour::Fork,
                "-service k=v is the fork's multi-service form".to_string(),
                Some(loc_of(sf.offset)),
            ));
            out.extend(one_service(
                &located,
                loc_of,
                line_loc.clone(),
                hint,
                Origin::ServiceFlag,
                diags,
            ));
        }
        return out;
    }
    one_service(args, loc_of, line_loc, hint, Origin::Cli, diags).into_iter().collect()
}

fn one_service(
    args: &[Word],
    loc_of: &dyn Fn(usize) -> Location,
    line_loc: Location,
    hint: Option<(Flavour, String, Option<Location>)>,
    origin: Origin,
    diags: &mut Vec<Diagnostic>,
) -> Option<RawService> {
    let fork = hint.as_ref().is_some_and(|h| h.0.is_fork());
    let p = cmdline::parse_flags(args, fork);
    let Some(name) =
        p.options.get_named("name").and_then(|v| v.known()?.as_str()).map(str::to_string)
    else {
        diags.push(
            Diagnostic::error(DiagnosticCode::MissingName, "tsnsrv needs a -name")
                .at(Some(line_loc)),
        );
        return None;
    };
    let name_loc = p.offsets.iter().find(|(k, _)| k == "name").map(|(_, o)| loc_of(*o));
    let mut declared = Options::default();
    for (k, v) in &p.options {
        if k == "name" {
            continue;
        }
        let loc = p.offsets.iter().find(|(n, _)| n == k).map(|(_, o)| loc_of(*o));
        let v = match v {
            Sourced::Known { value, .. } => Sourced::declared(value.clone(), loc),
            other => other.clone(),
        };
        declared.set_named(k.clone(), v);
    }
    let mut findings = Vec::new();
    let mut unsupported = Vec::new();
    for f in &p.unknown_flags {
        unsupported.push((
            f.split('=').next().unwrap_or(f).trim_start_matches('-').to_string(),
            format!("{f} is not a flag of this tsnsrv"),
        ));
        findings.push(
            Diagnostic::error(
                DiagnosticCode::UnknownAttribute,
                format!(
                    "{name}: {f} is not a tsnsrv flag{}",
                    if fork { "" } else { " (upstream tsnsrv; the fork has more)" }
                ),
            )
            .at(Some(line_loc.clone()))
            .for_service(&name),
        );
    }
    let cannot_start = |why: String, findings: &mut Vec<Diagnostic>| {
        findings.push(
            Diagnostic::warning(
                DiagnosticCode::UnitCannotStart,
                format!("{name}: {why}, so tsnsrv exits at start: the service is down today"),
            )
            .at(Some(line_loc.clone()))
            .for_service(&name),
        );
    };
    for (flag, value) in &p.bad_values {
        cannot_start(format!("{flag} has a value tsnsrv rejects ({value:?})"), &mut findings);
    }
    match p.positional.len() {
        0 => diags.push(
            Diagnostic::error(
                DiagnosticCode::MissingDestination,
                format!("{name}: tsnsrv requires a destination URL"),
            )
            .at(Some(line_loc.clone()))
            .for_service(&name),
        ),
        1 => {}
        n => cannot_start(
            format!("{n} positional arguments where tsnsrv takes one destination URL"),
            &mut findings,
        ),
    }
    if let Some(url) = p.positional.first() {
        declared.set(Opt::ToUrl, Sourced::declared(json!(url.text), Some(loc_of(url.offset))));
    }
    Some(RawService {
        name,
        location: name_loc,
        declared,
        origin,
        flavour_hint: hint,
        findings,
        unsupported,
    })
}

/// Splits Go slog text `k=v k="quoted v"` pairs.
fn slog_pairs(s: &str) -> Vec<(String, String, usize)> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i] != b'=' && b[i] != b' ' {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' {
            continue;
        }
        let key = s[start..i].to_string();
        i += 1;
        let mut val = String::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                val.push(b[i] as char);
                i += 1;
            }
            i += 1;
        } else if i < b.len() && b[i] == b'[' {
            let vs = i;
            while i < b.len() && b[i] != b']' {
                i += 1;
            }
            i = (i + 1).min(b.len());
            val = s[vs..i].to_string();
        } else {
            let vs = i;
            while i < b.len() && b[i] != b' ' {
                i += 1;
            }
            val = s[vs..i].to_string();
        }
        out.push((key, val, start));
    }
    out
}

fn go_list(v: &str) -> Json {
    let inner = v.trim().trim_start_matches('[').trim_end_matches(']');
    Json::Array(inner.split_whitespace().map(|x| json!(x)).collect())
}

/// Reads tsnsrv's `Serving name=... destURL=...` startup lines.
pub fn read_log(sources: &SourceMap, file: FileId) -> (Vec<RawService>, Vec<Diagnostic>) {
    let src = sources.get(file);
    let mut out: Vec<RawService> = Vec::new();
    let mut offset = 0usize;
    for line in src.text.split_inclusive('\n') {
        let line_start = offset;
        offset += line.len();
        let Some(pos) = line.find("Serving ") else { continue };
        let rest = &line[pos + 8..];
        let base = line_start + pos + 8;
        let loc_of = |o: usize| {
            sources.location(crate::Span {
                file,
                start: (base + o) as u32,
                end: (base + o) as u32 + 1,
            })
        };
        let mut declared = Options::default();
        let mut name = None;
        let mut name_loc = None;
        for (k, v, at) in slog_pairs(rest.trim_end()) {
            let loc = Some(loc_of(at));
            let (opt, val) = match k.as_str() {
                "name" => {
                    name = Some(v.clone());
                    name_loc = loc;
                    continue;
                }
                "service" if name.is_none() => {
                    name = Some(v.clone());
                    name_loc = loc;
                    continue;
                }
                "destURL" => (Opt::ToUrl, json!(v)),
                "listenAddr" => (Opt::ListenAddr, json!(v)),
                "tags" => (Opt::Tags, go_list(&v)),
                "prefixes" => (Opt::Prefixes, go_list(&v)),
                "plaintext" => (Opt::Plaintext, json!(v == "true")),
                "funnel" => (Opt::Funnel, json!(v == "true")),
                "funnelOnly" => (Opt::FunnelOnly, json!(v == "true")),
                _ => continue,
            };
            declared.set(opt, Sourced::declared(val, loc));
        }
        if let Some(n) = name {
            // A restart logs the line again: keep the latest.
            out.retain(|s| s.name != n);
            out.push(RawService {
                name: n,
                location: name_loc,
                declared,
                origin: Origin::Log,
                flavour_hint: None,
                findings: Vec::new(),
                unsupported: Vec::new(),
            });
        }
    }
    (out, Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_line_fields_are_read() {
        let map = SourceMap::new();
        let f = map.add(
            "log",
            "2026/01/02 03:04:05 INFO Serving name=jellyfin tailscaleIPs=\"[100.1.2.3 fd7a::1]\" listenAddr=:443 tags=[tag:service] prefixes=[] destURL=http://127.0.0.1:8096 plaintext=false funnel=true funnelOnly=false\n".into(),
        );
        let (svcs, _) = read_log(&map, f);
        assert_eq!(svcs.len(), 1);
        let s = &svcs[0];
        assert_eq!(s.name, "jellyfin");
        assert_eq!(s.declared.str(Opt::ToUrl), Some("http://127.0.0.1:8096"));
        assert_eq!(s.declared.bool(Opt::Funnel), Some(true));
        assert_eq!(s.declared.list(Opt::Tags), Some(vec!["tag:service".to_string()]));
        assert_eq!(s.declared.get(Opt::ToUrl).unwrap().location().unwrap().line, 1);
    }

    #[test]
    fn continuation_lines_keep_file_positions() {
        let map = SourceMap::new();
        let f = map.add("s", "exec /bin/tsnsrv -name=a \\\n  -funnel http://x:1\n".into());
        let (svcs, d) = read_invocations(&map, f, None);
        assert!(d.is_empty(), "{d:?}");
        let url = svcs[0].declared.get(Opt::ToUrl).unwrap().location().unwrap().clone();
        assert_eq!((url.line, url.column), (2, 11));
    }
}
