//! A disk that loses power: a FUSE file system (through `fuser`) that forgets every write not
//! made durable by `fsync`/`fdatasync` when the test cuts the power — the LazyFS idea.
//!
//! The file system lives in this process's memory. Each file keeps two images: what programs
//! read and write now, and what the last `fsync`/`fdatasync` of that file made durable. A write
//! changes only the first; a sync copies the pages written since into the second. A cut
//! ([`PowerLossDisk::cut`]) unmounts the file system (the kernel's page cache goes with it),
//! puts every file back to its durable image, and mounts it again: the next program started on
//! the mount point sees what a board would see after its power came back, under the strictest
//! reading of POSIX (no page reaches the disk unless a program asked for it).
//!
//! Invariants:
//! - After a cut, every file's contents and size are exactly those of its last sync; a file never
//!   synced is empty.
//! - The name space (create, mkdir, rename, unlink) is durable at once, as on a journalling file
//!   system that commits metadata before data (LazyFS makes the same choice). A file created,
//!   written and renamed without a sync therefore comes back empty under its new name — the
//!   classic lost-update a crash-safe program must avoid.
//! - Writes that would take the disk past its capacity fail with `ENOSPC`; `statfs` tells the
//!   truth about what is left, so a program can see the disk fill.
//! - The caller kills the programs using the disk before a cut; a cut with a program still
//!   running is refused by the kernel (`EBUSY`) only if that program has the mount point as its
//!   working directory, so it is the caller's job.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use fuser::{
    BackgroundSession, Config, Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation,
    INodeNo, LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
    WriteFlags,
};

const PAGE: u64 = 4096;
/// Attributes and entries are not cached by the kernel: every size it sees is ours.
const TTL: Duration = Duration::ZERO;

/// Why the disk could not be mounted or cut.
#[derive(Debug, thiserror::Error)]
pub enum PowerLossFsError {
    #[error("mounting the power-loss file system on {mount}: {source} (needs root and /dev/fuse)")]
    Mount {
        mount: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("unmounting {mount}: {source}")]
    Unmount {
        mount: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What the disk has seen since it was made, for a test's report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskCounters {
    pub cuts: u32,
    pub syncs: u64,
    pub writes: u64,
    /// Bytes written but never synced, forgotten by the cuts.
    pub bytes_forgotten: u64,
}

#[derive(Debug, Default)]
struct FileData {
    /// What programs see.
    current: Vec<u8>,
    /// What the last sync made durable.
    durable: Vec<u8>,
    /// Pages of `current` written since the last sync.
    dirty: BTreeSet<u64>,
    /// Whether the size changed since the last sync.
    resized: bool,
}

impl FileData {
    fn mark(&mut self, from: u64, to: u64) {
        if to > from {
            self.dirty.extend(from / PAGE..=(to - 1) / PAGE);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let end = offset as usize + data.len();
        if end > self.current.len() {
            self.current.resize(end, 0);
            self.resized = true;
        }
        self.current[offset as usize..end].copy_from_slice(data);
        self.mark(offset, end as u64);
    }

    fn truncate(&mut self, size: u64) {
        let old = self.current.len() as u64;
        self.current.resize(size as usize, 0);
        self.resized = true;
        if size > old {
            self.mark(old, size);
        }
    }

    fn sync(&mut self) {
        let len = self.current.len();
        self.durable.resize(len, 0);
        for page in std::mem::take(&mut self.dirty) {
            let from = (page * PAGE) as usize;
            if from >= len {
                continue;
            }
            let to = (from + PAGE as usize).min(len);
            self.durable[from..to].copy_from_slice(&self.current[from..to]);
        }
        self.resized = false;
    }

    /// Back to the durable image; returns the bytes forgotten.
    fn cut(&mut self) -> u64 {
        let forgotten = self.dirty.len() as u64 * PAGE;
        if !self.dirty.is_empty() || self.resized {
            self.current = self.durable.clone();
        }
        self.dirty.clear();
        self.resized = false;
        forgotten
    }
}

#[derive(Debug)]
enum Body {
    File(FileData),
    Dir(BTreeMap<OsString, u64>),
}

#[derive(Debug)]
struct Inode {
    body: Body,
    perm: u16,
    uid: u32,
    gid: u32,
    nlink: u32,
    open: u32,
    parent: u64,
    mtime: SystemTime,
    ctime: SystemTime,
}

#[derive(Debug)]
struct Disk {
    inodes: BTreeMap<u64, Inode>,
    next_ino: u64,
    capacity: u64,
    counters: DiskCounters,
}

impl Disk {
    fn new(capacity: u64) -> Self {
        let now = SystemTime::now();
        let root = Inode {
            body: Body::Dir(BTreeMap::new()),
            perm: 0o755,
            uid: 0,
            gid: 0,
            nlink: 2,
            open: 0,
            parent: 1,
            mtime: now,
            ctime: now,
        };
        Self {
            inodes: BTreeMap::from([(1, root)]),
            next_ino: 2,
            capacity,
            counters: DiskCounters::default(),
        }
    }

    /// Bytes held by files (what programs see).
    fn used(&self) -> u64 {
        self.inodes
            .values()
            .map(|i| match &i.body {
                Body::File(f) => (f.current.len() as u64).div_ceil(PAGE) * PAGE,
                Body::Dir(_) => PAGE,
            })
            .sum()
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let inode = self.inodes.get(&ino)?;
        let (kind, size) = match &inode.body {
            Body::File(f) => (FileType::RegularFile, f.current.len() as u64),
            Body::Dir(_) => (FileType::Directory, PAGE),
        };
        Some(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: inode.mtime,
            mtime: inode.mtime,
            ctime: inode.ctime,
            crtime: inode.ctime,
            kind,
            perm: inode.perm,
            nlink: inode.nlink,
            uid: inode.uid,
            gid: inode.gid,
            rdev: 0,
            blksize: PAGE as u32,
            flags: 0,
        })
    }

    fn dir(&self, ino: u64) -> Result<&BTreeMap<OsString, u64>, Errno> {
        match self.inodes.get(&ino).map(|i| &i.body) {
            Some(Body::Dir(entries)) => Ok(entries),
            Some(Body::File(_)) => Err(Errno::ENOTDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn dir_mut(&mut self, ino: u64) -> Result<&mut BTreeMap<OsString, u64>, Errno> {
        match self.inodes.get_mut(&ino).map(|i| &mut i.body) {
            Some(Body::Dir(entries)) => Ok(entries),
            Some(Body::File(_)) => Err(Errno::ENOTDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn file_mut(&mut self, ino: u64) -> Result<&mut FileData, Errno> {
        match self.inodes.get_mut(&ino).map(|i| &mut i.body) {
            Some(Body::File(f)) => Ok(f),
            Some(Body::Dir(_)) => Err(Errno::EISDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn make(
        &mut self,
        req: &Request,
        parent: u64,
        name: &OsStr,
        body: Body,
        perm: u16,
    ) -> Result<u64, Errno> {
        if self.dir(parent)?.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        if matches!(body, Body::Dir(_)) && self.used() + PAGE > self.capacity {
            return Err(Errno::ENOSPC);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let now = SystemTime::now();
        let nlink = if matches!(body, Body::Dir(_)) { 2 } else { 1 };
        self.inodes.insert(
            ino,
            Inode {
                body,
                perm,
                uid: req.uid(),
                gid: req.gid(),
                nlink,
                open: 0,
                parent,
                mtime: now,
                ctime: now,
            },
        );
        self.dir_mut(parent)?.insert(name.to_owned(), ino);
        Ok(ino)
    }

    /// Drops the name; the inode goes when it is neither named nor open.
    fn drop_link(&mut self, ino: u64) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.nlink = inode.nlink.saturating_sub(1);
            if matches!(inode.body, Body::Dir(_)) {
                inode.nlink = 0;
            }
            if inode.nlink == 0 && inode.open == 0 {
                self.inodes.remove(&ino);
            }
        }
    }

    fn remove(&mut self, parent: u64, name: &OsStr, want_dir: bool) -> Result<(), Errno> {
        let ino = *self.dir(parent)?.get(name).ok_or(Errno::ENOENT)?;
        match (&self.inodes.get(&ino).ok_or(Errno::ENOENT)?.body, want_dir) {
            (Body::Dir(entries), true) if !entries.is_empty() => return Err(Errno::ENOTEMPTY),
            (Body::Dir(_), false) => return Err(Errno::EISDIR),
            (Body::File(_), true) => return Err(Errno::ENOTDIR),
            _ => {}
        }
        self.dir_mut(parent)?.remove(name);
        self.drop_link(ino);
        Ok(())
    }

    fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
    ) -> Result<(), Errno> {
        let ino = *self.dir(parent)?.get(name).ok_or(Errno::ENOENT)?;
        let moving_dir = matches!(self.inodes.get(&ino).map(|i| &i.body), Some(Body::Dir(_)));
        if let Some(&target) = self.dir(new_parent)?.get(new_name) {
            if target == ino {
                return Ok(());
            }
            match (
                &self.inodes.get(&target).ok_or(Errno::ENOENT)?.body,
                moving_dir,
            ) {
                (Body::Dir(entries), true) if !entries.is_empty() => return Err(Errno::ENOTEMPTY),
                (Body::Dir(_), false) => return Err(Errno::EISDIR),
                (Body::File(_), true) => return Err(Errno::ENOTDIR),
                _ => {}
            }
            self.drop_link(target);
        }
        self.dir_mut(parent)?.remove(name);
        self.dir_mut(new_parent)?.insert(new_name.to_owned(), ino);
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.parent = new_parent;
            inode.ctime = SystemTime::now();
        }
        Ok(())
    }

    fn write(&mut self, ino: u64, offset: u64, data: &[u8]) -> Result<u32, Errno> {
        let len = self.file_mut(ino)?.current.len() as u64;
        let end = offset + data.len() as u64;
        if end > len {
            let grow = end.div_ceil(PAGE) * PAGE - len.div_ceil(PAGE) * PAGE;
            if self.used() + grow > self.capacity {
                return Err(Errno::ENOSPC);
            }
        }
        self.file_mut(ino)?.write(offset, data);
        self.counters.writes += 1;
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.mtime = SystemTime::now();
        }
        Ok(data.len() as u32)
    }

    fn cut(&mut self) {
        let mut forgotten = 0;
        for inode in self.inodes.values_mut() {
            inode.open = 0;
            if let Body::File(f) = &mut inode.body {
                forgotten += f.cut();
            }
        }
        // Files that were only open (unlinked while a program held them) are gone with it.
        self.inodes.retain(|_, i| i.nlink > 0);
        self.counters.cuts += 1;
        self.counters.bytes_forgotten += forgotten;
    }
}

/// The `fuser` face of a [`Disk`] shared with its [`PowerLossDisk`].
struct Fs(Arc<Mutex<Disk>>);

impl Fs {
    fn disk(&self) -> MutexGuard<'_, Disk> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn entry(&self, ino: Result<u64, Errno>, reply: ReplyEntry) {
        let disk = self.disk();
        match ino.and_then(|ino| disk.attr(ino).ok_or(Errno::ENOENT)) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }
}

fn empty(result: Result<(), Errno>, reply: ReplyEmpty) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

fn attr_reply(disk: &Disk, ino: u64, reply: ReplyAttr) {
    match disk.attr(ino) {
        Some(attr) => reply.attr(&TTL, &attr),
        None => reply.error(Errno::ENOENT),
    }
}

fn perm(mode: u32, umask: u32) -> u16 {
    (mode & !umask & 0o7777) as u16
}

impl fuser::Filesystem for Fs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let ino = self
            .disk()
            .dir(parent.0)
            .and_then(|d| d.get(name).copied().ok_or(Errno::ENOENT));
        self.entry(ino, reply);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        attr_reply(&self.disk(), ino.0, reply);
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut disk = self.disk();
        if let Some(size) = size {
            let len = disk.file_mut(ino.0).map(|f| f.current.len() as u64);
            match len {
                Ok(len) if size > len && disk.used() + (size - len) > disk.capacity => {
                    return reply.error(Errno::ENOSPC);
                }
                Ok(_) => {
                    if let Ok(f) = disk.file_mut(ino.0) {
                        f.truncate(size);
                    }
                }
                Err(e) => return reply.error(e),
            }
        }
        let Some(inode) = disk.inodes.get_mut(&ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        if let Some(mode) = mode {
            inode.perm = (mode & 0o7777) as u16;
        }
        if let Some(uid) = uid {
            inode.uid = uid;
        }
        if let Some(gid) = gid {
            inode.gid = gid;
        }
        match mtime {
            Some(TimeOrNow::SpecificTime(t)) => inode.mtime = t,
            Some(TimeOrNow::Now) => inode.mtime = SystemTime::now(),
            None => {}
        }
        inode.ctime = SystemTime::now();
        attr_reply(&disk, ino.0, reply);
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let ino = self.disk().make(
            req,
            parent.0,
            name,
            Body::Dir(BTreeMap::new()),
            perm(mode, umask),
        );
        self.entry(ino, reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(self.disk().remove(parent.0, name, false), reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        empty(self.disk().remove(parent.0, name, true), reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if !flags.is_empty() {
            return reply.error(Errno::EINVAL);
        }
        empty(
            self.disk().rename(parent.0, name, newparent.0, newname),
            reply,
        );
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let mut disk = self.disk();
        match disk.inodes.get_mut(&ino.0) {
            Some(inode) => {
                inode.open += 1;
                reply.opened(FileHandle(ino.0), FopenFlags::empty());
            }
            None => reply.error(Errno::ENOENT),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let mut disk = self.disk();
        let made = disk.make(
            req,
            parent.0,
            name,
            Body::File(FileData::default()),
            perm(mode, umask),
        );
        match made.and_then(|ino| disk.attr(ino).ok_or(Errno::ENOENT)) {
            Ok(attr) => {
                if let Some(inode) = disk.inodes.get_mut(&attr.ino.0) {
                    inode.open += 1;
                }
                reply.created(
                    &TTL,
                    &attr,
                    Generation(0),
                    FileHandle(attr.ino.0),
                    FopenFlags::empty(),
                );
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let mut disk = self.disk();
        match disk.file_mut(ino.0) {
            Ok(f) => {
                let len = f.current.len();
                let from = (offset as usize).min(len);
                let to = (from + size as usize).min(len);
                reply.data(&f.current[from..to]);
            }
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.disk().write(ino.0, offset, data) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Closing a file makes nothing durable.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let mut disk = self.disk();
        if let Some(inode) = disk.inodes.get_mut(&ino.0) {
            inode.open = inode.open.saturating_sub(1);
            if inode.open == 0 && inode.nlink == 0 {
                disk.inodes.remove(&ino.0);
            }
        }
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut disk = self.disk();
        let synced = disk.file_mut(ino.0).map(FileData::sync);
        if synced.is_ok() {
            disk.counters.syncs += 1;
        }
        empty(synced, reply);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.disk().dir(ino.0) {
            Ok(_) => reply.opened(FileHandle(ino.0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let disk = self.disk();
        let entries = match disk.dir(ino.0) {
            Ok(entries) => entries,
            Err(e) => return reply.error(e),
        };
        let parent = disk.inodes.get(&ino.0).map_or(1, |i| i.parent);
        let listed = [(ino.0, OsString::from(".")), (parent, OsString::from(".."))]
            .into_iter()
            .chain(entries.iter().map(|(name, &ino)| (ino, name.clone())));
        for (index, (child, name)) in listed.enumerate().skip(offset as usize) {
            let kind = match disk.inodes.get(&child).map(|i| &i.body) {
                Some(Body::File(_)) => FileType::RegularFile,
                _ => FileType::Directory,
            };
            if reply.add(INodeNo(child), index as u64 + 1, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // The name space is durable at once (module docs).
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let disk = self.disk();
        let blocks = disk.capacity / PAGE;
        let free = disk.capacity.saturating_sub(disk.used()) / PAGE;
        reply.statfs(
            blocks,
            free,
            free,
            1 << 20,
            1 << 20,
            PAGE as u32,
            255,
            PAGE as u32,
        );
    }
}

/// A mounted power-loss file system; unmounted when dropped.
pub struct PowerLossDisk {
    disk: Arc<Mutex<Disk>>,
    mount: PathBuf,
    session: Option<BackgroundSession>,
}

impl std::fmt::Debug for PowerLossDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PowerLossDisk")
            .field("mount", &self.mount)
            .finish_non_exhaustive()
    }
}

impl PowerLossDisk {
    /// Mounts an empty disk of `capacity` bytes on `mount` (which must exist and be empty).
    pub fn mount(mount: &Path, capacity: u64) -> Result<Self, PowerLossFsError> {
        // A disk left mounted here by a run that died (its FUSE connection gone) goes first.
        let _ = nix::mount::umount2(mount, nix::mount::MntFlags::MNT_DETACH);
        let mut disk = Self {
            disk: Arc::new(Mutex::new(Disk::new(capacity))),
            mount: mount.to_owned(),
            session: None,
        };
        disk.attach()?;
        Ok(disk)
    }

    fn attach(&mut self) -> Result<(), PowerLossFsError> {
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("outpost-power-loss".into()),
            MountOption::RW,
        ];
        let session =
            fuser::spawn_mount(Fs(self.disk.clone()), &self.mount, &config).map_err(|source| {
                PowerLossFsError::Mount {
                    mount: self.mount.clone(),
                    source,
                }
            })?;
        self.session = Some(session);
        Ok(())
    }

    fn detach(&mut self) -> Result<(), PowerLossFsError> {
        if let Some(session) = self.session.take() {
            session
                .umount_and_join()
                .map_err(|source| PowerLossFsError::Unmount {
                    mount: self.mount.clone(),
                    source,
                })?;
        }
        Ok(())
    }

    pub fn mount_point(&self) -> &Path {
        &self.mount
    }

    /// Cuts the power: everything not synced is forgotten, and the disk comes back on the same
    /// mount point. Kill the programs using it first.
    pub fn cut(&mut self) -> Result<(), PowerLossFsError> {
        // A store dropped in this process may still be closing its files on its own threads
        // (sled's flusher): the unmount would find the disk busy. What those threads write
        // before they let go is written before the cut, as it would be on a real machine.
        self.wait_until_this_process_lets_go(std::time::Duration::from_secs(5));
        self.detach()?;
        self.disk
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .cut();
        self.attach()
    }

    /// Waits (at most `patience`) until no file under the mount point is open in this process.
    fn wait_until_this_process_lets_go(&self, patience: std::time::Duration) {
        let started = std::time::Instant::now();
        let holds_files = || {
            std::fs::read_dir("/proc/self/fd").is_ok_and(|fds| {
                fds.flatten().any(|fd| {
                    std::fs::read_link(fd.path())
                        .is_ok_and(|target| target.starts_with(&self.mount))
                })
            })
        };
        while holds_files() && started.elapsed() < patience {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Bytes the files take now (what `statfs` counts as used).
    pub fn used(&self) -> u64 {
        self.disk
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .used()
    }

    /// Changes the disk's size while it is in use: below what is used, every write that grows a
    /// file fails with `ENOSPC` until files shrink or the size grows again.
    pub fn set_capacity(&self, capacity: u64) {
        self.disk
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .capacity = capacity;
    }

    pub fn counters(&self) -> DiskCounters {
        self.disk
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .counters
    }
}

impl Drop for PowerLossDisk {
    fn drop(&mut self) {
        if let Err(e) = self.detach() {
            tracing::warn!(error = %e, "power-loss disk not unmounted");
        }
        // Whatever happened above, leave no mount behind (a lazy unmount of nothing fails
        // harmlessly).
        let _ = nix::mount::umount2(&self.mount, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_comes_back_as_its_last_sync_made_it() {
        let mut f = FileData::default();
        f.write(0, b"hello world");
        f.sync();
        f.write(6, b"there, and more");
        assert_eq!(f.current, b"hello there, and more");
        f.cut();
        assert_eq!(f.durable, b"hello world");
        assert_eq!(f.current, b"hello world");
    }

    #[test]
    fn a_truncation_not_synced_is_undone_by_a_cut() {
        let mut f = FileData::default();
        f.write(0, &[7; 10_000]);
        f.sync();
        f.truncate(10);
        f.cut();
        assert_eq!(f.current.len(), 10_000);
        f.truncate(10);
        f.sync();
        f.cut();
        assert_eq!(f.current, vec![7; 10]);
    }

    #[test]
    fn a_sync_copies_only_what_was_written_since_the_last_one() {
        let mut f = FileData::default();
        f.write(0, &[1; 3 * PAGE as usize]);
        f.sync();
        f.write(PAGE + 5, &[2; 3]);
        assert_eq!(f.dirty, BTreeSet::from([1]));
        f.sync();
        f.cut();
        assert_eq!(
            &f.current[PAGE as usize + 4..PAGE as usize + 9],
            &[1, 2, 2, 2, 1]
        );
    }
}
