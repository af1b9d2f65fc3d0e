//! Records files on disk: written atomically, and only the entries of the names being changed
//! are touched: everything else in the file stays as it was. The format is
//! `tailshift_tailscale::records`'s.

use crate::atomic;
use crate::shim::ShimError;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
pub use tailshift_tailscale::records::{DnsRecord, normalize, parse, records_for, render};

/// A records file on disk.
#[derive(Clone, Debug)]
pub struct RecordsFile {
    path: PathBuf,
}

impl RecordsFile {
    /// The file at `path` (it need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        RecordsFile { path: path.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every record (an absent file has none).
    pub fn read(&self) -> Result<Vec<DnsRecord>, ShimError> {
        match atomic::read(&self.path)? {
            Some(t) => Ok(parse(&self.path, &t)?),
            None => Ok(Vec::new()),
        }
    }

    /// The addresses of a name.
    pub fn lookup(&self, name: &str) -> Result<Vec<IpAddr>, ShimError> {
        let n = normalize(name);
        Ok(self.read()?.iter().filter(|r| r.key() == n).filter_map(DnsRecord::addr).collect())
    }

    /// Makes `name` resolve to exactly `addrs`; other names are kept as they are. Writes only
    /// when something changes; returns whether it did.
    pub fn set(&self, name: &str, addrs: &[IpAddr]) -> Result<bool, ShimError> {
        self.update(name, records_for(name, addrs))
    }

    /// Removes every record of `name`; returns whether there was one.
    pub fn remove(&self, name: &str) -> Result<bool, ShimError> {
        self.update(name, Vec::new())
    }

    fn update(&self, name: &str, wanted: Vec<DnsRecord>) -> Result<bool, ShimError> {
        let current_text = atomic::read(&self.path)?;
        let current = match &current_text {
            Some(t) => parse(&self.path, t)?,
            None => Vec::new(),
        };
        let n = normalize(name);
        let mut next: Vec<DnsRecord> = current.iter().filter(|r| r.key() != n).cloned().collect();
        next.extend(wanted);
        let text = render(&next);
        if current_text.as_deref() == Some(text.as_str()) {
            return Ok(false);
        }
        atomic::write(&self.path, &text)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn foreign_entries_stay_and_output_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("extra-records.json");
        // Someone else's records, in Go's capitalised form and unsorted.
        std::fs::write(
            &path,
            r#"[{"Name":"z.ts.example.com","Type":"A","Value":"100.64.0.9"},{"name":"a.ts.example.com","value":"100.64.0.8"}]"#,
        )
        .unwrap();
        let f = RecordsFile::new(&path);
        assert!(
            f.set("Jellyfin.ts.example.com.", &[ip("100.64.0.3"), ip("fd7a:115c:a1e0::3")])
                .unwrap()
        );
        let once = std::fs::read(&path).unwrap();
        // The same input gives the same bytes, and no write at all.
        assert!(
            !f.set("jellyfin.ts.example.com", &[ip("fd7a:115c:a1e0::3"), ip("100.64.0.3")])
                .unwrap()
        );
        assert_eq!(std::fs::read(&path).unwrap(), once);
        let all = f.read().unwrap();
        assert!(all.iter().any(|r| r.name == "z.ts.example.com" && r.value == "100.64.0.9"));
        assert!(all.iter().any(|r| r.name == "a.ts.example.com" && r.kind.is_empty()));
        assert_eq!(f.lookup("JELLYFIN.ts.example.com").unwrap().len(), 2);
        // Removing converges, repeatedly; the foreign records remain.
        assert!(f.remove("jellyfin.ts.example.com").unwrap());
        assert!(!f.remove("jellyfin.ts.example.com").unwrap());
        assert_eq!(f.read().unwrap().len(), 2);
        // Emptied: `[]`, never an empty file (headscale ignores those).
        RecordsFile::new(dir.path().join("mine.json")).set("x.test", &[ip("127.0.0.1")]).unwrap();
        RecordsFile::new(dir.path().join("mine.json")).remove("x.test").unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("mine.json")).unwrap(), "[]\n");
    }

    #[test]
    fn a_crash_before_the_rename_leaves_the_old_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records.json");
        let f = RecordsFile::new(&path);
        f.set("a.test", &[ip("127.0.0.2")]).unwrap();
        let before = std::fs::read(&path).unwrap();
        let r = crate::atomic::write_with(&path, "[half", || Err(std::io::Error::other("crash")));
        assert!(r.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), before);
        // Nothing else was left beside it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_file_that_is_not_records_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        std::fs::write(&path, "{not json").unwrap();
        let e = RecordsFile::new(&path).set("a.test", &[ip("127.0.0.2")]).unwrap_err();
        assert!(e.to_string().contains("left unchanged"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{not json");
    }
}
