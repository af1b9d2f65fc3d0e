use tailshift_parsers::nix::{Eval, with_eval_stack};
use tailshift_parsers::source::SourceMap;
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    with_eval_stack(move || {
        let mut ev = Eval::new(SourceMap::new());
        let r = ev.load_modules(&[args[0].clone().into()], None);
        println!("load: {:?}", r.err());
        let d = ev.config_read(&["services", "tsnsrv"]);
        match d {
            Ok(Some(d)) => println!(
                "{}",
                serde_json::to_string_pretty(&d.value.map_err(|u| u.describe())).unwrap()
            ),
            other => println!("{other:?}"),
        }
        let h = ev.config_read(&["networking", "hostName"]);
        println!("{:?}", h.map(|o| o.map(|d| d.value.map_err(|u| u.describe()))));
        for d in &ev.diagnostics {
            println!("{d}");
        }
    });
}
