//! `migrate`: moves tsnsrv services onto one Tailscale node behind one reverse proxy.

mod apply;
mod cli;

// The exit-code table is shared with the demo crate (it reads its children's codes).
use tailshift_util::exit::{self, Exit};

/// The evaluator allocates many small, short-lived values (thunks, attribute sets); mimalloc
/// handles that pattern several times faster than glibc's malloc (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Like other command-line tools, end quietly when the reader of our output goes away
    // (`migrate inventory ... | head`) instead of panicking on a broken pipe.
    // SAFETY: restoring the default disposition of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // mimalloc commits its arena eagerly; with transparent huge pages set to `always`, every
    // first touch then faults in 2 MiB, and an idle proxy holds 8 MB it never uses. Small pages
    // keep it near what it really uses (BENCHMARKS.md).
    // SAFETY: a process attribute, set before any thread starts.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    let outcome = match cli::parse() {
        Ok(cmd) => cli::run(cmd),
        Err(exit) => Ok(exit),
    };
    match outcome {
        Ok(exit) => exit.into(),
        Err(err) => {
            eprintln!("error: {err:#}");
            // Every error that reaches here is about the input or the invocation.
            Exit::BadInput.into()
        }
    }
}
