//! Durable stores seen from the process: one that does not open, and one that grew pages outside
//! sled's log.
//!
//! A store that does not open is never a crash loop. The process stays up and says so: the gauge
//! `outpost_storage_open_failed{store}` is 1, the readiness component `storage/<store>` is down (so
//! `/readyz` answers 503 naming it), one error line per distinct reason names the path and what to
//! do, and the open is tried again with a doubling pause (1 s to 60 s) in case the cause passes
//! (a full disk, a device that comes back). The store's files are never touched: they stay for
//! salvage until an operator moves them aside (`outpost-edge store set-aside`). Whatever depends on
//! the store waits for it, so an edge keeps its devices unacknowledged rather than lose events.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{IntGaugeVec, Opts};

use outpost_actors::Readiness;
use outpost_actors::metrics::register;

/// `outpost_storage_open_failed{store}`: 1 while the store does not open.
pub static OPEN_FAILED: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(
            Opts::new(
                "outpost_storage_open_failed",
                "Whether a durable store fails to open (1) and the process waits for it.",
            ),
            &["store"],
        )
        .expect("static metric definition is valid"),
    )
});

/// `outpost_storage_blob_files{store}`: page images sled wrote outside its log. Always 0 while
/// the store's entry limits hold; anything else is a page a power cut could leave empty.
pub static BLOB_FILES: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(
        IntGaugeVec::new(
            Opts::new(
                "outpost_storage_blob_files",
                "Files in a store's sled blobs/ directory (pages outside the log; should be 0).",
            ),
            &["store"],
        )
        .expect("static metric definition is valid"),
    )
});

/// Exports both gauges of `store` at 0, so they exist from start-up.
pub fn register_store(store: &str) {
    OPEN_FAILED.with_label_values(&[store]).set(0);
    BLOB_FILES.with_label_values(&[store]).set(0);
}

/// Counts the blob files of the sled database in `path`, sets `outpost_storage_blob_files{store}`
/// and logs an error when they appear. Owners call it about once a second.
pub fn report_blob_files(store: &str, path: &Path) {
    let count = outpost_storage::blob_files(path);
    let gauge = BLOB_FILES.with_label_values(&[store]);
    if count > 0 && gauge.get() == 0 {
        tracing::error!(
            store,
            path = %path.join("blobs").display(),
            count,
            "sled wrote pages outside its log; a power cut could make this store unopenable \
             (see docs/operations.md, \"Storage and power cuts\")"
        );
    }
    gauge.set(count as i64);
}

/// Runs `open` (blocking, on tokio's blocking pool) until it succeeds; meanwhile the process
/// reports the store as failed (see the module docs). `what_to_do` ends the log line. The pause
/// between attempts doubles from 1 s to 60 s, except after errors `soon` picks (a full disk, which
/// frees up without anyone touching the store): then the next attempt comes within a second.
pub async fn open_until_it_opens<T, E, F>(
    store: &'static str,
    path: PathBuf,
    readiness: Option<Readiness>,
    what_to_do: &str,
    soon: fn(&E) -> bool,
    open: F,
) -> T
where
    T: Send + 'static,
    E: Display + Send + 'static,
    F: Fn() -> Result<T, E> + Send + Sync + 'static,
{
    let open = std::sync::Arc::new(open);
    let component = format!("storage/{store}");
    let mut pause = Duration::from_secs(1);
    let mut last_reason: Option<String> = None;
    let mut attempts = 0u32;
    loop {
        let attempt = open.clone();
        let result = tokio::task::spawn_blocking(move || attempt())
            .await
            .map_err(|e| format!("the open was cancelled: {e}"));
        attempts += 1;
        match result {
            Ok(Ok(opened)) => {
                OPEN_FAILED.with_label_values(&[store]).set(0);
                if let Some(readiness) = &readiness {
                    readiness.remove(&component);
                }
                if attempts > 1 {
                    crate::systemd::status(&format!("store {store} opened"));
                    tracing::info!(store, path = %path.display(), attempts, "store opened");
                }
                return opened;
            }
            Ok(Err(err)) => {
                if soon(&err) {
                    pause = Duration::from_millis(500);
                }
                log_failure(store, &path, &err.to_string(), what_to_do, &mut last_reason)
            }
            Err(err) => log_failure(store, &path, &err, what_to_do, &mut last_reason),
        }
        OPEN_FAILED.with_label_values(&[store]).set(1);
        if attempts == 1 {
            // Up and saying why at /readyz is not a failed start: systemd must not restart us.
            crate::systemd::ready(&format!(
                "waiting for store {store} to open ({}); see /readyz",
                path.display()
            ));
        }
        if let Some(readiness) = &readiness {
            readiness.set(&component, false);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).clamp(Duration::from_secs(1), Duration::from_secs(60));
    }
}

fn log_failure(
    store: &str,
    path: &Path,
    reason: &str,
    what_to_do: &str,
    last_reason: &mut Option<String>,
) {
    if last_reason.as_deref() == Some(reason) {
        tracing::debug!(store, path = %path.display(), %reason, "store still does not open");
        return;
    }
    tracing::error!(
        store,
        path = %path.display(),
        %reason,
        "store does not open; waiting for it and trying again (its files are left as they are). {what_to_do}"
    );
    *last_reason = Some(reason.to_owned());
}

/// `outpost-edge store …` / `outpost-hub store …`: what an operator does with a store.
#[derive(Debug, clap::Subcommand)]
pub enum StoreCommand {
    /// Move a store that does not open aside (to `<dir>.broken-<unix time>`, deleting nothing), so
    /// that the process starts an empty one. What the old store held is not delivered.
    SetAside {
        /// The process's configuration file (its data_dir names the store).
        #[arg(long)]
        config: PathBuf,
    },
}

impl StoreCommand {
    /// Runs the command for config kind `T`, whose store is `subdir` of its data directory.
    pub fn execute<T: outpost_config::ConfigFile>(
        &self,
        env: &dyn outpost_config::Environment,
        subdir: &str,
    ) -> std::process::ExitCode {
        let StoreCommand::SetAside { config } = self;
        let loaded = match outpost_config::load_file::<T>(config, env) {
            Ok(loaded) => loaded,
            Err(err) => {
                eprintln!("{err}");
                return std::process::ExitCode::from(2);
            }
        };
        let Some(data_dir) = loaded.data_dir() else {
            eprintln!("a {} keeps no store", T::KIND);
            return std::process::ExitCode::from(2);
        };
        let store = data_dir.join(subdir);
        if !store.exists() {
            eprintln!("{} does not exist: nothing to set aside", store.display());
            return std::process::ExitCode::FAILURE;
        }
        match outpost_storage::set_aside(&store) {
            Ok(aside) => {
                println!(
                    "moved {} to {}; the {} starts an empty store there (a waiting process within a \
                     minute)",
                    store.display(),
                    aside.display(),
                    T::KIND
                );
                std::process::ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: {err}");
                std::process::ExitCode::FAILURE
            }
        }
    }
}
