//! The `hosts` backend: the old names in a marked block of a hosts file (`/etc/hosts` on the
//! machines that need them), every line outside the block untouched. For a handful of clients
//! without a DNS server of their own; each client's file is one more place to undo.

use crate::atomic;
use crate::records::normalize;
use crate::shim::{Shim, ShimError, ShimService, Verification};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The first line of the managed block.
pub const BEGIN: &str = "# BEGIN tailshift: managed by `migrate`; edits inside are replaced";
/// The last line of the managed block.
pub const END: &str = "# END tailshift";

/// A hosts file with a tailshift block.
#[derive(Clone, Debug)]
pub struct HostsFile {
    path: PathBuf,
}

/// The text split around the block: before, the block's entries, after.
struct Split {
    before: Vec<String>,
    entries: BTreeMap<String, Vec<IpAddr>>,
    after: Vec<String>,
}

fn split(path: &Path, text: &str) -> Result<Split, ShimError> {
    let mut s = Split { before: Vec::new(), entries: BTreeMap::new(), after: Vec::new() };
    let mut state = 0; // 0 before, 1 inside, 2 after
    for line in text.lines() {
        match state {
            0 if line.trim() == BEGIN => state = 1,
            1 if line.trim() == END => state = 2,
            0 => s.before.push(line.to_string()),
            1 => {
                let mut f = line.split_whitespace();
                let (Some(addr), Some(name)) = (f.next(), f.next()) else { continue };
                if let Ok(ip) = addr.parse::<IpAddr>() {
                    s.entries.entry(normalize(name)).or_default().push(ip);
                }
            }
            _ => {
                if line.trim() == BEGIN {
                    return Err(ShimError::Format {
                        path: path.display().to_string(),
                        message: "two tailshift blocks".into(),
                    });
                }
                s.after.push(line.to_string())
            }
        }
    }
    if state == 1 {
        return Err(ShimError::Format {
            path: path.display().to_string(),
            message: format!("`{BEGIN}` without `{END}`"),
        });
    }
    Ok(s)
}

fn render(s: &Split) -> String {
    let mut out: Vec<String> = s.before.clone();
    if !s.entries.is_empty() {
        out.push(BEGIN.to_string());
        for (name, addrs) in &s.entries {
            let mut addrs = addrs.clone();
            addrs.sort();
            addrs.dedup();
            for a in addrs {
                out.push(format!("{a} {name}"));
            }
        }
        out.push(END.to_string());
    }
    out.extend(s.after.iter().cloned());
    let mut text = out.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    text
}

impl HostsFile {
    /// The file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        HostsFile { path: path.into() }
    }

    fn update(&self, name: &str, addrs: Option<&[IpAddr]>) -> Result<bool, ShimError> {
        let text = atomic::read(&self.path)?.unwrap_or_default();
        let mut s = split(&self.path, &text)?;
        let n = normalize(name);
        match addrs {
            Some(a) if !a.is_empty() => {
                s.entries.insert(n, a.to_vec());
            }
            _ => {
                s.entries.remove(&n);
            }
        }
        let next = render(&s);
        if next == text {
            return Ok(false);
        }
        atomic::write(&self.path, &next)?;
        Ok(true)
    }

    /// Makes `name` resolve to `addrs` through the block; returns whether the file changed.
    pub fn set(&self, name: &str, addrs: &[IpAddr]) -> Result<bool, ShimError> {
        self.update(name, Some(addrs))
    }

    /// Removes `name` from the block (the block goes when it is empty).
    pub fn remove(&self, name: &str) -> Result<bool, ShimError> {
        self.update(name, None)
    }

    /// What the system resolver would answer from this file: the addresses of the first line
    /// naming `name` (glibc's default, without `multi on`), wherever that line is.
    pub fn resolve(&self, name: &str) -> Result<Option<IpAddr>, ShimError> {
        let n = normalize(name);
        let text = atomic::read(&self.path)?.unwrap_or_default();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut f = line.split_whitespace();
            let Some(addr) = f.next().and_then(|a| a.parse::<IpAddr>().ok()) else { continue };
            if f.any(|h| normalize(h) == n) {
                return Ok(Some(addr));
            }
        }
        Ok(None)
    }
}

/// The `hosts` shim: `prepare` writes the name into the block, `unprepare` takes it out.
#[derive(Clone, Debug)]
pub struct HostsShim {
    /// The file.
    pub file: HostsFile,
}

impl Shim for HostsShim {
    fn kind(&self) -> &'static str {
        "hosts"
    }

    fn describe(&self, s: &ShimService) -> Vec<String> {
        vec![format!(
            "add `{}` -> {} to the tailshift block of {}",
            s.legacy_name,
            s.proxy_addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", "),
            self.file.path.display()
        )]
    }

    fn prepare(&self, s: &ShimService) -> Result<(), ShimError> {
        self.file.set(&s.legacy_name, &s.proxy_addrs).map(|_| ())
    }

    fn complete(&self, _: &ShimService) -> Result<(), ShimError> {
        Ok(())
    }

    fn verify(&self, s: &ShimService) -> Result<Verification, ShimError> {
        Ok(match self.file.resolve(&s.legacy_name)? {
            Some(a) if s.proxy_addrs.contains(&a) => Verification::Holds,
            Some(a) => Verification::Missing(format!(
                "{} resolves to {a} through {} (an earlier line wins over the tailshift block)",
                s.legacy_name,
                self.file.path.display()
            )),
            None => Verification::Missing(format!(
                "{} is not in {}",
                s.legacy_name,
                self.file.path.display()
            )),
        })
    }

    fn uncomplete(&self, _: &ShimService) -> Result<(), ShimError> {
        Ok(())
    }

    fn unprepare(&self, s: &ShimService) -> Result<(), ShimError> {
        self.file.remove(&s.legacy_name).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str) -> ShimService {
        ShimService {
            service: "nas/app".into(),
            legacy_name: name.into(),
            new_names: vec![],
            proxy_addrs: vec!["100.64.0.1".parse().unwrap()],
            funnel: false,
        }
    }

    const FOREIGN: &str = "127.0.0.1 localhost\n# a comment\n::1 localhost ip6-localhost\n";

    #[test]
    fn lines_outside_the_block_are_untouched_and_install_remove_converge() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        std::fs::write(&path, FOREIGN).unwrap();
        let shim = HostsShim { file: HostsFile::new(&path) };
        let (a, b) = (svc("jellyfin.tail1.ts.net"), svc("grafana.tail1.ts.net"));
        shim.prepare(&a).unwrap();
        shim.prepare(&b).unwrap();
        let once = std::fs::read_to_string(&path).unwrap();
        assert!(once.starts_with(FOREIGN), "{once}");
        shim.prepare(&a).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), once, "repeating changes nothing");
        assert!(shim.verify(&a).unwrap().holds());
        // Lines someone adds after the block stay too.
        std::fs::write(&path, format!("{once}10.0.0.5 printer\n")).unwrap();
        shim.unprepare(&a).unwrap();
        shim.unprepare(&b).unwrap();
        shim.unprepare(&b).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{FOREIGN}10.0.0.5 printer\n"));
    }

    #[test]
    fn verify_looks_at_what_the_resolver_would_answer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        std::fs::write(&path, FOREIGN).unwrap();
        let shim = HostsShim { file: HostsFile::new(&path) };
        let a = svc("jellyfin.tail1.ts.net");
        shim.prepare(&a).unwrap();
        assert!(shim.verify(&a).unwrap().holds());
        // The block is there, but an earlier line sends the name elsewhere: not in effect.
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("100.99.0.7 jellyfin.tail1.ts.net\n{text}")).unwrap();
        let v = shim.verify(&a).unwrap();
        assert!(!v.holds(), "{v:?}");
    }

    #[test]
    fn a_crash_before_the_rename_leaves_the_hosts_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        std::fs::write(&path, FOREIGN).unwrap();
        HostsFile::new(&path).set("a.test", &["127.0.0.2".parse().unwrap()]).unwrap();
        let before = std::fs::read(&path).unwrap();
        let r = crate::atomic::write_with(&path, "127.0.0.1 half", || {
            Err(std::io::Error::other("crash"))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn an_unterminated_block_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        std::fs::write(&path, format!("{FOREIGN}{BEGIN}\n1.2.3.4 x\n")).unwrap();
        let e = HostsFile::new(&path).set("a", &["127.0.0.1".parse().unwrap()]).unwrap_err();
        assert!(e.to_string().contains("without"), "{e}");
    }
}
