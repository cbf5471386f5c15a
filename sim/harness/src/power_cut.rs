//! A power cut for tests: a data directory on a loop-mounted ext4 file system whose "crash image"
//! holds only what the kernel had sent to the disk when the power went.
//!
//! How: the kernel's periodic writeback is switched off while a [`CutDisk`] exists
//! (`vm.dirty_writeback_centisecs = 0`, a long `vm.dirty_expire_centisecs`), so a page reaches the
//! loop device's backing file only when a program makes it durable (`fsync`, `fdatasync`,
//! `sync_file_range`) or the journal commits it. [`CutDisk::cut`] copies the backing file while
//! the program using the disk is stopped (`SIGSTOP`), kills the program, and mounts the copy in
//! place of the disk: the next program started on the mount point sees what a board would see
//! after its power came back. A control program that acknowledges after `write()` loses its
//! acknowledged records this way; one that acknowledges after `fdatasync` loses none.
//!
//! [`SmallDisk`] is the other fault disk: a size-limited tmpfs, for disk-full tests.
//!
//! Invariants: the kernel settings are restored when the last `CutDisk` of the process is
//! dropped, and only one `CutDisk` runs on the machine at a time (a lock file), so two tests can
//! never leave the settings changed. Needs root (`mount`, `/proc/sys/vm`).

use std::path::{Path, PathBuf};
use std::process::Command;

use nix::fcntl::{Flock, FlockArg};

/// Why the disk could not be set up or cut.
#[derive(Debug, thiserror::Error)]
pub enum PowerCutError {
    #[error("power-cut tests need root (mount, /proc/sys/vm); running as uid {0}")]
    NotRoot(u32),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Command(#[from] CommandFailed),
    #[error("cannot take the power-cut lock {path}: {source}")]
    Lock { path: PathBuf, source: nix::Error },
    #[error("process {pid} did not stop within 10 s of SIGSTOP (a thread still in the kernel)")]
    DidNotStop { pid: u32 },
    #[error("{image} kept changing while it was copied ({attempts} attempts)")]
    NeverQuiet { image: PathBuf, attempts: u32 },
}

/// How long the disk's backing file must be unchanged before a copy starts.
const QUIET: std::time::Duration = std::time::Duration::from_millis(30);

/// Copies tried before a cut gives up on a disk that keeps changing.
const COPY_ATTEMPTS: u32 = 20;

/// Waits until every thread of `pid` is stopped (state `T` or `t` in `/proc/<pid>/task/*/stat`)
/// or gone; returns whether a thread was still running at the first look.
fn wait_until_stopped(pid: u32) -> Result<bool, PowerCutError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut waited = false;
    loop {
        let tasks = Path::new("/proc").join(pid.to_string()).join("task");
        let Ok(entries) = std::fs::read_dir(&tasks) else {
            return Ok(waited); // gone
        };
        let running = entries.flatten().any(|task| {
            std::fs::read_to_string(task.path().join("stat"))
                .ok()
                .and_then(|stat| {
                    // The state follows the command name, which is in parentheses.
                    let after = stat.rsplit_once(')')?.1;
                    after.split_whitespace().next().map(str::to_owned)
                })
                .is_some_and(|state| state != "T" && state != "t" && state != "Z" && state != "X")
        });
        if !running {
            return Ok(waited);
        }
        waited = true;
        if std::time::Instant::now() > deadline {
            return Err(PowerCutError::DidNotStop { pid });
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PowerCutError + '_ {
    move |source| PowerCutError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A command that could not be run or did not succeed, with what it printed.
#[derive(Debug, thiserror::Error)]
#[error("`{command}` failed: {output}")]
pub struct CommandFailed {
    pub command: String,
    pub output: String,
}

/// Runs `program args...` to its end; anything but success is a [`CommandFailed`].
pub fn run_command(program: &str, args: &[&str]) -> Result<(), CommandFailed> {
    let command = format!("{program} {}", args.join(" "));
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| CommandFailed {
            command: command.clone(),
            output: e.to_string(),
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(CommandFailed {
            command,
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        })
    }
}

fn run(program: &str, args: &[&str]) -> Result<(), PowerCutError> {
    Ok(run_command(program, args)?)
}

const WRITEBACK: &str = "/proc/sys/vm/dirty_writeback_centisecs";
const EXPIRE: &str = "/proc/sys/vm/dirty_expire_centisecs";

/// The kernel's writeback switched off until dropped; holds the machine-wide lock.
struct WritebackOff {
    saved: Vec<(&'static str, String)>,
    _lock: Flock<std::fs::File>,
}

impl WritebackOff {
    fn new() -> Result<Self, PowerCutError> {
        let lock_path = Path::new("/tmp/outpost-power-cut.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(lock_path)
            .map_err(io(lock_path))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, source)| {
            PowerCutError::Lock {
                path: lock_path.to_owned(),
                source,
            }
        })?;
        let mut saved = Vec::new();
        for (path, value) in [(WRITEBACK, "0"), (EXPIRE, "8640000")] {
            let before = std::fs::read_to_string(path).map_err(io(Path::new(path)))?;
            std::fs::write(path, value).map_err(io(Path::new(path)))?;
            saved.push((path, before.trim().to_owned()));
        }
        Ok(Self { saved, _lock: lock })
    }
}

impl Drop for WritebackOff {
    fn drop(&mut self) {
        for (path, value) in &self.saved {
            if let Err(e) = std::fs::write(path, value) {
                eprintln!("cannot restore {path} to {value}: {e}");
            }
        }
    }
}

/// A directory on a disk whose power can be cut.
pub struct CutDisk {
    mount: PathBuf,
    image: PathBuf,
    mounted: bool,
    cuts: u32,
    retaken: u32,
    stops_awaited: u32,
    _writeback: WritebackOff,
}

impl std::fmt::Debug for CutDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CutDisk")
            .field("mount", &self.mount)
            .field("cuts", &self.cuts)
            .finish()
    }
}

impl CutDisk {
    /// Whether this process may cut power (it runs as root).
    pub fn check_privileges() -> Result<(), PowerCutError> {
        let uid = nix::unistd::geteuid().as_raw();
        if uid == 0 {
            Ok(())
        } else {
            Err(PowerCutError::NotRoot(uid))
        }
    }

    /// Makes an ext4 file system of `size_mib` in `image` (sparse) and mounts it on `mount`
    /// (created if missing) with the default `data=ordered`.
    pub fn create(image: &Path, mount: &Path, size_mib: u64) -> Result<Self, PowerCutError> {
        Self::check_privileges()?;
        let writeback = WritebackOff::new()?;
        let file = std::fs::File::create(image).map_err(io(image))?;
        file.set_len(size_mib * 1024 * 1024).map_err(io(image))?;
        drop(file);
        let image_arg = image.to_string_lossy().into_owned();
        run("mkfs.ext4", &["-q", "-F", &image_arg])?;
        std::fs::create_dir_all(mount).map_err(io(mount))?;
        let mut disk = Self {
            mount: mount.to_owned(),
            image: image.to_owned(),
            mounted: false,
            cuts: 0,
            retaken: 0,
            stops_awaited: 0,
            _writeback: writeback,
        };
        disk.mount()?;
        Ok(disk)
    }

    fn mount(&mut self) -> Result<(), PowerCutError> {
        let image = self.image.to_string_lossy().into_owned();
        let mount = self.mount.to_string_lossy().into_owned();
        run("mount", &["-o", "loop,data=ordered", &image, &mount])?;
        self.mounted = true;
        Ok(())
    }

    fn unmount(&mut self) -> Result<(), PowerCutError> {
        if self.mounted {
            let mount = self.mount.to_string_lossy().into_owned();
            run("umount", &[&mount])?;
            self.mounted = false;
        }
        Ok(())
    }

    pub fn mount_point(&self) -> &Path {
        &self.mount
    }

    /// Cuts of this disk so far.
    pub fn cuts(&self) -> u32 {
        self.cuts
    }

    /// Cuts whose process still had a thread running (in the kernel) right after `SIGSTOP`: the
    /// copy waited for it.
    pub fn stops_awaited(&self) -> u32 {
        self.stops_awaited
    }

    /// Copies taken again because the disk changed while it was being copied.
    pub fn copies_retaken(&self) -> u32 {
        self.retaken
    }

    /// Cuts the power of process `pid`, which uses this disk: stops it (`SIGSTOP`) and copies
    /// what the disk holds now. The process stays stopped: kill it, then [`Self::power_on`].
    ///
    /// The copy is one moment of the disk, never a mix of two: `SIGSTOP` only asks, and a thread
    /// inside `fdatasync` finishes its I/O before it stops, so the copy starts once every thread
    /// is stopped; and since the kernel may still write (a journal commit), a copy during which
    /// the backing file changed is taken again. A torn copy would be a state no real disk can be
    /// in (a write that a finished `fdatasync` ordered after another, without the other), and a
    /// store would be blamed for it.
    pub fn cut(&mut self, pid: u32) -> Result<(), PowerCutError> {
        use nix::sys::signal::{Signal, kill};
        kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGSTOP).map_err(|e| {
            CommandFailed {
                command: format!("kill -STOP {pid}"),
                output: e.to_string(),
            }
        })?;
        if wait_until_stopped(pid)? {
            self.stops_awaited += 1;
        }
        let from = self.image.to_string_lossy().into_owned();
        let to = self.crash_image().to_string_lossy().into_owned();
        for _ in 0..COPY_ATTEMPTS {
            let before = self.wait_until_quiet()?;
            run("cp", &["--sparse=always", &from, &to])?;
            if self.last_change()? == before {
                self.cuts += 1;
                return Ok(());
            }
            self.retaken += 1;
        }
        Err(PowerCutError::NeverQuiet {
            image: self.image.clone(),
            attempts: COPY_ATTEMPTS,
        })
    }

    /// When the backing file last changed (its modification and change times).
    fn last_change(&self) -> Result<(std::time::SystemTime, i64, i64), PowerCutError> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(&self.image).map_err(io(&self.image))?;
        let modified = meta.modified().map_err(io(&self.image))?;
        Ok((modified, meta.ctime(), meta.ctime_nsec()))
    }

    /// Waits until the backing file has not changed for [`QUIET`], so that a write during the
    /// copy gets a newer time stamp than the one read here (the kernel's clock for file times
    /// moves in ticks of a few milliseconds). Returns that time stamp.
    fn wait_until_quiet(&self) -> Result<(std::time::SystemTime, i64, i64), PowerCutError> {
        loop {
            let stamp = self.last_change()?;
            let age = std::time::SystemTime::now()
                .duration_since(stamp.0)
                .unwrap_or_default();
            if age >= QUIET {
                return Ok(stamp);
            }
            std::thread::sleep(QUIET - age);
        }
    }

    fn crash_image(&self) -> PathBuf {
        self.image.with_extension("crash")
    }

    /// After [`Self::cut`] and once the process that used the disk is gone: mounts the crash image
    /// in place of the disk.
    pub fn power_on(&mut self) -> Result<(), PowerCutError> {
        self.unmount_retrying()?;
        std::fs::rename(self.crash_image(), &self.image).map_err(io(&self.image))?;
        self.mount()
    }

    fn unmount_retrying(&mut self) -> Result<(), PowerCutError> {
        let mut last = None;
        for _ in 0..100 {
            match self.unmount() {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Err(last.unwrap_or(PowerCutError::Command(CommandFailed {
            command: "umount".into(),
            output: "gave up".into(),
        })))
    }
}

impl Drop for CutDisk {
    fn drop(&mut self) {
        if let Err(e) = self.unmount_retrying() {
            eprintln!("cannot unmount {}: {e}", self.mount.display());
        }
    }
}

/// A small disk: a size-limited tmpfs mounted on a directory until dropped, for disk-full tests.
#[derive(Debug)]
pub struct SmallDisk {
    mount: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size_mib` on `mount` (created if missing). Needs root.
    pub fn mount(mount: &Path, size_mib: u64) -> Result<Self, PowerCutError> {
        CutDisk::check_privileges()?;
        std::fs::create_dir_all(mount).map_err(io(mount))?;
        let target = mount.to_string_lossy().into_owned();
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size_mib}m"),
                "tmpfs",
                &target,
            ],
        )?;
        Ok(Self {
            mount: mount.to_owned(),
        })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let target = self.mount.to_string_lossy().into_owned();
        if let Err(e) = run("umount", &["-l", &target]) {
            eprintln!("cannot unmount {target}: {e}");
        }
    }
}
