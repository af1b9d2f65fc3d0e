//! For tests only: the one way a test says it could not run.

/// A test's prerequisite (Nix, Chromium, `../shared`, python3...) is missing. Under CI
/// (`CI=true`), where `.ci/run` installs everything, that is a failure (this panics with the
/// reason); elsewhere the test prints `SKIPPED: <reason>` and the caller returns. So a test
/// never passes without running where it matters.
pub fn skip(reason: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("a prerequisite is missing under CI=true: {reason}");
    }
    eprintln!("SKIPPED: {reason}");
}
