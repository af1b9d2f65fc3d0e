//! What the package installs besides the binary: shell completions and man pages, generated from
//! the clap definitions (`migrate completions SHELL`, the hidden `migrate man`).

use crate::util::{migrate, stderr, stdout};
use std::process::Command;
use tailshift_util::testing::skip;

fn has(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn bash_completes_a_subcommand_from_the_generated_script() {
    let o = migrate(&["completions", "bash"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("migrate.bash");
    std::fs::write(&script, &o.stdout).unwrap();
    // What bash does on `migrate ap<TAB>`: the function the script registered, with the words.
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -e; source '{}'; complete -p migrate; COMP_WORDS=(migrate ap); COMP_CWORD=1; COMP_LINE='migrate ap'; COMP_POINT=10; _migrate migrate ap migrate; printf '<%s>\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        ))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("<apply>"), "{out}");
    assert!(!out.contains("<plan>"), "only what starts with `ap`: {out}");
    // Hidden subcommands (the watcher `apply` starts, `man`) are not offered, nor after `help`.
    for (words, line) in [("migrate \"\"", "migrate "), ("migrate help \"\"", "migrate help ")] {
        let o = Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source '{}'; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}}-1)); COMP_LINE='{line}'; COMP_POINT={}; _migrate migrate '' x; printf '<%s>\\n' \"${{COMPREPLY[@]}}\"",
                script.display(),
                line.len()
            ))
            .output()
            .unwrap();
        let out = stdout(&o);
        assert!(out.contains("<status>"), "{words}: {out}{}", stderr(&o));
        for hidden in ["<watch-confirm>", "<man>"] {
            assert!(!out.contains(hidden), "{words}: {hidden} offered: {out}");
        }
    }
    // A flag of a subcommand too.
    let o = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source '{}'; COMP_WORDS=(migrate proxy --check); COMP_CWORD=2; _migrate migrate --check proxy; printf '<%s>\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        ))
        .output()
        .unwrap();
    assert!(stdout(&o).contains("<--check-config>"), "{}{}", stdout(&o), stderr(&o));
}

#[test]
fn zsh_and_fish_accept_their_scripts() {
    for (shell, args) in [("zsh", &["-n"][..]), ("fish", &["--no-execute"][..])] {
        let o = migrate(&["completions", shell]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(stdout(&o).contains("apply"), "{shell}: {}", stdout(&o));
        assert!(!stdout(&o).contains("watch-confirm"), "{shell}: hidden offered");
        if !has(shell) {
            skip(&format!("{shell} is not installed"));
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join(format!("migrate.{shell}"));
        std::fs::write(&script, &o.stdout).unwrap();
        let o = Command::new(shell).args(args).arg(&script).output().unwrap();
        assert!(o.status.success(), "{shell} refuses its script: {}", stderr(&o));
    }
    // fish also runs it: the subcommands are offered.
    if has("fish") {
        let o = Command::new("fish")
            .arg("-c")
            .arg("migrate completions fish | source; complete -C 'migrate ap'")
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    std::path::Path::new(env!("CARGO_BIN_EXE_migrate")).parent().unwrap().display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .output()
            .unwrap();
        assert!(stdout(&o).contains("apply"), "{}{}", stdout(&o), stderr(&o));
    }
    let o = migrate(&["completions", "powershell"]);
    assert_eq!(o.status.code(), Some(1), "an unknown shell is a usage error");
}

#[test]
fn man_renders_the_pages() {
    let dir = tempfile::tempdir().unwrap();
    let o = migrate(&["man", "--out-dir", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for page in ["migrate.1", "migrate-apply.1", "migrate-proxy.1", "migrate-completions.1"] {
        assert!(dir.path().join(page).is_file(), "{page}: {}", stdout(&o));
    }
    assert!(!dir.path().join("migrate-watch-confirm.1").exists(), "internal commands have no page");
    // NAME is the page's name (`migrate-proxy - ...`), as man -k and whatis list it.
    let proxy = std::fs::read_to_string(dir.path().join("migrate-proxy.1")).unwrap();
    assert!(proxy.contains(".SH NAME\nmigrate\\-proxy \\- Run the reverse proxy"), "{proxy}");
    let main = migrate(&["man"]);
    assert_eq!(
        main.stdout,
        std::fs::read(dir.path().join("migrate.1")).unwrap(),
        "one page, two ways"
    );
    if !has("man") || !has("groff") {
        return skip("man or groff is not installed (man-db, groff)");
    }
    for (page, want) in [("migrate.1", "SUBCOMMANDS"), ("migrate-proxy.1", "--check-config")] {
        let o = Command::new("man")
            .arg("-l")
            .arg(dir.path().join(page))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        assert!(o.status.success(), "{page}: {}", stderr(&o));
        let text = stdout(&o);
        assert!(text.contains(want), "{page}: {text}");
        assert!(text.contains("migrate"), "{page}: {text}");
        assert!(!stderr(&o).contains("warning"), "{page}: {}", stderr(&o));
    }
}
