//! `migrate demo`: a whole migration of the example homelab (`examples/homelab/`, two hosts,
//! 70 services) on loopback, with no Tailscale and no root, as design section 1C lays out.
//!
//! In a directory of its own it starts one small real app per upstream, one emulated tsnsrv
//! node per service (an HTTPS forwarder on its own loopback address), and one `migrate proxy`
//! per host, all on one port; the storage host's proxy hosts the split-DNS responder, which a
//! legacy records file feeds for names not moved yet (MagicDNS's part). Then it runs what an
//! operator runs, as child processes: `inventory`, `plan`, `apply` of every wave on both hosts,
//! then `rollback` of the last wave and `apply` again. After each step every old name is
//! checked the way a client reaches it: a DNS query to the responder, then HTTPS trusting the
//! development CA. A client keeps requesting throughout and counts what fails. It ends with a
//! table of measured figures (and the plan's forecast, labelled as such), and removes
//! everything it started, also on Ctrl-C, unless `--keep`.

mod apps;
mod example;
mod inventory;
mod measure;
mod nodes;
mod plan;
mod procs;
mod run;
mod setup;
mod summary;
mod waves;
mod world;

pub use run::{Options, run};
