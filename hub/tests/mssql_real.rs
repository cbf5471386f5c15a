//! Against a real SQL Server, when `OUTPOST_MSSQL_URL` is set
//! (`mssql://user:password@host:port/database`, add `?trust_server_certificate=true` for a
//! server with its own self-signed certificate): the migrations apply (and apply nothing the
//! second time), `check` finds the schema current, and a 16-machine site's events written by the
//! sink — stopped half-way and opened again from its cursor, one batch sent twice — are in
//! `outpost.events` once each. Says SKIPPED otherwise: no SQL Server can run on our CI machines.
//! Use a database of its own: the test deletes its edge's rows first.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::sync::Arc;
use std::time::Duration;

use outpost_domain::site::Floor;
use outpost_hub::mssql::{self, Connection, EventsSink, Table, TdsTarget};
use outpost_link::{Event, EventBody, EventClass, SasEvent};

fn connection_from_url(url: &str) -> Connection {
    let rest = url
        .strip_prefix("mssql://")
        .expect("mssql://user:password@host:port/db");
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (login, rest) = rest.rsplit_once('@').expect("user:password@");
    let (user, password) = login.split_once(':').expect("user:password");
    let (address, database) = rest.split_once('/').expect("/database");
    let (host, port) = address.rsplit_once(':').unwrap_or((address, "1433"));
    Connection {
        host: host.into(),
        port: port.parse().unwrap(),
        database: database.into(),
        user: user.into(),
        password: password.into(),
        encrypt: true,
        ca_file: None,
        trust_server_certificate: query.contains("trust_server_certificate=true"),
        timeout: Duration::from_secs(30),
    }
}

#[tokio::test]
async fn a_real_sql_server_takes_the_schema_and_every_event_of_a_site_once() {
    let Ok(url) = std::env::var("OUTPOST_MSSQL_URL") else {
        println!(
            "SKIPPED: OUTPOST_MSSQL_URL is not set; nothing was checked against a real SQL Server"
        );
        return;
    };
    outpost_process::install_crypto_provider();
    let connection = connection_from_url(&url);
    let mut target = TdsTarget::new(&connection);
    mssql::migrate(&mut target).await.unwrap();
    assert!(
        mssql::migrate(&mut target).await.unwrap().is_empty(),
        "nothing the second time"
    );
    assert!(mssql::schema_state(&mut target).await.unwrap().current());
    let edge = format!("test-{}", std::process::id());
    target
        .execute(
            "DELETE FROM outpost.events WHERE edge = @P1",
            &[&edge.as_str()],
        )
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let durable = Arc::new(outpost_storage::DurableDb::open(dir.path()).unwrap());
    let log = outpost_hub::EventLog::start(durable, 4096, |_| {}).unwrap();
    let events: Vec<Event> = (1..=16_000u64)
        .map(|seq| Event {
            seq,
            device: format!("egm-{:02}", seq % 16),
            class: EventClass::Money,
            wall_us: 1_764_489_600_000_000 + seq as i64 * 5_000_000,
            mono_us: 0,
            boot_id: 1,
            body: EventBody::Sas(SasEvent::Exception { code: 0x4F }),
        })
        .collect();
    for chunk in events.chunks(4_000) {
        log.commit(&edge, chunk.to_vec(), 0).await.unwrap();
    }
    let floor = Floor::simple();
    let mut first = EventsSink::open(
        TdsTarget::new(&connection),
        Table::events(),
        log.clone(),
        floor.clone(),
        1_000,
    )
    .unwrap();
    for _ in 0..5 {
        first.step().await.unwrap();
    }
    drop(first);
    let mut second = EventsSink::open(
        TdsTarget::new(&connection),
        Table::events(),
        log.clone(),
        floor,
        1_000,
    )
    .unwrap();
    while second.step().await.unwrap() > 0 {}
    let counted = target
        .query_text(
            "SELECT COUNT(*), COUNT(DISTINCT seq), MIN(seq), MAX(seq) FROM outpost.events WHERE edge = @P1",
            &[&edge.as_str()],
        )
        .await
        .unwrap();
    assert_eq!(
        counted[0],
        vec![
            Some("16000".into()),
            Some("16000".into()),
            Some("1".into()),
            Some("16000".into())
        ]
    );
}
