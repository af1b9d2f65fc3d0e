//! The example homelab (`examples/homelab/`), compiled into the binary so that `migrate demo`
//! runs from any directory. The demo writes a copy into its own directory with one change:
//! `ports.nix` gets free loopback ports (and socket paths under the directory), because the
//! example's real ports (8080, 3000, ...) may be taken on the machine running the demo.

use anyhow::Context;
use std::path::{Path, PathBuf};

/// The example's files, as `(path inside the example, text)`.
pub const FILES: [(&str, &str); 6] = [
    ("ports.nix", include_str!("../../examples/homelab/ports.nix")),
    ("registry.nix", include_str!("../../examples/homelab/registry.nix")),
    ("gateway.nix", include_str!("../../examples/homelab/gateway.nix")),
    ("hosts/storage.nix", include_str!("../../examples/homelab/hosts/storage.nix")),
    ("hosts/cloud.nix", include_str!("../../examples/homelab/hosts/cloud.nix")),
    ("migrate.toml", include_str!("../../examples/homelab/migrate.toml")),
];

/// Where an app listens, as `ports.nix` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    /// A TCP port on 127.0.0.1.
    Port(u16),
    /// A unix socket.
    Socket(PathBuf),
}

/// One line `name = value;` of `ports.nix`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortEntry {
    /// The app (`jellyfin`, `home-assistant`).
    pub app: String,
    /// Where it listens in the example.
    pub listen: Listen,
}

/// Reads the entries of `ports.nix` (every `name = 123;` or `name = "/path";` line but
/// `https`, which is the tailnet's HTTPS port).
pub fn port_entries(text: &str) -> Vec<PortEntry> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.trim().strip_suffix(';')?.split_once('=')?;
            let (k, v) = (k.trim(), v.trim());
            if k == "https" || k.contains(' ') {
                return None;
            }
            let listen = if let Some(p) = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                Listen::Socket(PathBuf::from(p))
            } else {
                Listen::Port(v.parse().ok()?)
            };
            Some(PortEntry { app: k.to_string(), listen })
        })
        .collect()
}

/// `ports.nix` with every entry replaced by `new` (same order, comments kept) and the
/// tailnet's HTTPS port set.
pub fn rewrite_ports(text: &str, new: &[PortEntry], https: u16) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim();
        let key = t.split_once('=').map(|(k, _)| k.trim()).filter(|_| t.ends_with(';'));
        let indent = &line[..line.len() - line.trim_start().len()];
        match key {
            Some("https") => out.push_str(&format!("{indent}https = {https};")),
            Some(k) => match new.iter().find(|e| e.app == k) {
                Some(PortEntry { listen: Listen::Port(p), .. }) => {
                    out.push_str(&format!("{indent}{k} = {p};"))
                }
                Some(PortEntry { listen: Listen::Socket(s), .. }) => {
                    out.push_str(&format!("{indent}{k} = \"{}\";", s.display()))
                }
                None => out.push_str(line),
            },
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Writes the example under `dir` with `ports.nix` rewritten; returns the directory.
pub fn write_copy(dir: &Path, ports: &[PortEntry], https: u16) -> anyhow::Result<PathBuf> {
    let root = dir.join("homelab");
    for (rel, text) in FILES {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap_or(&root))
            .with_context(|| format!("creating {}", path.display()))?;
        let text =
            if rel == "ports.nix" { rewrite_ports(text, ports, https) } else { text.to_string() };
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_app_of_the_example_has_a_port_or_a_socket_and_rewriting_keeps_the_rest() {
        let entries = port_entries(FILES[0].1);
        assert!(entries.len() >= 60, "{}", entries.len());
        assert!(entries.iter().any(|e| matches!(e.listen, Listen::Socket(_))));
        let moved: Vec<PortEntry> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| PortEntry {
                app: e.app.clone(),
                listen: match e.listen {
                    Listen::Port(_) => Listen::Port(40000 + i as u16),
                    Listen::Socket(_) => Listen::Socket(PathBuf::from("/tmp/x.sock")),
                },
            })
            .collect();
        let text = rewrite_ports(FILES[0].1, &moved, 4443);
        assert_eq!(port_entries(&text), moved);
        assert!(text.contains("https = 4443;"));
        assert_eq!(text.lines().count(), FILES[0].1.lines().count());
    }
}
