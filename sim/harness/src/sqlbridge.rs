//! `pysqlbridge` (PyPI), an independent TDS server, started for a benchmark: a SQL login with
//! the given password, TLS with its own self-signed certificate, and only `#temp` tables to
//! write into (what the MSSQL sink's wire path can be measured against without SQL Server).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running pysqlbridge; stopped when dropped.
pub struct SqlBridge {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

impl Drop for SqlBridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Why the bridge did not start.
#[derive(Debug, thiserror::Error)]
pub enum SqlBridgeError {
    #[error(
        "{python}: pysqlbridge is not installed there (`bash .ci/run` installs the peers' venv)"
    )]
    NotInstalled { python: String },
    #[error("pysqlbridge: {0}")]
    Io(#[from] std::io::Error),
    #[error("pysqlbridge did not say it listens within 30 s")]
    NotListening,
}

impl SqlBridge {
    /// Starts pysqlbridge under `python` with login `user`/`password`, its files in `dir`.
    pub fn start(
        python: &Path,
        dir: &Path,
        user: &str,
        password: &str,
    ) -> Result<Self, SqlBridgeError> {
        let installed = Command::new(python)
            .args(["-c", "import pysqlbridge"])
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            return Err(SqlBridgeError::NotInstalled {
                python: python.display().to_string(),
            });
        }
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("probe.csv"), "id,name\n1,probe\n")?;
        let config = serde_json::json!({
            "tables": [{ "name": "probe", "csv": "probe.csv" }],
            "logins": [{ "user": user, "password": "${OUTPOST_BRIDGE_PASSWORD}" }],
        });
        std::fs::write(dir.join("bridge.json"), config.to_string())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut child = Command::new(python)
            .args(["-m", "pysqlbridge.server", "--config"])
            .arg(dir.join("bridge.json"))
            .args(["--port", &port.to_string(), "--log"])
            .arg(dir.join("bridge.log"))
            .env("OUTPOST_BRIDGE_PASSWORD", password)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let Some(stderr) = stderr else { return };
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listening on") {
                    let _ = tx.send(());
                }
            }
        });
        let bridge = Self {
            child,
            port,
            dir: dir.to_owned(),
        };
        rx.recv_timeout(Duration::from_secs(30))
            .map_err(|_| SqlBridgeError::NotListening)?;
        Ok(bridge)
    }

    /// The server's process id (for its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}
