//! Fuzzes the Nix evaluator: any text must parse, lower and evaluate (strictly, to JSON)
//! without a panic or a hang. The step budget bounds the work per input; evaluation runs on a
//! thread with the evaluator's own stack size, as `migrate` runs it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tailshift_parsers::nix::{Eval, with_eval_stack};
use tailshift_parsers::source::{FileId, SourceMap, Span};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let text = text.to_string();
    with_eval_stack(move || {
        let mut ev = Eval::new(SourceMap::new());
        ev.set_fuel(200_000);
        if let Ok(v) = ev.eval_text("<fuzz>", &text) {
            let _ = ev.to_json(&v, Span { file: FileId(0), start: 0, end: 0 });
        }
    });
});
