//! The MSSQL sink's wire path against `pysqlbridge` (PyPI), a real TDS server written
//! independently of tiberius and of us: PRELOGIN, TLS inside TDS, LOGIN7 with a SQL login,
//! SQL batches and `sp_executesql` with parameters, errors with real numbers. It refuses writes
//! except to a connection's `#temp` tables, so the sink writes into a `#temp` table shaped
//! like `outpost.events`, with the exact statements it sends in production.
//!
//! Needs `OUTPOST_PEERS_PYTHON` with pysqlbridge installed (`.ci/run` does it); says SKIPPED
//! otherwise. The real-server suite is `mssql_real.rs` (`OUTPOST_MSSQL_URL`).

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use outpost_hub::mssql::{
    Connection, ErrorClass, Row, SqlError, Table, Target, TdsTarget, Value, Write, tables,
};

/// Writes `rows` into `table` alone, in one transaction.
async fn write(target: &mut TdsTarget, table: &Table, rows: &[Row]) -> Result<(), SqlError> {
    target.write(&[Write { table, rows }]).await
}

const PASSWORD: &str = "s3cret-Pw!";

struct Bridge {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Bridge {
    /// The end of what the server logged (queries in full).
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self._dir.path().join("bridge.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> Option<PathBuf> {
    let python = PathBuf::from(std::env::var_os("OUTPOST_PEERS_PYTHON")?);
    let ok = Command::new(&python)
        .args(["-c", "import pysqlbridge"])
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(python)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn bridge() -> Option<Bridge> {
    let Some(python) = python() else {
        println!(
            "SKIPPED: OUTPOST_PEERS_PYTHON with pysqlbridge is not set up (bash .ci/run does it)"
        );
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("probe.csv"), "id,name\n1,probe\n").unwrap();
    std::fs::write(
        dir.path().join("bridge.json"),
        r#"{"tables":[{"name":"probe","csv":"probe.csv"}],"logins":[{"user":"outpost","password":"${OUTPOST_TEST_SQL_PASSWORD}"}]}"#,
    )
    .unwrap();
    let port = free_port();
    let mut child = Command::new(python)
        .args(["-m", "pysqlbridge.server", "--config"])
        .arg(dir.path().join("bridge.json"))
        .args(["--port", &port.to_string(), "--debug", "--log"])
        .arg(dir.path().join("bridge.log"))
        .env("OUTPOST_TEST_SQL_PASSWORD", PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // It says where it listens once it does (on stderr, as Python's logging does).
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("listening on") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("pysqlbridge listens within 30 s");
    Some(Bridge {
        child,
        port,
        _dir: dir,
    })
}

fn connection(port: u16, password: &str) -> Connection {
    Connection {
        host: "127.0.0.1".into(),
        port,
        database: "master".into(),
        user: "outpost".into(),
        password: password.into(),
        encrypt: true,
        ca_file: None,
        // pysqlbridge's certificate is self-signed, as SQL Server's own is.
        trust_server_certificate: true,
        timeout: Duration::from_secs(10),
    }
}

fn at(text: &str) -> time::PrimitiveDateTime {
    time::PrimitiveDateTime::parse(
        text,
        &time::format_description::well_known::Iso8601::DEFAULT,
    )
    .unwrap()
}

fn row(seq: i64, device: &str, body: &str) -> Vec<Value> {
    vec![
        Value::Text("edge-é-01".into()),
        Value::BigInt(seq),
        Value::Text(device.into()),
        Value::Text("money".into()),
        Value::Text("sas.bill".into()),
        Value::Time(at("2026-11-30T05:59:58.123456")),
        Value::Time(at("2026-11-30T06:00:03.000001")),
        Value::Text(body.into()),
    ]
}

#[tokio::test]
async fn the_sinks_batches_reach_a_real_tds_server_over_tls_once_each_with_every_value_intact() {
    let Some(bridge) = bridge() else { return };
    outpost_process::install_crypto_provider();
    let mut target = TdsTarget::new(&connection(bridge.port, PASSWORD));
    let table = Table::events().named("#events_copy");
    target.batch(&table.create("#events_copy")).await.unwrap();

    let long_body = format!("{{\"note\":\"{}\"}}", "Café ☕ 𝄞 ".repeat(1_500));
    let first = vec![
        row(1, "egm-01", "{\"amount\":\"20.00\"}"),
        row(i64::MAX, "egm-ü", &long_body),
    ];
    write(&mut target, &table, &first).await.unwrap();
    // The same rows again with one new one: only the new one is added.
    let mut again = first.clone();
    again.push(row(2, "egm-02", "{}"));
    write(&mut target, &table, &again).await.unwrap();
    // More rows than one statement may carry parameters for: several staging statements.
    let many: Vec<_> = (1_000..1_600).map(|seq| row(seq, "egm-03", "{}")).collect();
    assert!(many.len() > table.rows_per_statement());
    write(&mut target, &table, &many).await.unwrap();

    let counted = target
        .query_text("SELECT COUNT(*) FROM #events_copy", &[])
        .await
        .unwrap();
    assert_eq!(counted[0][0].as_deref(), Some("603"), "every row once");
    let rows = target
        .query_text(
            "SELECT edge, seq, device, class, type, happened_at, received_at, body \
             FROM #events_copy WHERE seq IN (@P1, @P2) ORDER BY seq",
            &[&1i64, &i64::MAX],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][0].as_deref(), Some("edge-é-01"));
    assert_eq!(rows[0][1].as_deref(), Some("1"));
    assert_eq!(rows[0][7].as_deref(), Some("{\"amount\":\"20.00\"}"));
    assert_eq!(rows[1][1].as_deref(), Some(i64::MAX.to_string().as_str()));
    assert_eq!(rows[1][2].as_deref(), Some("egm-ü"));
    assert_eq!(
        rows[1][7].as_deref(),
        Some(long_body.as_str()),
        "NVARCHAR(MAX) beyond 4,000 characters, astral planes included"
    );
    println!("row as the server returns it: {:?}", &rows[0][..7]);
    // pysqlbridge answers a DATETIME2 column as DATETIME (1/300 s): the value arrived, to
    // DATETIME's precision. That microseconds are sent is `target::tests`' to show.
    assert!(
        rows[0][5]
            .as_deref()
            .is_some_and(|t| t.starts_with("2026-11-30 5:59:58.12")),
        "happened_at arrives: {:?}",
        rows[0][5]
    );
    assert!(
        rows[0][6]
            .as_deref()
            .is_some_and(|t| t.starts_with("2026-11-30 6:00:03.0")),
        "received_at arrives: {:?}",
        rows[0][6]
    );
}

fn day(device: &str, day: &str, coin_in: i64) -> Row {
    let mut row = vec![
        Value::Text("edge-01".into()),
        Value::Text(device.into()),
        Value::Text(day.into()),
        Value::Text("site-é".into()),
        Value::Text("USD".into()),
        Value::BigInt(100),
        Value::BigInt(1),
        Value::BigInt(coin_in),
    ];
    row.extend((0..10).map(Value::BigInt));
    row
}

#[tokio::test]
async fn a_corrected_row_is_updated_over_tds_and_the_version_it_replaced_goes_to_the_trail() {
    let Some(bridge) = bridge() else { return };
    outpost_process::install_crypto_provider();
    let mut target = TdsTarget::new(&connection(bridge.port, PASSWORD));
    let table = tables::machine_days().named("#days");
    target.batch(&table.create("#days")).await.unwrap();
    target.batch(&table.create_trail().unwrap()).await.unwrap();
    let first = vec![
        day("egm-01", "2026-11-30", 1_000),
        day("egm-02", "2026-11-30", 5),
    ];
    write(&mut target, &table, &first).await.unwrap();
    // Written again (a replay) and then with one day corrected, in one batch each.
    write(&mut target, &table, &first).await.unwrap();
    let corrected = vec![
        day("egm-01", "2026-11-30", 1_250),
        day("egm-02", "2026-11-30", 5),
    ];
    write(&mut target, &table, &corrected).await.unwrap();
    let rows = target
        .query_text(
            "SELECT device, gaming_day, coin_in_minor, site FROM #days ORDER BY device",
            &[],
        )
        .await
        .unwrap();
    println!(
        "days: {rows:?}\nthe server's log ends:\n{}",
        bridge.log_tail()
    );
    assert_eq!(rows.len(), 2, "one row per machine and day");
    assert_eq!(
        rows[0][2].as_deref(),
        Some("1250"),
        "the correction is in place"
    );
    assert!(
        rows[0][1]
            .as_deref()
            .is_some_and(|d| d.starts_with("2026-11-30"))
    );
    assert_eq!(rows[0][3].as_deref(), Some("site-é"));
    let trail = target
        .query_text("SELECT device, coin_in_minor FROM #days_trail", &[])
        .await
        .unwrap();
    assert_eq!(
        trail,
        vec![vec![Some("egm-01".to_owned()), Some("1000".to_owned())]],
        "only the corrected version, once: the replay changed nothing"
    );
}

#[tokio::test]
async fn one_batch_writes_several_tables_in_one_transaction() {
    let Some(bridge) = bridge() else { return };
    outpost_process::install_crypto_provider();
    let mut target = TdsTarget::new(&connection(bridge.port, PASSWORD));
    let days = tables::machine_days().named("#days2");
    let events = Table::events().named("#events2");
    target.batch(&days.create("#days2")).await.unwrap();
    target.batch(&days.create_trail().unwrap()).await.unwrap();
    target.batch(&events.create("#events2")).await.unwrap();
    for round in 0..3i64 {
        let day_rows = vec![day("egm-01", "2026-11-30", 100 + round)];
        let event_rows = vec![row(round + 1, "egm-01", "{}")];
        target
            .write(&[
                Write {
                    table: &days,
                    rows: &day_rows,
                },
                Write {
                    table: &events,
                    rows: &event_rows,
                },
            ])
            .await
            .unwrap();
    }
    let counts = target
        .query_text(
            "SELECT (SELECT COUNT(*) FROM #days2), (SELECT COUNT(*) FROM #days2_trail), \
             (SELECT COUNT(*) FROM #events2)",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        counts,
        vec![vec![
            Some("1".to_owned()),
            Some("2".to_owned()),
            Some("3".to_owned())
        ]]
    );
}

#[tokio::test]
async fn a_null_reaches_a_nullable_column_over_tds_and_an_update_fills_it() {
    let Some(bridge) = bridge() else { return };
    outpost_process::install_crypto_provider();
    let mut target = TdsTarget::new(&connection(bridge.port, PASSWORD));
    let table = tables::handpays().named("#handpays");
    target.batch(&table.create("#handpays")).await.unwrap();
    let handpay = |reset: Option<(i64, &str)>| -> Row {
        vec![
            Value::Text("edge-01".into()),
            Value::Text("egm-01".into()),
            Value::BigInt(7),
            Value::Text(if reset.is_some() { "reset" } else { "pending" }.into()),
            Value::BigInt(120_000),
            Value::Text("USD".into()),
            Value::BigInt(120_000),
            Value::Time(at("2026-11-30T05:59:58.000000")),
            reset.map_or(Value::Null, |(_, t)| Value::Time(at(t))),
            reset.map_or(Value::Null, |(seq, _)| Value::BigInt(seq)),
        ]
    };
    write(&mut target, &table, &[handpay(None)]).await.unwrap();
    let pending = target
        .query_text("SELECT state, reset_at, reset_seq FROM #handpays", &[])
        .await
        .unwrap();
    assert_eq!(pending, vec![vec![Some("pending".to_owned()), None, None]]);
    write(
        &mut target,
        &table,
        &[handpay(Some((9, "2026-11-30T06:10:00.000000")))],
    )
    .await
    .unwrap();
    let reset = target
        .query_text("SELECT state, reset_seq FROM #handpays", &[])
        .await
        .unwrap();
    assert_eq!(
        reset,
        vec![vec![Some("reset".to_owned()), Some("9".to_owned())]]
    );
}

#[tokio::test]
async fn a_wrong_password_is_a_blocking_login_failure_that_names_its_number() {
    let Some(bridge) = bridge() else { return };
    outpost_process::install_crypto_provider();
    let mut target = TdsTarget::new(&connection(bridge.port, "not-the-password"));
    let err = write(
        &mut target,
        &Table::events().named("#t"),
        &[row(1, "egm-01", "{}")],
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, SqlError::Server { number: 18456, .. }),
        "{err}"
    );
    assert_eq!(err.class(), ErrorClass::Blocking);
}

#[tokio::test]
async fn a_table_the_server_refuses_is_a_blocking_error_with_the_servers_number() {
    let Some(bridge) = bridge() else { return };
    outpost_process::install_crypto_provider();
    let mut target = TdsTarget::new(&connection(bridge.port, PASSWORD));
    // outpost.events is not there (pysqlbridge has no such table and writes nothing else).
    let err = write(&mut target, &Table::events(), &[row(1, "egm-01", "{}")])
        .await
        .unwrap_err();
    println!(
        "refused: {err}\nthe server's log ends:\n{}",
        bridge.log_tail()
    );
    assert!(
        err.number().is_some(),
        "a server error with its number: {err}"
    );
    assert_eq!(err.class(), ErrorClass::Blocking);
    // The connection is usable again for the next batch (a new one is made).
    target.batch("SELECT 1").await.unwrap();
}

#[tokio::test]
async fn a_server_that_is_not_listening_is_retried() {
    outpost_process::install_crypto_provider();
    let mut target = TdsTarget::new(&connection(free_port(), PASSWORD));
    let err = write(&mut target, &Table::events(), &[row(1, "egm-01", "{}")])
        .await
        .unwrap_err();
    assert!(matches!(err, SqlError::Connect { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Retry);
}

#[test]
fn mssql_check_says_the_server_answers_the_login_works_and_the_schema_is_missing() {
    let Some(bridge) = bridge() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hub.toml");
    std::fs::write(
        &config,
        format!(
            "[mssql]\nenabled = true\nhost = \"127.0.0.1\"\nport = {}\ndatabase = \"master\"\nuser = \"outpost\"\ntrust_server_certificate = true\n",
            bridge.port
        ),
    )
    .unwrap();
    let check = |password: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_outpost-hub"))
            .args(["mssql", "check", "--config"])
            .arg(&config)
            .env("OUTPOST_MSSQL__PASSWORD", password)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, said) = check(PASSWORD);
    assert!(!ok, "a schema at version 0 is not current");
    let known = outpost_hub::mssql::sql::migrations().len();
    assert!(
        said.contains(&format!(
            "reachable, login works, schema at version 0 of {known}: run `outpost-hub mssql migrate`"
        )),
        "{said}"
    );
    assert!(!said.contains(PASSWORD), "the password is never printed");
    let (ok, said) = check("wrong");
    assert!(!ok);
    assert!(
        said.contains("login failed: SQL Server error 18456"),
        "{said}"
    );
}
