//! The plan file is a public format: a plan made by this version from the fixture inventory is
//! byte-identical to the one committed (made by the version that introduced plan format 2), and
//! plan files of formats 1 and 2 are still read, intact, and written back byte for byte.
//!
//! `TAILSHIFT_BLESS=1` rewrites the format-2 fixture and its documents (only when the format
//! changes on purpose; the format-1 fixture is derived from it, its routes removed).

use std::path::PathBuf;
use tailshift_parsers::Inventory;
use tailshift_plans::{PlanOptions, Policy, make_plan, plan_file, render};

/// The creation time of the fixtures (`SOURCE_DATE_EPOCH` of the integration tests).
const CREATED: u64 = 1_795_830_000;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(data(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn bless() -> bool {
    std::env::var("TAILSHIFT_BLESS").is_ok_and(|v| v == "1")
}

/// The plan of the fixture inventory and policy, sealed at [`CREATED`].
fn fixture_plan() -> tailshift_plans::Plan {
    let inv: Inventory = serde_json::from_str(&read("fixture-inventory.json")).unwrap();
    let policy = Policy::parse(&read("fixture-migrate.toml"), "fixture-migrate.toml").unwrap();
    let plan = make_plan(&inv, &policy, &PlanOptions::default()).unwrap();
    plan_file::seal(plan, &inv, &policy, CREATED)
}

/// The format-1 file of a format-2 text: no routes, format 1, sealed again.
fn format_1_of(text: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
    v["format_version"] = 1.into();
    for s in v["services"].as_array_mut().unwrap() {
        s.as_object_mut().unwrap().remove("route");
    }
    let plan = plan_file::reseal(serde_json::from_value(v).unwrap());
    plan_file::to_text(&plan)
}

#[test]
fn a_plan_made_now_is_byte_identical_to_the_format_2_fixture() {
    let plan = fixture_plan();
    let docs = [
        ("plan-format-2.json", plan_file::to_text(&plan)),
        ("plan-format-2.table", render::table(&plan)),
        ("plan-format-2.md", render::markdown(&plan)),
        ("plan-format-2.dot", render::dot(&plan)),
        ("plan-format-2.mmd", render::mermaid(&plan)),
    ];
    if bless() {
        for (name, text) in &docs {
            std::fs::write(data(name), text).unwrap();
        }
        std::fs::write(data("plan-format-1.json"), format_1_of(&docs[0].1)).unwrap();
    }
    for (name, text) in &docs {
        assert!(read(name) == *text, "{name} differs from what this version makes:\n{text}");
    }
}

#[test]
fn plan_files_of_formats_1_and_2_are_read_intact_and_written_back_byte_for_byte() {
    for (name, format) in [("plan-format-1.json", 1), ("plan-format-2.json", 2)] {
        let text = read(name);
        let plan = plan_file::read(&data(name)).unwrap();
        assert_eq!(plan.format_version, format, "{name}");
        assert!(plan_file::intact(&plan), "{name}: its self-hash no longer matches");
        assert!(plan_file::to_text(&plan) == text, "{name}: not written back byte for byte");
        assert_eq!(plan.services.iter().all(|s| s.route.is_none()), format == 1, "{name}");
    }
}

#[test]
fn the_fixture_covers_both_kinds_of_dependency_aliases_and_findings() {
    let text = read("plan-format-2.json");
    for needle in ["(forward auth)\"", "(policy)\"", "\"aliases\"", "\"service\": \"h2/pub\""] {
        assert!(text.contains(needle), "the fixture lost {needle}");
    }
}
