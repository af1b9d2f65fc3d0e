//! Enums of stable codes (diagnostics, plan findings) written as their snake_case strings.

/// Defines an enum of stable codes, each written (JSON, text) as its snake_case string, so code
/// compares values while files and output keep the strings they always had.
///
/// Besides the listed codes the enum has `Other(String)`: a code this version does not define,
/// read from a file another version wrote, is kept as written (a sealed plan's hash holds).
///
/// ```
/// tailshift_util::codes! {
///     /// What went wrong.
///     pub enum Code {
///         /// The file is not there.
///         NotFound = "not_found",
///     }
/// }
/// assert_eq!(Code::NotFound.as_str(), "not_found");
/// assert_eq!(Code::parse("not_found"), Code::NotFound);
/// assert_eq!(Code::parse("newer"), Code::Other("newer".into()));
/// ```
#[macro_export]
macro_rules! codes {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name {
            $($(#[$vmeta])* $variant,)*
            /// A code this version does not define, kept as written.
            Other(String),
        }

        impl $name {
            /// Every code this version defines.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The stable snake_case spelling.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)*
                    $name::Other(s) => s,
                }
            }

            /// The code a spelling names; one this version does not define is kept as
            /// `Other`.
            pub fn parse(s: &str) -> $name {
                match s {
                    $($text => $name::$variant,)*
                    other => $name::Other(other.to_string()),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $crate::__serde::Serialize for $name {
            fn serialize<S: $crate::__serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> $crate::__serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::__serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <::std::borrow::Cow<'de, str> as $crate::__serde::Deserialize>::deserialize(d)?;
                Ok($name::parse(&s))
            }
        }
    };
}

#[cfg(test)]
mod tests {
    crate::codes! {
        /// Test codes.
        enum Code {
            /// One.
            One = "one",
            /// Two words.
            TwoWords = "two_words",
        }
    }

    #[test]
    fn codes_are_written_as_their_strings_and_unknown_ones_are_kept() {
        for c in Code::ALL {
            assert_eq!(&Code::parse(c.as_str()), c);
            let json = serde_json::to_string(c).unwrap();
            assert_eq!(json, format!("\"{c}\""));
            assert_eq!(&serde_json::from_str::<Code>(&json).unwrap(), c);
        }
        let other: Code = serde_json::from_str("\"three\"").unwrap();
        assert_eq!(other, Code::Other("three".into()));
        assert_eq!(serde_json::to_string(&other).unwrap(), "\"three\"");
    }
}
