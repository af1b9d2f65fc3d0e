//! Source files and spans: every value the parsers produce points back into one of these.

use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use tailshift_util::LineIndex;

/// Index of a file in a [`SourceMap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u32);

/// A byte range inside one source file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Span {
    /// The file the range is in.
    pub file: FileId,
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

/// One file read by the parsers, kept whole so diagnostics can quote it.
#[derive(Debug)]
pub struct SourceFile {
    /// Path as given (or a `<name>` for built-in text).
    pub path: PathBuf,
    /// The path as locations show it, computed once and shared by every location.
    shown: std::cell::OnceCell<std::sync::Arc<str>>,
    /// Full text.
    pub text: String,
    lines: LineIndex,
}

impl SourceFile {
    fn new(path: PathBuf, text: String) -> Self {
        SourceFile { path, lines: LineIndex::new(&text), text, shown: std::cell::OnceCell::new() }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: u32) -> (u32, u32) {
        let (line, col) = self.lines.line_col(&self.text, offset as usize);
        (line as u32, col as u32)
    }

    /// The text of a 1-based line, without its newline.
    pub fn line_text(&self, line: u32) -> &str {
        self.lines.line_text(&self.text, line as usize)
    }
}

/// All files read during one run. Cheap to clone (shared).
#[derive(Clone, Debug, Default)]
pub struct SourceMap {
    files: Rc<RefCell<Vec<Rc<SourceFile>>>>,
    /// The working directory, read once: locations are shown relative to it.
    cwd: Rc<Option<PathBuf>>,
}

impl SourceMap {
    /// An empty map.
    pub fn new() -> Self {
        SourceMap { files: Rc::default(), cwd: Rc::new(std::env::current_dir().ok()) }
    }

    /// Adds a file and returns its id.
    pub fn add(&self, path: impl Into<PathBuf>, text: String) -> FileId {
        let mut files = self.files.borrow_mut();
        files.push(Rc::new(SourceFile::new(path.into(), text)));
        FileId(files.len() as u32 - 1)
    }

    /// The file behind an id.
    pub fn get(&self, id: FileId) -> Rc<SourceFile> {
        self.files.borrow()[id.0 as usize].clone()
    }

    /// The first file added that is not tailshift's own (`<tailshift lib>`, ...): the user's
    /// file a run started from.
    pub fn first_user_file(&self) -> Option<Rc<SourceFile>> {
        self.files.borrow().iter().find(|f| !f.path.to_string_lossy().starts_with('<')).cloned()
    }

    /// Resolves a span to a printable location.
    pub fn location(&self, span: Span) -> Location {
        let file = self.get(span.file);
        let (line, column) = file.line_col(span.start);
        Location { file: self.shown(&file), line, column }
    }

    fn shown(&self, file: &SourceFile) -> std::sync::Arc<str> {
        file.shown
            .get_or_init(|| display_path(&file.path, self.cwd.as_ref().as_ref()).into())
            .clone()
    }

    /// A location for a 1-based line and column of a file.
    pub fn location_at(&self, file: FileId, line: u32, column: u32) -> Location {
        Location { file: self.shown(&self.get(file)), line, column }
    }

    /// Byte offset of a 1-based line's first character.
    pub fn line_offset(&self, file: FileId, line: u32) -> u32 {
        let f = self.get(file);
        f.lines.line_offset(line as usize) as u32
    }
}

/// Paths are shown relative to the working directory when they are absolute (imports are
/// resolved to absolute paths), so locations read as the user would type them.
fn display_path(p: &Path, cwd: Option<&PathBuf>) -> String {
    if p.is_absolute()
        && let Some(cwd) = cwd
        && let Some(rel) = relative_to(p, cwd)
    {
        return rel.to_string_lossy().into_owned();
    }
    p.to_string_lossy().into_owned()
}

/// `path` relative to `base` (both absolute), with `..` where needed.
pub fn relative_to(path: &Path, base: &Path) -> Option<PathBuf> {
    use std::path::Component;
    let p: Vec<Component> = path.components().collect();
    let b: Vec<Component> = base.components().collect();
    let common = p.iter().zip(b.iter()).take_while(|(x, y)| x == y).count();
    if common == 0 {
        return None;
    }
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &p[common..] {
        out.push(c.as_os_str());
    }
    Some(out)
}

/// A resolved place in an input: `file:line:column`, 1-based.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Location {
    /// The file as it was given on the command line (or reached through `imports`).
    pub file: std::sync::Arc<str>,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_climb_with_dotdot() {
        assert_eq!(
            relative_to(Path::new("/a/b/c.nix"), Path::new("/a/d")).unwrap(),
            PathBuf::from("../b/c.nix")
        );
        assert_eq!(
            relative_to(Path::new("/a/b/c.nix"), Path::new("/a")).unwrap(),
            PathBuf::from("b/c.nix")
        );
    }

    #[test]
    fn line_col_counts_from_one_and_in_characters() {
        let map = SourceMap::new();
        let id = map.add("a.nix", "ab\ncé d\n".to_string());
        let f = map.get(id);
        assert_eq!(f.line_col(0), (1, 1));
        assert_eq!(f.line_col(3), (2, 1));
        // 'é' is two bytes: the space after it is column 3.
        assert_eq!(f.line_col(6), (2, 3));
        assert_eq!(f.line_text(2), "cé d");
    }
}
