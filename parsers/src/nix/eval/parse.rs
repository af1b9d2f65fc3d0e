//! From text to the evaluator's IR: refusing files nested too deep before rnix sees them, rnix's
//! errors said in Nix's words (as diagnostics), and lowering.

use crate::diagnostic::Diagnostic;
use crate::nix::error::{ErrorKind, EvalError};
use crate::nix::lower::Lowerer;
use crate::nix::syntax::*;
use crate::nix::value::Eval;
use crate::source::{FileId, Span};
use std::rc::Rc;

/// Bracket nesting above which a file is refused before parsing.
pub const MAX_SYNTAX_NESTING: usize = 500;

impl Eval {
    /// Parses and lowers text. Syntax errors become diagnostics and an `Err`.
    pub fn parse(&mut self, file: FileId) -> Result<ExprRef, EvalError> {
        let src = self.sources.get(file);
        let whole = Span { file, start: 0, end: src.text.len() as u32 };
        if let Some(offset) = excessive_nesting(&src.text) {
            let span = Span { file, start: offset, end: offset + 1 };
            let msg = format!("brackets nested more than {MAX_SYNTAX_NESTING} deep");
            self.diagnostics.push(
                Diagnostic::error("syntax_error", msg.clone())
                    .at(Some(self.sources.location(span)))
                    .len(1),
            );
            return Err(EvalError::new(ErrorKind::Syntax, msg, Some(span)));
        }
        let parse = rnix::Root::parse(&src.text);
        let mut first: Option<(Span, String)> = None;
        for err in parse.errors() {
            let (range, msg) = describe_parse_error(err, src.text.len());
            let span = Span { file, start: range.0, end: range.1 };
            self.diagnostics.push(
                Diagnostic::error("syntax_error", msg.clone())
                    .at(Some(self.sources.location(span)))
                    .len(range.1.saturating_sub(range.0).max(1)),
            );
            first.get_or_insert((span, msg));
        }
        if let Some((span, msg)) = first {
            return Err(EvalError::new(ErrorKind::Syntax, msg, Some(span)));
        }
        let mut lowerer = Lowerer::new(file);
        let root = parse.tree();
        let expr = match root.expr() {
            Some(e) => lowerer.expr(e),
            None => Rc::new(Expr { kind: ExprKind::Error("empty file".into()), span: whole }),
        };
        if let Some(err) = lowerer.errors.first() {
            for e in &lowerer.errors {
                self.diagnostics.push(
                    Diagnostic::error("syntax_error", e.message.clone())
                        .at(Some(self.sources.location(e.span)))
                        .len(e.span.end - e.span.start),
                );
            }
            return Err(EvalError::new(ErrorKind::Syntax, err.message.clone(), Some(err.span)));
        }
        Ok(expr)
    }
}

/// The offset where bracket nesting first exceeds [`MAX_SYNTAX_NESTING`], if it does.
fn excessive_nesting(text: &str) -> Option<u32> {
    let mut depth = 0usize;
    for (i, b) in text.bytes().enumerate() {
        match b {
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_SYNTAX_NESTING {
                    return Some(i as u32);
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

fn describe_parse_error(err: &rnix::ParseError, len: usize) -> ((u32, u32), String) {
    use rnix::ParseError as P;
    let eof = (len as u32, len as u32);
    let r = |t: &rnix::TextRange| (u32::from(t.start()), u32::from(t.end()));
    match err {
        P::Unexpected(t) => (r(t), "unexpected input".into()),
        P::UnexpectedExtra(t) => (r(t), "unexpected input after the end of the expression".into()),
        P::UnexpectedWanted(got, t, want) => {
            (r(t), format!("unexpected {}, expected {}", kind_name(*got), kinds_list(want)))
        }
        P::UnexpectedDoubleBind(t) => (r(t), "pattern is bound twice".into()),
        P::UnexpectedEOF => (eof, "unexpected end of file".into()),
        P::UnexpectedEOFWanted(want) => {
            (eof, format!("unexpected end of file, expected {}", kinds_list(want)))
        }
        P::DuplicatedArgs(t, name) => {
            (r(t), format!("duplicate formal function argument '{name}'"))
        }
        P::RecursionLimitExceeded => (eof, "expression nested too deeply".into()),
        other => (eof, other.to_string()),
    }
}

fn kind_name(k: rnix::SyntaxKind) -> String {
    use rnix::SyntaxKind::*;
    match k {
        TOKEN_SEMICOLON => "';'".into(),
        TOKEN_L_BRACE => "'{'".into(),
        TOKEN_R_BRACE => "'}'".into(),
        TOKEN_L_BRACK => "'['".into(),
        TOKEN_R_BRACK => "']'".into(),
        TOKEN_L_PAREN => "'('".into(),
        TOKEN_R_PAREN => "')'".into(),
        TOKEN_ASSIGN => "'='".into(),
        TOKEN_COLON => "':'".into(),
        TOKEN_COMMA => "','".into(),
        TOKEN_IDENT => "an identifier".into(),
        TOKEN_STRING_START | TOKEN_STRING_END => "'\"'".into(),
        TOKEN_IN => "'in'".into(),
        TOKEN_THEN => "'then'".into(),
        TOKEN_ELSE => "'else'".into(),
        other => format!("{other:?}")
            .trim_start_matches("TOKEN_")
            .trim_start_matches("NODE_")
            .to_lowercase(),
    }
}

fn kinds_list(ks: &[rnix::SyntaxKind]) -> String {
    let names: Vec<String> = ks.iter().map(|k| kind_name(*k)).collect();
    match names.len() {
        0 => "more input".into(),
        1 => names[0].clone(),
        _ => format!("one of {}", names.join(", ")),
    }
}
