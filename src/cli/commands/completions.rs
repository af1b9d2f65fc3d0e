//! `migrate completions SHELL` and the hidden `migrate man`: shell completions and man pages,
//! generated from the clap definitions (so they never drift from the flags). The flake's
//! package runs both at build time and installs the results.

use crate::cli::args::{Cli, CompletionsArgs, ManArgs, ShellArg};
use crate::exit::Exit;
use clap::CommandFactory;
use std::io::Write;

/// Prints the completion script of one shell.
pub fn completions(a: &CompletionsArgs) -> anyhow::Result<Exit> {
    let shell = match a.shell {
        ShellArg::Bash => clap_complete::Shell::Bash,
        ShellArg::Zsh => clap_complete::Shell::Zsh,
        ShellArg::Fish => clap_complete::Shell::Fish,
    };
    let mut cmd = visible(Cli::command());
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut cmd, "migrate", &mut out);
    out.flush()?;
    Ok(Exit::Ok)
}

/// The command without its hidden subcommands (`watch-confirm`, `man`): clap_complete offers
/// every subcommand, hidden or not (and `help <hidden>` too), so they are left out of the tree
/// the scripts are generated from.
fn visible(cmd: clap::Command) -> clap::Command {
    let subs: Vec<clap::Command> =
        cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned().collect();
    let mut top = clap::Command::new("migrate")
        .version(env!("CARGO_PKG_VERSION"))
        .propagate_version(true)
        .args(cmd.get_arguments().cloned())
        .subcommands(subs);
    if let Some(a) = cmd.get_about() {
        top = top.about(a.clone());
    }
    top
}

/// Prints `migrate.1`, or writes it and one page per visible subcommand into a directory.
pub fn man(a: &ManArgs) -> anyhow::Result<Exit> {
    let cmd = Cli::command();
    let Some(dir) = &a.out_dir else {
        let mut out = std::io::stdout().lock();
        clap_mangen::Man::new(cmd).title("MIGRATE").render(&mut out)?;
        out.flush()?;
        return Ok(Exit::Ok);
    };
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    let mut written = Vec::new();
    let mut page = |name: String, c: clap::Command| -> anyhow::Result<()> {
        let mut buf = Vec::new();
        clap_mangen::Man::new(c).title(name.to_uppercase()).render(&mut buf)?;
        let path = dir.join(format!("{name}.1"));
        std::fs::write(&path, buf).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        written.push(path);
        Ok(())
    };
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set() && s.get_name() != "help") {
        let name = format!("migrate-{}", sub.get_name());
        // NAME says `migrate-proxy - ...`, as the page is called (not `proxy - ...`).
        let c = sub.clone().bin_name(format!("migrate {}", sub.get_name())).display_name(&name);
        page(name, c)?;
    }
    page("migrate".into(), cmd)?;
    for p in written {
        println!("{}", p.display());
    }
    Ok(Exit::Ok)
}
