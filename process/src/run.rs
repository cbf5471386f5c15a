//! Start-up chores every binary and test does once, in one place.

/// Installs the process's one rustls `CryptoProvider` (ring). Several crates in the graph can
/// bring their own provider; rustls panics at first use when it cannot tell which one to use,
/// so every binary and every test that touches TLS calls this first. Idempotent.
pub fn install_crypto_provider() {
    // Err means a provider is already installed: ours, by an earlier call.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Resolves on Ctrl-C or SIGTERM, whichever comes first.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received, shutting down"),
        () = term => tracing::info!("SIGTERM received, shutting down"),
    }
}

/// Everything a binary does before its first actor: one crypto provider, logging, process metrics.
/// `format_override` is the `--log-format` flag, which wins over the config file.
pub fn init(
    binary: &str,
    log: &outpost_config::LogConfig,
    format_override: Option<outpost_config::LogFormat>,
) {
    install_crypto_provider();
    let style = match format_override.unwrap_or(log.format) {
        outpost_config::LogFormat::Human => crate::telemetry::LogStyle::Human,
        outpost_config::LogFormat::Json => crate::telemetry::LogStyle::Json,
    };
    crate::telemetry::init_logging(log.level.as_str(), style);
    crate::metrics::register_process_metrics(binary);
}

/// The restart policy a `[supervision]` section describes.
pub fn restart_policy(config: &outpost_config::SupervisionConfig) -> outpost_actors::RestartPolicy {
    use std::time::Duration;
    outpost_actors::RestartPolicy {
        backoff: outpost_actors::Backoff {
            initial: Duration::from_millis(config.backoff_initial_ms),
            max: Duration::from_millis(config.backoff_max_ms),
            multiplier: 2.0,
            jitter: config.jitter,
        },
        intensity: outpost_actors::Intensity {
            max_restarts: config.max_restarts,
            within: Duration::from_secs(config.within_seconds),
        },
        stable_after: Duration::from_secs(config.stable_after_seconds),
        shutdown_timeout: Duration::from_millis(config.shutdown_timeout_ms),
    }
}

/// Why a process's root supervisor ended.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("root supervisor {name} could not start: {reason}")]
    StartFailed { name: String, reason: String },
    #[error(
        "root supervisor {name} ended on its own (a child exceeded its restart limit; see the log line before this one)"
    )]
    Ended { name: String },
}

/// Runs `spec` as the process's root supervisor until `shutdown` resolves (then stops the tree
/// cleanly, youngest first) or until the root itself ends, which is an error: the process should
/// exit non-zero and let systemd restart it.
pub async fn run_root(
    spec: outpost_actors::SupervisorSpec,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), RootError> {
    let name = spec.name.clone();
    tokio::pin!(shutdown);
    // Starting can wait (a store that does not open yet): a shutdown then ends the wait.
    let started = tokio::select! {
        started = ractor::Actor::spawn(None, outpost_actors::Supervisor, spec) => started,
        () = &mut shutdown => {
            tracing::info!(supervisor = %name, "stopped while starting");
            return Ok(());
        }
    };
    let (root, handle) = started.map_err(|e| RootError::StartFailed {
        name: name.clone(),
        reason: e.to_string(),
    })?;
    crate::systemd::set_root(Some(root.clone()));
    crate::systemd::ready(&format!("running ({name})"));
    tokio::pin!(handle);
    let outcome = tokio::select! {
        () = &mut shutdown => {
            // Stopping takes up to 30 s; the tree is busy then, not wedged.
            crate::systemd::set_root(None);
            crate::systemd::stopping();
            let timeout = Some(std::time::Duration::from_secs(30));
            if root.stop_and_wait(Some("shutdown".into()), timeout).await.is_err() {
                tracing::warn!(supervisor = %name, "shutdown took over 30 s; killing");
                root.kill();
            }
            tracing::info!(supervisor = %name, "stopped");
            Ok(())
        }
        _ = &mut handle => Err(RootError::Ended { name }),
    };
    crate::systemd::set_root(None);
    outcome
}

/// The `run` subcommand of every binary: load the config (problems → exit 2), initialise the
/// process, run `serve` on a multi-threaded runtime until Ctrl-C/SIGTERM, and map the outcome to
/// an exit code (1 when the process ended on its own).
pub fn run_main<C, F, Fut, E>(
    binary: &str,
    config_path: &std::path::Path,
    format_override: Option<outpost_config::LogFormat>,
    log_of: fn(&C) -> &outpost_config::LogConfig,
    serve: F,
) -> std::process::ExitCode
where
    C: outpost_config::ConfigFile,
    F: FnOnce(C, std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    use std::process::ExitCode;
    crate::allocator::tune();
    crate::allocator::trim_every(std::time::Duration::from_secs(2));
    let config: C =
        match outpost_config::load_file(config_path, &outpost_config::ProcessEnvironment) {
            Ok(c) => c,
            Err(err) => {
                eprintln!("{err}");
                return ExitCode::from(2);
            }
        };
    init(binary, log_of(&config), format_override);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.spawn(crate::systemd::watchdog());
    match runtime.block_on(serve(config, Box::pin(shutdown_signal()))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(%err, "{binary} stopped");
            ExitCode::FAILURE
        }
    }
}
