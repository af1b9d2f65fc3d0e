//! Lowers rnix's syntax tree into [`Expr`](super::syntax::Expr).
//!
//! Lowering never fails: a missing piece becomes [`ExprKind::Error`] and a diagnostic, so a file
//! with one bad binding still yields the rest (error recovery as in rnix and nil).

use super::syntax::*;
use crate::source::{FileId, Span};
use rnix::ast::{self, AstToken, BinOpKind, HasEntry, InterpolPart, UnaryOpKind};
use rowan::ast::AstNode;
use std::rc::Rc;

/// A problem found while lowering (duplicate attributes and the like).
#[derive(Debug, Clone)]
pub struct LowerError {
    /// Where.
    pub span: Span,
    /// What.
    pub message: String,
}

/// Lowers one parsed file.
pub struct Lowerer {
    file: FileId,
    /// Problems found so far.
    pub errors: Vec<LowerError>,
}

impl Lowerer {
    /// A lowerer for a file.
    pub fn new(file: FileId) -> Self {
        Lowerer { file, errors: Vec::new() }
    }

    fn span_of(&self, node: &rnix::SyntaxNode) -> Span {
        let r = node.text_range();
        Span { file: self.file, start: r.start().into(), end: r.end().into() }
    }

    fn mk(&self, kind: ExprKind, span: Span) -> ExprRef {
        Rc::new(Expr { kind, span })
    }

    fn missing(&self, span: Span, what: &str) -> ExprRef {
        self.mk(ExprKind::Error(format!("missing {what}")), span)
    }

    /// Lowers an optional expression; `None` becomes an error node at `span`.
    fn opt(&mut self, e: Option<ast::Expr>, span: Span, what: &str) -> ExprRef {
        match e {
            Some(e) => self.expr(e),
            None => self.missing(span, what),
        }
    }

    /// Lowers an expression.
    pub fn expr(&mut self, e: ast::Expr) -> ExprRef {
        let span = self.span_of(e.syntax());
        let kind = match e {
            ast::Expr::Apply(a) => ExprKind::Apply {
                func: self.opt(a.lambda(), span, "function"),
                arg: self.opt(a.argument(), span, "argument"),
            },
            ast::Expr::Assert(a) => ExprKind::Assert {
                cond: self.opt(a.condition(), span, "assertion"),
                body: self.opt(a.body(), span, "body"),
            },
            ast::Expr::Error(_) => ExprKind::Error("syntax error".into()),
            ast::Expr::IfElse(i) => ExprKind::If {
                cond: self.opt(i.condition(), span, "condition"),
                then: self.opt(i.body(), span, "then branch"),
                else_: self.opt(i.else_body(), span, "else branch"),
            },
            ast::Expr::Select(s) => {
                let expr = self.opt(s.expr(), span, "expression");
                let path = self.attrpath(s.attrpath());
                let default = s.default_expr().map(|d| self.expr(d));
                ExprKind::Select { expr, path, default }
            }
            ast::Expr::Str(s) => ExprKind::Str(self.str_parts(&s)),
            ast::Expr::PathAbs(p) => ExprKind::Path(self.path_parts(p.parts())),
            ast::Expr::PathRel(p) => ExprKind::Path(self.path_parts(p.parts())),
            ast::Expr::PathHome(p) => ExprKind::Path(self.path_parts(p.parts())),
            ast::Expr::PathSearch(p) => {
                let text = p.content().map(|c| c.syntax().text().to_string()).unwrap_or_default();
                ExprKind::SearchPath(text.trim_start_matches('<').trim_end_matches('>').into())
            }
            ast::Expr::Literal(l) => match l.kind() {
                ast::LiteralKind::Integer(i) => match i.value() {
                    Ok(v) => ExprKind::Int(v),
                    Err(_) => ExprKind::Error(format!("invalid integer {}", i.syntax().text())),
                },
                ast::LiteralKind::Float(f) => match f.value() {
                    Ok(v) => ExprKind::Float(v),
                    Err(_) => ExprKind::Error(format!("invalid float {}", f.syntax().text())),
                },
                ast::LiteralKind::Uri(u) => ExprKind::Uri(u.syntax().text().to_string()),
            },
            ast::Expr::Lambda(l) => {
                let param = match l.param() {
                    Some(ast::Param::IdentParam(p)) => Param::Ident(self.ident_name(p.ident())),
                    Some(ast::Param::Pattern(p)) => {
                        let entries = p
                            .pat_entries()
                            .map(|en| {
                                let name = self.ident_name(en.ident());
                                let default = en.default().map(|d| self.expr(d));
                                (name, default)
                            })
                            .collect();
                        let bind = p.pat_bind().map(|b| self.ident_name(b.ident()));
                        Param::Pattern { entries, ellipsis: p.ellipsis_token().is_some(), bind }
                    }
                    None => Param::Ident("_".into()),
                };
                let body = self.opt(l.body(), span, "function body");
                ExprKind::Lambda(Rc::new(LambdaDef { param, body }))
            }
            ast::Expr::LegacyLet(l) => {
                // `let { body = ...; }` is a recursive set whose `body` attribute is the value.
                let mut def = self.entries(l.entries());
                def.rec = true;
                let set = self.mk(ExprKind::Attrs(Rc::new(def)), span);
                ExprKind::Select {
                    expr: set,
                    path: vec![AttrName::Static("body".into())],
                    default: None,
                }
            }
            ast::Expr::LetIn(l) => {
                let mut bindings = self.entries(l.entries());
                bindings.rec = true;
                ExprKind::Let {
                    bindings: Rc::new(bindings),
                    body: self.opt(l.body(), span, "body"),
                }
            }
            ast::Expr::List(l) => ExprKind::List(l.items().map(|i| self.expr(i)).collect()),
            ast::Expr::BinOp(b) => {
                let lhs = self.opt(b.lhs(), span, "left operand");
                let rhs = self.opt(b.rhs(), span, "right operand");
                let op = match b.operator() {
                    Some(op) => op,
                    None => return self.missing(span, "operator"),
                };
                let op = match op {
                    BinOpKind::Concat => BinOp::Concat,
                    BinOpKind::Update => BinOp::Update,
                    BinOpKind::Add => BinOp::Add,
                    BinOpKind::Sub => BinOp::Sub,
                    BinOpKind::Mul => BinOp::Mul,
                    BinOpKind::Div => BinOp::Div,
                    BinOpKind::And => BinOp::And,
                    BinOpKind::Equal => BinOp::Eq,
                    BinOpKind::Implication => BinOp::Implication,
                    BinOpKind::Less => BinOp::Less,
                    BinOpKind::LessOrEq => BinOp::LessEq,
                    BinOpKind::More => BinOp::More,
                    BinOpKind::MoreOrEq => BinOp::MoreEq,
                    BinOpKind::NotEqual => BinOp::NotEq,
                    BinOpKind::Or => BinOp::Or,
                    BinOpKind::PipeRight => BinOp::PipeRight,
                    BinOpKind::PipeLeft => BinOp::PipeLeft,
                };
                ExprKind::BinOp { op, lhs, rhs }
            }
            ast::Expr::Paren(p) => return self.opt(p.expr(), span, "expression"),
            ast::Expr::Root(r) => return self.opt(r.expr(), span, "expression"),
            ast::Expr::AttrSet(s) => {
                let mut def = self.entries(s.entries());
                def.rec = s.rec_token().is_some();
                ExprKind::Attrs(Rc::new(def))
            }
            ast::Expr::UnaryOp(u) => {
                let inner = self.opt(u.expr(), span, "operand");
                match u.operator() {
                    Some(UnaryOpKind::Invert) => ExprKind::Not(inner),
                    Some(UnaryOpKind::Negate) => ExprKind::Neg(inner),
                    None => ExprKind::Error("missing operator".into()),
                }
            }
            ast::Expr::Ident(i) => ExprKind::Var(i.syntax().text().to_string().into()),
            ast::Expr::With(w) => ExprKind::With {
                ns: self.opt(w.namespace(), span, "namespace"),
                body: self.opt(w.body(), span, "body"),
            },
            ast::Expr::HasAttr(h) => ExprKind::HasAttr {
                expr: self.opt(h.expr(), span, "expression"),
                path: self.attrpath(h.attrpath()),
            },
            ast::Expr::CurPos(_) => ExprKind::CurPos,
        };
        self.mk(kind, span)
    }

    fn ident_name(&self, i: Option<ast::Ident>) -> Rc<str> {
        i.map(|i| i.syntax().text().to_string().into()).unwrap_or_else(|| "_".into())
    }

    fn str_parts(&mut self, s: &ast::Str) -> Vec<StrPart> {
        s.normalized_parts()
            .into_iter()
            .map(|p| match p {
                InterpolPart::Literal(text) => StrPart::Lit(text),
                InterpolPart::Interpolation(i) => {
                    let span = self.span_of(i.syntax());
                    StrPart::Interp(self.opt(i.expr(), span, "interpolated expression"))
                }
            })
            .collect()
    }

    fn path_parts(&mut self, parts: Vec<InterpolPart<ast::PathContent>>) -> Vec<StrPart> {
        parts
            .into_iter()
            .map(|p| match p {
                InterpolPart::Literal(c) => StrPart::Lit(c.syntax().text().to_string()),
                InterpolPart::Interpolation(i) => {
                    let span = self.span_of(i.syntax());
                    StrPart::Interp(self.opt(i.expr(), span, "interpolated expression"))
                }
            })
            .collect()
    }

    fn attr(&mut self, a: ast::Attr) -> AttrName {
        match a {
            ast::Attr::Ident(i) => AttrName::Static(i.syntax().text().to_string().into()),
            ast::Attr::Str(s) => {
                let parts = self.str_parts(&s);
                match static_text(&parts) {
                    Some(t) => AttrName::Static(t.into()),
                    None => {
                        let span = self.span_of(s.syntax());
                        AttrName::Dynamic(self.mk(ExprKind::Str(parts), span))
                    }
                }
            }
            ast::Attr::Dynamic(d) => {
                let span = self.span_of(d.syntax());
                let e = self.opt(d.expr(), span, "attribute name");
                if let ExprKind::Str(parts) = &e.kind
                    && let Some(t) = static_text(parts)
                {
                    return AttrName::Static(t.into());
                }
                AttrName::Dynamic(e)
            }
        }
    }

    fn attrpath(&mut self, p: Option<ast::Attrpath>) -> Vec<AttrName> {
        match p {
            Some(p) => p.attrs().map(|a| self.attr(a)).collect(),
            None => Vec::new(),
        }
    }

    fn entries(&mut self, entries: impl Iterator<Item = ast::Entry>) -> AttrsDef {
        let mut def = AttrsDef::default();
        for entry in entries {
            let span = self.span_of(entry.syntax());
            match entry {
                ast::Entry::Inherit(inh) => {
                    let from = inh.from().map(|f| {
                        let fspan = self.span_of(f.syntax());
                        self.opt(f.expr(), fspan, "inherit source")
                    });
                    for a in inh.attrs() {
                        let aspan = self.span_of(a.syntax());
                        let AttrName::Static(name) = self.attr(a) else {
                            self.errors.push(LowerError {
                                span: aspan,
                                message: "dynamic attributes are not allowed in inherit".into(),
                            });
                            continue;
                        };
                        let value = match &from {
                            Some(f) => BindingValue::InheritFrom(f.clone(), name.clone()),
                            None => BindingValue::Inherit(name.clone()),
                        };
                        self.insert_static(&mut def, name, Binding { value, span: aspan });
                    }
                }
                ast::Entry::AttrpathValue(apv) => {
                    let path = self.attrpath(apv.attrpath());
                    let value = match apv.value() {
                        Some(v) => self.binding_value(v),
                        None => BindingValue::Expr(self.missing(span, "value")),
                    };
                    if path.is_empty() {
                        self.errors
                            .push(LowerError { span, message: "missing attribute name".into() });
                        continue;
                    }
                    self.insert_path(&mut def, &path, value, span);
                }
            }
        }
        def
    }

    /// A literal non-recursive set becomes `Nested`, so that `a = { x = 1; }; a.y = 2;` merges.
    fn binding_value(&mut self, v: ast::Expr) -> BindingValue {
        if let ast::Expr::AttrSet(s) = &v
            && s.rec_token().is_none()
        {
            return BindingValue::Nested(Rc::new(self.entries(s.entries())));
        }
        BindingValue::Expr(self.expr(v))
    }

    fn insert_path(
        &mut self,
        def: &mut AttrsDef,
        path: &[AttrName],
        value: BindingValue,
        span: Span,
    ) {
        let (first, rest) = path.split_first().expect("non-empty path");
        let value = if rest.is_empty() {
            value
        } else {
            // Find or create the nested set for `first` when it is static.
            if let AttrName::Static(name) = first
                && let Some(&i) = def.index.get(name)
            {
                let existing = &mut def.statics[i].1;
                if let BindingValue::Nested(inner) = &mut existing.value {
                    let inner =
                        Rc::get_mut(inner).expect("nested bindings are unshared while lowering");
                    self.insert_path(inner, rest, value, span);
                } else {
                    self.errors.push(LowerError {
                        span,
                        message: format!("attribute '{name}' already defined"),
                    });
                }
                return;
            }
            let mut inner = AttrsDef::default();
            self.insert_path(&mut inner, rest, value, span);
            BindingValue::Nested(Rc::new(inner))
        };
        match first {
            AttrName::Static(name) => {
                self.insert_static(def, name.clone(), Binding { value, span })
            }
            AttrName::Dynamic(e) => def.dynamics.push((e.clone(), Binding { value, span })),
        }
    }

    fn insert_static(&mut self, def: &mut AttrsDef, name: Rc<str>, binding: Binding) {
        if let Some(&i) = def.index.get(&name) {
            let existing = &mut def.statics[i].1;
            match (&mut existing.value, binding.value) {
                (BindingValue::Nested(a), BindingValue::Nested(b)) => {
                    let a = Rc::get_mut(a).expect("nested bindings are unshared while lowering");
                    let b = Rc::try_unwrap(b).expect("nested bindings are unshared while lowering");
                    for (n, bnd) in b.statics {
                        self.insert_static(a, n, bnd);
                    }
                    a.dynamics.extend(b.dynamics);
                }
                _ => self.errors.push(LowerError {
                    span: binding.span,
                    message: format!("attribute '{name}' already defined"),
                }),
            }
            return;
        }
        def.index.insert(name.clone(), def.statics.len());
        def.statics.push((name, binding));
    }
}

fn static_text(parts: &[StrPart]) -> Option<String> {
    let mut s = String::new();
    for p in parts {
        match p {
            StrPart::Lit(t) => s.push_str(t),
            StrPart::Interp(_) => return None,
        }
    }
    Some(s)
}
