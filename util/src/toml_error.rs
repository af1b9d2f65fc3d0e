//! TOML read errors that name the file, line and column.

use std::path::Path;

/// A TOML document that does not parse or does not fit its type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TomlError {
    /// The file, as given.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for TomlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
    }
}

impl std::error::Error for TomlError {}

impl TomlError {
    /// The error of `toml` for `text`, read from `file`, with its position.
    pub fn new(file: &Path, text: &str, e: &toml::de::Error) -> TomlError {
        let (line, column) = e.span().map(|s| crate::line_col(text, s.start)).unwrap_or((1, 1));
        TomlError {
            file: file.display().to_string(),
            line,
            column,
            message: e.message().trim().to_string(),
        }
    }
}

/// Parses `text` (the content of `file`) as `T`.
pub fn parse_toml<T: serde::de::DeserializeOwned>(file: &Path, text: &str) -> Result<T, TomlError> {
    toml::from_str(text).map_err(|e| TomlError::new(file, text, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_file_line_and_column() {
        let e = parse_toml::<toml::Table>(Path::new("m.toml"), "a = 1\nb = = 2\n").unwrap_err();
        assert_eq!((e.file.as_str(), e.line, e.column), ("m.toml", 2, 5));
        assert!(e.to_string().starts_with("m.toml:2:5: "), "{e}");
    }
}
