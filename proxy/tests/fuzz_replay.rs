//! Replays the committed fuzz corpora (`fuzz/corpus/request_path/`, `fuzz/corpus/response_head/`)
//! through the fuzz targets' own properties (`fuzz/properties.rs`), so CI holds every input the
//! fuzzers kept (and every finding's reproducer, added to its corpus) to them without running
//! a fuzzer. Fuzzing itself: README.md, "Fuzzing".

#[path = "../../fuzz/properties.rs"]
mod properties;

use std::path::PathBuf;

/// Runs every file of `fuzz/corpus/<target>/` through `property`, naming the files that fail.
fn replay(target: &str, property: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{}: {} files, a corpus was expected", dir.display(), files.len());
    let mut failed = Vec::new();
    for f in &files {
        let data = std::fs::read(f).unwrap();
        if std::panic::catch_unwind(|| property(&data)).is_err() {
            failed.push(f.display().to_string());
        }
    }
    assert!(failed.is_empty(), "{} of {} inputs fail: {failed:#?}", failed.len(), files.len());
}

#[test]
fn request_path_corpus_holds_the_funnel_property() {
    replay("request_path", properties::request_path);
}

#[test]
fn response_head_corpus_holds_the_parser_properties() {
    replay("response_head", properties::response_head);
}

#[test]
fn the_worst_case_upstream_resolves_as_rfc_3986_and_worse() {
    properties::oracle_answers();
}
