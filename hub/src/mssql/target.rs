//! Where the sink writes: a [`Target`] takes a batch of rows for one or more [`Table`]s and
//! writes it in one transaction, all or nothing, by natural key (see [`super::sql`]). [`TdsTarget`] is SQL Server
//! over TDS (tiberius, rustls); [`MemoryTarget`] is an in-memory table with injectable faults,
//! for testing the sink's logic.
//!
//! Errors name what happened ([`SqlError`]) and each has a class ([`ErrorClass`]): `retry` (the
//! next attempt may succeed: timeouts, deadlocks, lost connections) or `blocking` (it will not
//! until someone acts: login failed, schema missing, database full, a value the table refuses).

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tiberius::{AuthMethod, Client, ColumnData, Config, EncryptionLevel, ToSql};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

use super::sql::{Keyed, Table};

/// One value of a row.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Value {
    BigInt(i64),
    Text(String),
    /// UTC, to the microsecond.
    Time(time::PrimitiveDateTime),
    /// No value (a nullable column: a handpay not reset yet, a reading that corrects none).
    Null,
}

impl ToSql for Value {
    fn to_sql(&self) -> ColumnData<'_> {
        match self {
            Value::BigInt(v) => ColumnData::I64(Some(*v)),
            Value::Text(v) => ColumnData::String(Some(v.as_str().into())),
            // As ISO 8601 text (style 126), which SQL Server converts to DATETIME2 exactly and
            // whatever the session's language and date format: an independent TDS server
            // (pysqlbridge) reads no DATETIME2 parameters, and text keeps the microseconds.
            Value::Time(v) => ColumnData::String(Some(iso8601(*v).into())),
            // A typed NULL converts to any column type.
            Value::Null => ColumnData::String(None),
        }
    }
}

/// `2026-11-30T05:59:58.123456`.
pub fn iso8601(at: time::PrimitiveDateTime) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]"
    );
    at.format(&format).unwrap_or_else(|_| at.to_string())
}

/// A row: one value per column of its table, in order.
pub type Row = Vec<Value>;

/// Whether trying again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    Retry,
    Blocking,
}

impl ErrorClass {
    pub const ALL: [ErrorClass; 2] = [ErrorClass::Retry, ErrorClass::Blocking];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Retry => "retry",
            ErrorClass::Blocking => "blocking",
        }
    }
}

/// What went wrong writing to SQL Server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    #[error("SQL Server error {number} (severity {severity}, state {state}): {message}")]
    Server {
        number: u32,
        severity: u8,
        state: u8,
        message: String,
    },
    #[error("cannot connect to SQL Server at {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("SQL Server did not answer within {0:?}")]
    Timeout(Duration),
    #[error("TLS with SQL Server: {0}")]
    Tls(String),
    #[error("connection to SQL Server lost: {0}")]
    Io(String),
    #[error("SQL Server said something the client did not understand: {0}")]
    Protocol(String),
}

/// Server errors a retry can outlive: deadlock victim, lock and query timeouts, a database
/// failing over or busy (Azure's transient numbers), a connection the server ended.
const RETRY_NUMBERS: &[u32] = &[
    1205, 1222, 233, 64, 121, 10053, 10054, 10060, 10928, 10929, 40143, 40197, 40501, 40613, 49918,
    49919, 49920, 4221, 8645,
];

impl SqlError {
    pub fn class(&self) -> ErrorClass {
        match self {
            SqlError::Server {
                number, severity, ..
            } => {
                if RETRY_NUMBERS.contains(number) || *severity >= 20 {
                    ErrorClass::Retry
                } else {
                    // Login failed (18456), cannot open the database (4060), no such table (208),
                    // permission (229), database or log full (1105, 9002), a key or value the
                    // table refuses (2627, 2601, 547, 2628, 8152), and every number not known
                    // to pass: trying again at full speed would only repeat it.
                    ErrorClass::Blocking
                }
            }
            SqlError::Connect { .. }
            | SqlError::Timeout(_)
            | SqlError::Io(_)
            | SqlError::Protocol(_) => ErrorClass::Retry,
            SqlError::Tls(_) => ErrorClass::Blocking,
        }
    }

    /// The server's message number, for logs and alerts.
    pub fn number(&self) -> Option<u32> {
        match self {
            SqlError::Server { number, .. } => Some(*number),
            _ => None,
        }
    }
}

impl From<tiberius::error::Error> for SqlError {
    fn from(e: tiberius::error::Error) -> Self {
        use tiberius::error::Error as E;
        match e {
            E::Server(token) => SqlError::Server {
                number: token.code(),
                severity: token.class(),
                state: token.state(),
                message: token.message().to_owned(),
            },
            E::Io { message, .. } => SqlError::Io(message),
            E::Tls(reason) => SqlError::Tls(reason),
            other => SqlError::Protocol(other.to_string()),
        }
    }
}

/// The rows for one table in a batch (at most one row per key).
#[derive(Debug, Clone, Copy)]
pub struct Write<'a> {
    pub table: &'a Table,
    pub rows: &'a [Row],
}

/// Writes batches of rows.
pub trait Target: Send {
    /// Writes every table's rows in one transaction, all or nothing: a row whose key is there
    /// already is skipped ([`super::sql::Keyed::Once`]) or updated where it differs, keeping
    /// what it replaces in the table's trail ([`super::sql::Keyed::Latest`]).
    fn write(&mut self, batch: &[Write<'_>]) -> impl Future<Output = Result<(), SqlError>> + Send;
}

type TdsClient = Client<Compat<TcpStream>>;

/// SQL Server over TDS. Connects on first use and after any error (a connection in an unknown
/// state is dropped, which rolls back whatever it had open).
pub struct TdsTarget {
    config: Config,
    addr: String,
    timeout: Duration,
    client: Option<TdsClient>,
    /// Staging tables this connection has made.
    staged: std::collections::HashSet<String>,
}

impl std::fmt::Debug for TdsTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TdsTarget")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// How to reach the server (from `[mssql]`, the password already resolved).
#[derive(Clone)]
pub struct Connection {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub password: String,
    pub encrypt: bool,
    pub ca_file: Option<String>,
    pub trust_server_certificate: bool,
    pub timeout: Duration,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl TdsTarget {
    pub fn new(connection: &Connection) -> Self {
        let mut config = Config::new();
        config.host(&connection.host);
        config.port(connection.port);
        config.database(&connection.database);
        config.application_name("outpost-hub");
        config.authentication(AuthMethod::sql_server(
            &connection.user,
            &connection.password,
        ));
        if connection.encrypt {
            config.encryption(EncryptionLevel::Required);
            if connection.trust_server_certificate {
                config.trust_cert();
            } else if let Some(ca) = &connection.ca_file {
                config.trust_cert_ca(ca);
            }
        } else {
            config.encryption(EncryptionLevel::NotSupported);
        }
        Self {
            addr: format!("{}:{}", connection.host, connection.port),
            config,
            timeout: connection.timeout,
            client: None,
            staged: Default::default(),
        }
    }

    async fn connect(&mut self) -> Result<&mut TdsClient, SqlError> {
        if self.client.is_none() {
            self.staged.clear();
            let addr = self.addr.clone();
            let connect = async {
                let tcp = TcpStream::connect(&addr)
                    .await
                    .map_err(|e| SqlError::Connect {
                        addr: addr.clone(),
                        reason: e.to_string(),
                    })?;
                let _ = tcp.set_nodelay(true);
                Client::connect(self.config.clone(), tcp.compat_write())
                    .await
                    .map_err(SqlError::from)
            };
            let client = tokio::time::timeout(self.timeout, connect)
                .await
                .map_err(|_| SqlError::Timeout(self.timeout))??;
            self.client = Some(client);
        }
        self.client
            .as_mut()
            .ok_or_else(|| SqlError::Protocol("no connection".into()))
    }

    /// Sends `request` on the connection (made first if need be), within the timeout; any error
    /// drops the connection.
    async fn send(
        &mut self,
        request: Request<'_, '_>,
    ) -> Result<Vec<Vec<Option<String>>>, SqlError> {
        let timeout = self.timeout;
        let result = tokio::time::timeout(timeout, async {
            let client = self.connect().await?;
            Ok::<_, SqlError>(match request {
                Request::Batch(sql) => {
                    client.simple_query(sql).await?.into_results().await?;
                    Vec::new()
                }
                Request::Execute(sql, params) => {
                    client.execute(sql, params).await?;
                    Vec::new()
                }
                Request::Query(sql, params) => client
                    .query(sql, params)
                    .await?
                    .into_first_result()
                    .await?
                    .into_iter()
                    .map(|row| row.into_iter().map(text_of).collect())
                    .collect(),
            })
        })
        .await
        .unwrap_or(Err(SqlError::Timeout(timeout)));
        if result.is_err() {
            self.client = None;
        }
        result
    }

    /// Runs a batch of statements without parameters (a SQL batch: `#temp` tables it creates
    /// live as long as the connection).
    pub async fn batch(&mut self, sql: &str) -> Result<(), SqlError> {
        self.send(Request::Batch(sql)).await.map(drop)
    }

    /// Runs one statement with parameters (`sp_executesql`).
    pub async fn execute(&mut self, sql: &str, params: &[&dyn ToSql]) -> Result<(), SqlError> {
        self.send(Request::Execute(sql, params)).await.map(drop)
    }

    /// The rows of a query, each column as text (`None` for NULL); for checks and tests.
    pub async fn query_text(
        &mut self,
        sql: &str,
        params: &[&dyn ToSql],
    ) -> Result<Vec<Vec<Option<String>>>, SqlError> {
        self.send(Request::Query(sql, params)).await
    }
}

/// What [`TdsTarget::send`] sends.
enum Request<'a, 'p> {
    Batch(&'a str),
    Execute(&'a str, &'a [&'p dyn ToSql]),
    Query(&'a str, &'a [&'p dyn ToSql]),
}

fn text_of(data: ColumnData<'static>) -> Option<String> {
    match data {
        ColumnData::U8(v) => v.map(|v| v.to_string()),
        ColumnData::I16(v) => v.map(|v| v.to_string()),
        ColumnData::I32(v) => v.map(|v| v.to_string()),
        ColumnData::I64(v) => v.map(|v| v.to_string()),
        ColumnData::F32(v) => v.map(|v| v.to_string()),
        ColumnData::F64(v) => v.map(|v| v.to_string()),
        ColumnData::Bit(v) => v.map(|v| v.to_string()),
        ColumnData::String(v) => v.map(|v| v.into_owned()),
        ColumnData::DateTime(None)
        | ColumnData::SmallDateTime(None)
        | ColumnData::DateTime2(None)
        | ColumnData::Date(None)
        | ColumnData::Time(None)
        | ColumnData::DateTimeOffset(None)
        | ColumnData::Numeric(None)
        | ColumnData::Guid(None)
        | ColumnData::Binary(None)
        | ColumnData::Xml(None) => None,
        other => {
            let time: Option<time::PrimitiveDateTime> =
                tiberius::FromSql::from_sql(&other).ok().flatten();
            time.map(|t| t.to_string())
                .or_else(|| Some(format!("{other:?}")))
        }
    }
}

impl Target for TdsTarget {
    async fn write(&mut self, batch: &[Write<'_>]) -> Result<(), SqlError> {
        let result = async {
            self.connect().await?;
            self.batch("SET XACT_ABORT ON; BEGIN TRANSACTION").await?;
            for Write { table, rows } in batch {
                if rows.is_empty() {
                    continue;
                }
                let stage = table.stage_name();
                let prepare = if self.staged.contains(&stage) {
                    table.clear_stage()
                } else {
                    table.create_stage()
                };
                self.batch(&prepare).await?;
                self.staged.insert(stage);
                for chunk in rows.chunks(table.rows_per_statement()) {
                    let params: Vec<&dyn ToSql> = chunk
                        .iter()
                        .flat_map(|row| row.iter().map(|v| v as &dyn ToSql))
                        .collect();
                    self.execute(&table.stage_insert(chunk.len()), &params)
                        .await?;
                }
                self.batch(&table.apply_staged().join("; ")).await?;
            }
            self.batch("COMMIT TRANSACTION").await
        }
        .await;
        if result.is_err() {
            // Whatever the connection had open is rolled back when it closes.
            self.client = None;
        }
        result
    }
}

/// An in-memory table store behind [`Target`], with faults a test can inject. Clones share it.
#[derive(Debug, Clone, Default)]
pub struct MemoryTarget {
    inner: Arc<Mutex<MemoryState>>,
}

#[derive(Debug, Default)]
struct MemoryState {
    tables: BTreeMap<String, BTreeMap<Row, Row>>,
    /// Versions replaced, per trail table, in order.
    trails: BTreeMap<String, Vec<Row>>,
    /// Errors the next writes fail with, in order (nothing is written).
    fail_next: VecDeque<SqlError>,
    /// While set, every write fails with this error.
    down: Option<SqlError>,
    /// The next writes are committed but answered with a lost connection (a crash after the
    /// commit, before the caller heard of it).
    lose_answers: u32,
    writes: u64,
    rows_offered: u64,
    attempts: u64,
}

impl MemoryTarget {
    fn state(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The rows of `table`, by key.
    pub fn rows(&self, table: &str) -> Vec<Row> {
        self.state()
            .tables
            .get(table)
            .map(|t| t.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The next write fails with `error`.
    pub fn fail_next(&self, error: SqlError) {
        self.state().fail_next.push_back(error);
    }

    /// Every write fails with `error` until [`Self::up`].
    pub fn down(&self, error: SqlError) {
        self.state().down = Some(error);
    }

    pub fn up(&self) {
        self.state().down = None;
    }

    /// The next `n` writes are committed but their answer is lost.
    pub fn lose_answers(&self, n: u32) {
        self.state().lose_answers += n;
    }

    /// The versions the rows of a table's trail replaced, in order.
    pub fn trail(&self, trail: &str) -> Vec<Row> {
        self.state().trails.get(trail).cloned().unwrap_or_default()
    }

    /// Writes tried, failed ones included.
    pub fn attempts(&self) -> u64 {
        self.state().attempts
    }

    /// Writes committed, and rows offered in them (rows skipped as present included).
    pub fn writes(&self) -> (u64, u64) {
        let state = self.state();
        (state.writes, state.rows_offered)
    }
}

impl Target for MemoryTarget {
    async fn write(&mut self, batch: &[Write<'_>]) -> Result<(), SqlError> {
        let mut state = self.state();
        state.attempts += 1;
        if let Some(error) = state.down.clone() {
            return Err(error);
        }
        if let Some(error) = state.fail_next.pop_front() {
            return Err(error);
        }
        // All or nothing, as the transaction is: a row that does not fit refuses the batch.
        for Write { table, rows } in batch {
            let mut keys = std::collections::BTreeSet::new();
            for row in rows.iter() {
                if row.len() != table.columns.len() {
                    return Err(SqlError::Server {
                        number: 213,
                        severity: 16,
                        state: 1,
                        message: "column name or number of supplied values does not match".into(),
                    });
                }
                if !keys.insert(&row[..table.key_columns]) {
                    return Err(SqlError::Server {
                        number: 2627,
                        severity: 14,
                        state: 1,
                        message: format!(
                            "violation of the staged key of {}: a key twice in one batch",
                            table.name
                        ),
                    });
                }
            }
        }
        let state = &mut *state;
        for Write { table, rows } in batch {
            let stored = state.tables.entry(table.name.clone()).or_default();
            for row in rows.iter() {
                let key = row[..table.key_columns].to_vec();
                match (&table.keyed, stored.get_mut(&key)) {
                    (_, None) => {
                        stored.insert(key, row.clone());
                    }
                    (Keyed::Once, Some(_)) => {}
                    (Keyed::Latest { trail }, Some(old)) => {
                        if old != row {
                            if let Some(trail) = trail {
                                state
                                    .trails
                                    .entry(trail.clone())
                                    .or_default()
                                    .push(old.clone());
                            }
                            *old = row.clone();
                        }
                    }
                }
            }
            state.rows_offered += rows.len() as u64;
        }
        state.writes += 1;
        if state.lose_answers > 0 {
            state.lose_answers -= 1;
            return Err(SqlError::Io("connection reset after the commit".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(number: u32, severity: u8) -> SqlError {
        SqlError::Server {
            number,
            severity,
            state: 1,
            message: String::new(),
        }
    }

    #[test]
    fn a_deadlock_a_timeout_and_a_lost_connection_are_retried() {
        assert_eq!(server(1205, 13).class(), ErrorClass::Retry);
        assert_eq!(server(1222, 16).class(), ErrorClass::Retry);
        assert_eq!(
            SqlError::Timeout(Duration::from_secs(1)).class(),
            ErrorClass::Retry
        );
        assert_eq!(SqlError::Io("reset".into()).class(), ErrorClass::Retry);
        assert_eq!(
            SqlError::Connect {
                addr: "x:1433".into(),
                reason: "refused".into()
            }
            .class(),
            ErrorClass::Retry
        );
        assert_eq!(
            server(4242, 20).class(),
            ErrorClass::Retry,
            "fatal severity ends the connection only"
        );
    }

    #[test]
    fn a_failed_login_a_missing_table_a_full_database_and_a_refused_key_block() {
        for number in [18456, 4060, 208, 229, 1105, 9002, 2627, 2601, 547, 8152] {
            assert_eq!(server(number, 16).class(), ErrorClass::Blocking, "{number}");
        }
        assert_eq!(
            SqlError::Tls("bad certificate".into()).class(),
            ErrorClass::Blocking
        );
    }

    #[test]
    fn times_travel_as_iso_8601_text_with_their_microseconds() {
        let at = time::macros::datetime!(2026-11-30 05:59:58.123456);
        assert_eq!(iso8601(at), "2026-11-30T05:59:58.123456");
        assert!(matches!(
            Value::Time(at).to_sql(),
            ColumnData::String(Some(text)) if text == "2026-11-30T05:59:58.123456"
        ));
        let whole = time::macros::datetime!(2026-01-02 03:04:05);
        assert_eq!(iso8601(whole), "2026-01-02T03:04:05.000000");
    }

    #[test]
    fn an_unknown_server_error_blocks_rather_than_repeats_at_full_speed() {
        assert_eq!(server(50000, 16).class(), ErrorClass::Blocking);
    }

    fn two_columns(keyed: Keyed) -> Table {
        Table {
            name: "t".into(),
            columns: vec![
                ("k", super::super::sql::ColumnType::BigInt),
                ("v", super::super::sql::ColumnType::VarChar(8)),
            ],
            key_columns: 1,
            keyed,
        }
    }

    fn row(k: i64, v: &str) -> Row {
        vec![Value::BigInt(k), Value::Text(v.into())]
    }

    #[tokio::test]
    async fn the_memory_target_skips_rows_whose_key_is_there_and_commits_before_a_lost_answer() {
        let table = two_columns(Keyed::Once);
        let mut target = MemoryTarget::default();
        let first = vec![row(1, "a"), row(2, "b")];
        target
            .write(&[Write {
                table: &table,
                rows: &first,
            }])
            .await
            .unwrap();
        target.lose_answers(1);
        let second = vec![row(2, "changed"), row(3, "c")];
        assert!(
            target
                .write(&[Write {
                    table: &table,
                    rows: &second
                }])
                .await
                .is_err()
        );
        assert_eq!(
            target.rows("t"),
            vec![row(1, "a"), row(2, "b"), row(3, "c")]
        );
        assert_eq!(target.writes(), (2, 4));
    }

    #[tokio::test]
    async fn the_memory_target_updates_a_changed_row_keeping_the_old_version_in_its_trail() {
        let table = two_columns(Keyed::Latest {
            trail: Some("t_trail".into()),
        });
        let mut target = MemoryTarget::default();
        for rows in [
            vec![row(1, "a"), row(2, "b")],
            vec![row(1, "a"), row(2, "b2")],
            vec![row(2, "b2")],
        ] {
            target
                .write(&[Write {
                    table: &table,
                    rows: &rows,
                }])
                .await
                .unwrap();
        }
        assert_eq!(target.rows("t"), vec![row(1, "a"), row(2, "b2")]);
        assert_eq!(
            target.trail("t_trail"),
            vec![row(2, "b")],
            "only a change leaves a trail"
        );
    }

    #[tokio::test]
    async fn the_memory_target_refuses_a_batch_with_a_key_twice_as_the_staged_insert_would() {
        let table = two_columns(Keyed::Once);
        let mut target = MemoryTarget::default();
        let other = two_columns(Keyed::Once).named("u");
        let fine = vec![row(1, "a")];
        let twice = vec![row(1, "a"), row(1, "b")];
        let result = target
            .write(&[
                Write {
                    table: &other,
                    rows: &fine,
                },
                Write {
                    table: &table,
                    rows: &twice,
                },
            ])
            .await;
        assert!(matches!(result, Err(SqlError::Server { number: 2627, .. })));
        assert!(target.rows("u").is_empty(), "all or nothing");
    }
}
