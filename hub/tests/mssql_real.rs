//! Against a real SQL Server, when `OUTPOST_MSSQL_URL` is set
//! (`mssql://user:password@host:port/database`, add `?trust_server_certificate=true` for a
//! server with its own self-signed certificate): the migrations apply (and apply nothing the
//! second time), `check` finds the schema current, and a 16-machine site's events written by the
//! sink — stopped half-way and opened again from its cursor, one batch sent twice — are in
//! `outpost.events` once each; and the same site's day of meter readings reaches
//! `outpost.meter_hours`, `outpost.machine_days` and `outpost.reconciliations` once, a rebuild of
//! the projection written again leaving no trail. Says SKIPPED otherwise: no SQL Server can run on our CI machines.
//! Use a database of its own: the test deletes its edge's rows first.

#![allow(clippy::unwrap_used)] // In tests a panic is a failed test with its message.

use std::sync::Arc;
use std::time::Duration;

use outpost_domain::site::Floor;
use outpost_hub::mssql::{
    self, AccountingRows, Connection, EventsSink, FeedSink, Stream, Table, TdsTarget,
};
use outpost_link::{Event, EventBody, EventClass, MeterReading, SasEvent};

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
    let Some(connection) = skipped() else { return };
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

fn skipped() -> Option<Connection> {
    let Ok(url) = std::env::var("OUTPOST_MSSQL_URL") else {
        println!(
            "SKIPPED: OUTPOST_MSSQL_URL is not set; nothing was checked against a real SQL Server"
        );
        return None;
    };
    outpost_process::install_crypto_provider();
    Some(connection_from_url(&url))
}

#[tokio::test]
async fn a_real_sql_server_takes_a_sites_day_of_hours_once_and_a_rebuild_changes_nothing() {
    let Some(connection) = skipped() else { return };
    let mut target = TdsTarget::new(&connection);
    mssql::migrate(&mut target).await.unwrap();
    let edge = format!("test-acct-{}", std::process::id());
    for table in [
        "outpost.meter_hours",
        "outpost.meter_hours_trail",
        "outpost.machine_days",
        "outpost.machine_days_trail",
        "outpost.reconciliations",
        "outpost.reconciliations_trail",
        "outpost.machine_meters",
    ] {
        target
            .execute(
                &format!("DELETE FROM {table} WHERE edge = @P1"),
                &[&edge.as_str()],
            )
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let durable = Arc::new(outpost_storage::DurableDb::open(dir.path()).unwrap());
    let log = outpost_hub::EventLog::start(durable, 4096, |_| {}).unwrap();
    // 16 machines, a reading every 5 minutes for a day: 24 hours each.
    let mut seq = 0u64;
    let mut events = Vec::new();
    for step in 0..288i64 {
        for machine in 0..16u64 {
            seq += 1;
            events.push(Event {
                seq,
                device: format!("egm-{machine:02}"),
                class: EventClass::Money,
                wall_us: 1_796_032_800_000_000 + step * 300_000_000,
                mono_us: 0,
                boot_id: 1,
                body: EventBody::Sas(SasEvent::Meters {
                    game: 0,
                    meters: vec![MeterReading {
                        code: 0x00,
                        value: step as u64 * 100,
                        bytes: 4,
                    }],
                }),
            });
        }
    }
    for chunk in events.chunks(4_000) {
        log.commit(&edge, chunk.to_vec(), 0).await.unwrap();
    }
    let db = log.durable().db().clone();
    let floor = Floor::simple();
    let project = || {
        let projection = outpost_domain::projection::by_name("accounting", &floor).unwrap();
        let mut runner = outpost_hub::ProjectionRunner::open(&db, projection, None)
            .unwrap()
            .with_feed(true)
            .unwrap();
        while runner.step(&log).unwrap() > 0 {}
    };
    project();
    let mut sink = FeedSink::open(
        TdsTarget::new(&connection),
        AccountingRows::new(floor.clone()),
        db.clone(),
        500,
    )
    .unwrap();
    while sink.step().await.unwrap() > 0 {}
    outpost_hub::rebuild_projection(&db, "accounting", &floor).unwrap();
    project();
    while sink.step().await.unwrap() > 0 {}
    let counted = target
        .query_text(
            "SELECT (SELECT COUNT(*) FROM outpost.meter_hours WHERE edge = @P1), \
             (SELECT COUNT(*) FROM outpost.machine_days WHERE edge = @P1), \
             (SELECT COUNT(*) FROM outpost.reconciliations WHERE edge = @P1), \
             (SELECT COUNT(*) FROM outpost.meter_hours_trail WHERE edge = @P1)",
            &[&edge.as_str()],
        )
        .await
        .unwrap();
    println!("hours, days, reconciliations, trail: {:?}", counted[0]);
    assert_eq!(
        counted[0][0],
        Some((16 * 24).to_string()),
        "every machine's hours once"
    );
    assert!(
        counted[0][1]
            .as_deref()
            .is_some_and(|n| n == "16" || n == "32")
    );
    assert_eq!(
        counted[0][1], counted[0][2],
        "a reconciliation per machine day"
    );
    assert_eq!(
        counted[0][3],
        Some("0".into()),
        "the rebuild changed nothing"
    );
}
