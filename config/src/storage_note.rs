//! What `config check` says about the file system under a data directory. Outpost's durability
//! does not depend on mount options (every acknowledgement follows an `fdatasync`, and no page of
//! its stores is written outside sled's log), but some file systems make that promise void, and
//! data journaling adds a second line of defence; an operator should know which one a board has.

use std::path::{Path, PathBuf};

/// One line of `/proc/self/mounts`: where, what, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub point: PathBuf,
    pub fs_type: String,
    pub options: Vec<String>,
}

/// Parses `/proc/self/mounts` text (octal escapes such as `\040` in paths are decoded).
pub fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let _device = fields.next()?;
            let point = unescape(fields.next()?);
            let fs_type = fields.next()?.to_owned();
            let options = fields.next()?.split(',').map(str::to_owned).collect();
            Some(Mount {
                point: PathBuf::from(point),
                fs_type,
                options,
            })
        })
        .collect()
}

fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).filter(|_| bytes[i] == b'\\');
        match octal.and_then(|o| u8::from_str_radix(std::str::from_utf8(o).ok()?, 8).ok()) {
            Some(b) => {
                out.push(b);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount holding `path` (the longest mount point that is a prefix of it).
pub fn mount_of<'a>(mounts: &'a [Mount], path: &Path) -> Option<&'a Mount> {
    mounts
        .iter()
        .filter(|m| path.starts_with(&m.point))
        .max_by_key(|m| m.point.as_os_str().len())
}

/// What to tell the operator about `data_dir` on `mount`.
pub fn note(data_dir: &Path, mount: &Mount) -> String {
    let options = mount.options.join(",");
    let place = format!(
        "data_dir {} is on {} ({}, {options})",
        data_dir.display(),
        mount.point.display(),
        mount.fs_type
    );
    let has = |o: &str| mount.options.iter().any(|x| x == o);
    match mount.fs_type.as_str() {
        "tmpfs" | "ramfs" => format!(
            "warning: {place}: nothing there survives a reboot; use a disk for a real deployment"
        ),
        "ext4" | "ext3" if has("data=journal") => format!(
            "note: {place}: data journaling on; acknowledged events survive a power cut (tested \
             without it too)"
        ),
        "ext4" | "ext3" if has("nobarrier") || has("barrier=0") => format!(
            "warning: {place}: write barriers are off, so fdatasync does not reach the disk and a \
             power cut can lose acknowledged events; remount without nobarrier"
        ),
        "ext4" | "ext3" => format!(
            "note: {place}: acknowledged events survive a power cut as tested (fdatasync before \
             every acknowledgement); mounting it with data=journal adds a second line of defence \
             (see docs/operations.md, \"Storage and power cuts\")"
        ),
        _ => format!(
            "note: {place}: Outpost's power-cut test runs on ext4; on other file systems the \
             promise rests on fdatasync being honoured (see docs/operations.md, \"Storage and \
             power cuts\")"
        ),
    }
}

/// The note for `data_dir` on this machine, if its mount can be found.
pub fn describe(data_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/mounts").ok()?;
    let mounts = parse_mounts(&text);
    // The directory may not exist yet: its nearest existing ancestor is on the same mount.
    let existing = data_dir.ancestors().find(|p| p.exists())?;
    let absolute = existing.canonicalize().ok()?;
    mount_of(&mounts, &absolute).map(|m| note(data_dir, m))
}

/// A warning when `budget` (outbox.budget_bytes) is more than the file system under `data_dir`
/// holds: the edge then applies a smaller budget from the free space (see the edge's
/// `outbox::room`), and the operator should know the configured one is not what runs.
pub fn budget_warning(data_dir: &Path, budget: u64) -> Option<String> {
    let existing = data_dir.ancestors().find(|p| p.exists())?;
    let fs = nix::sys::statvfs::statvfs(existing).ok()?;
    let size = fs.blocks() * fs.fragment_size();
    (budget > size).then(|| {
        format!(
            "warning: outbox.budget_bytes is {budget} but the file system under {} holds {size} \
             bytes; the edge stores what its free space allows (outpost_outbox_budget_bytes)",
            data_dir.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS: &str = "/dev/vda / ext4 rw,relatime 0 0\n\
        tmpfs /run tmpfs rw,nosuid 0 0\n\
        /dev/vdb /var/lib/outpost ext4 rw,data=journal 0 0\n\
        /dev/vdc /mnt/with\\040space ext4 rw,nobarrier 0 0\n";

    #[test]
    fn the_longest_mount_point_holding_the_path_is_its_mount() {
        let mounts = parse_mounts(MOUNTS);
        let m = mount_of(&mounts, Path::new("/var/lib/outpost/edge")).unwrap();
        assert_eq!(m.point, Path::new("/var/lib/outpost"));
        let m = mount_of(&mounts, Path::new("/var/lib/other")).unwrap();
        assert_eq!(m.point, Path::new("/"));
        let m = mount_of(&mounts, Path::new("/mnt/with space/x")).unwrap();
        assert_eq!(m.fs_type, "ext4");
    }

    #[test]
    fn notes_name_data_journal_tmpfs_and_disabled_barriers() {
        let mounts = parse_mounts(MOUNTS);
        let say = |p: &str| note(Path::new(p), mount_of(&mounts, Path::new(p)).unwrap());
        assert!(say("/var/lib/x").contains("data=journal adds a second line"));
        assert!(say("/var/lib/outpost/e").contains("data journaling on"));
        assert!(say("/run/x").starts_with("warning:"));
        assert!(say("/mnt/with space/e").contains("barriers are off"));
    }
}
