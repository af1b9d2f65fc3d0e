//! The evaluator's own expression tree, lowered from rnix's lossless syntax tree.
//!
//! Lowering resolves what is static once (nested attribute paths merged, string escapes and
//! indentation applied) so that evaluation does not walk rowan nodes.

use crate::source::Span;
use std::rc::Rc;

/// A shared expression node.
pub type ExprRef = Rc<Expr>;

/// An expression with its source range.
#[derive(Debug)]
pub struct Expr {
    /// What the expression is.
    pub kind: ExprKind,
    /// Where it was written.
    pub span: Span,
}

/// Binary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    /// `++`
    Concat,
    /// `//`
    Update,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `&&`
    And,
    /// `||`
    Or,
    /// `->`
    Implication,
    /// `==`
    Eq,
    /// `!=`
    NotEq,
    /// `<`
    Less,
    /// `<=`
    LessEq,
    /// `>`
    More,
    /// `>=`
    MoreEq,
    /// `|>`
    PipeRight,
    /// `<|`
    PipeLeft,
}

/// The kinds of expression. Variant fields are named after the Nix grammar.
#[derive(Debug)]
#[allow(missing_docs)]
pub enum ExprKind {
    /// An integer literal.
    Int(i64),
    /// A float literal.
    Float(f64),
    /// A string, possibly interpolated.
    Str(Vec<StrPart>),
    /// A path literal; relative paths are resolved against the file's directory.
    Path(Vec<StrPart>),
    /// A search path `<nixpkgs>`.
    SearchPath(String),
    /// A URI literal (a string in Nix).
    Uri(String),
    /// A variable.
    Var(Rc<str>),
    /// `e.a.b or d`
    Select { expr: ExprRef, path: Vec<AttrName>, default: Option<ExprRef> },
    /// `e ? a.b`
    HasAttr { expr: ExprRef, path: Vec<AttrName> },
    /// An attribute set, `rec` or not.
    Attrs(Rc<AttrsDef>),
    /// `let ... in body`
    Let { bindings: Rc<AttrsDef>, body: ExprRef },
    /// `with ns; body`
    With { ns: ExprRef, body: ExprRef },
    /// A function.
    Lambda(Rc<LambdaDef>),
    /// `f x`
    Apply { func: ExprRef, arg: ExprRef },
    /// `if c then t else e`
    If { cond: ExprRef, then: ExprRef, else_: ExprRef },
    /// `assert c; body`
    Assert { cond: ExprRef, body: ExprRef },
    /// A binary operation.
    BinOp { op: BinOp, lhs: ExprRef, rhs: ExprRef },
    /// `!e`
    Not(ExprRef),
    /// `-e`
    Neg(ExprRef),
    /// `[ ... ]`
    List(Vec<ExprRef>),
    /// `__curPos`
    CurPos,
    /// A piece of syntax that did not parse; evaluating it is an error.
    Error(String),
}

/// Part of an interpolated string or path.
#[derive(Debug)]
pub enum StrPart {
    /// Literal text (escapes already applied).
    Lit(String),
    /// `${ expr }`
    Interp(ExprRef),
}

/// One element of an attribute path.
#[derive(Debug, Clone)]
pub enum AttrName {
    /// A name known before evaluation.
    Static(Rc<str>),
    /// `${ expr }` or a string with interpolation.
    Dynamic(ExprRef),
}

/// The bindings of an attribute set or `let`.
#[derive(Debug, Default)]
pub struct AttrsDef {
    /// `rec { }` (and every `let`).
    pub rec: bool,
    /// Bindings whose name is static, in source order, nested paths already merged.
    pub statics: Vec<(Rc<str>, Binding)>,
    /// Bindings whose first name is dynamic: evaluated after the static ones.
    pub dynamics: Vec<(ExprRef, Binding)>,
    /// Position of each static name in `statics` (lowering looks names up while merging).
    pub index: std::collections::HashMap<Rc<str>, usize>,
}

/// The right-hand side of one binding.
#[derive(Debug)]
pub struct Binding {
    /// What the name is bound to.
    pub value: BindingValue,
    /// The `name = value;` (or `inherit`) entry that bound it.
    pub span: Span,
}

/// What a binding binds.
#[derive(Debug)]
pub enum BindingValue {
    /// An expression.
    Expr(ExprRef),
    /// `inherit name;`: the variable from the enclosing scope.
    Inherit(Rc<str>),
    /// `inherit (from) name;`
    InheritFrom(ExprRef, Rc<str>),
    /// Bindings of a nested attribute path (`a.b = 1; a.c = 2;`), evaluated in the outer scope.
    Nested(Rc<AttrsDef>),
}

/// A function's parameter and body.
#[derive(Debug)]
pub struct LambdaDef {
    /// The parameter.
    pub param: Param,
    /// The body.
    pub body: ExprRef,
}

/// A function parameter.
#[derive(Debug)]
pub enum Param {
    /// `x: ...`
    Ident(Rc<str>),
    /// `{ a, b ? d, ... } @ x: ...`
    Pattern {
        /// Formal names with optional defaults.
        entries: Vec<(Rc<str>, Option<ExprRef>)>,
        /// Whether `...` allows other attributes.
        ellipsis: bool,
        /// The `@` name, if any.
        bind: Option<Rc<str>>,
    },
}
