//! The SQL the sink sends, as pure functions of a table's description: the migrations, the
//! staging table, the statements that fill it and the one that moves new rows into place.
//!
//! Invariants: every statement names its columns; values travel only as parameters (`@P1`…),
//! never in the text; a statement carries at most [`MAX_PARAMS`] of them (SQL Server's limit is
//! 2,100); a batch written twice leaves a table as written once: rows that never change
//! ([`Keyed::Once`]) are inserted only where their key is not there, rows that do
//! ([`Keyed::Latest`]) replace theirs only where a value differs, keeping the version they
//! replace in the table's trail.
//!
//! Why not `MERGE` or `UPDATE … FROM`: in the batch's transaction, copying the versions replaced
//! to the trail, deleting them and inserting what is missing does the same, avoids `MERGE`'s
//! documented concurrency pitfalls (it needs `HOLDLOCK`), and uses only forms an independent
//! TDS server (pysqlbridge, which updates `#temp` tables only without a `FROM`) runs too, so
//! the wire tests check the statements production sends.

/// Parameters per statement: SQL Server refuses more than 2,100.
pub const MAX_PARAMS: usize = 2_000;

/// A column's SQL type, as the sink binds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// `BIGINT`.
    BigInt,
    /// `NVARCHAR(n)`; `None` is `NVARCHAR(MAX)`.
    NVarChar(Option<u16>),
    /// `VARCHAR(n)` (ASCII names: classes, types).
    VarChar(u16),
    /// `DATETIME2(6)`, UTC.
    DateTime2,
    /// `DATE` (a gaming day), sent as `YYYY-MM-DD`.
    Date,
    /// `BIGINT NULL`.
    NullableBigInt,
    /// `DATETIME2(6) NULL`, UTC.
    NullableDateTime2,
    /// `NVARCHAR(n) NULL`; `None` is `NVARCHAR(MAX) NULL`.
    NullableNVarChar(Option<u16>),
}

impl ColumnType {
    pub fn nullable(self) -> bool {
        matches!(
            self,
            ColumnType::NullableBigInt
                | ColumnType::NullableDateTime2
                | ColumnType::NullableNVarChar(_)
        )
    }

    /// The type as the schema declares it, with its nullability.
    pub fn sql(self) -> String {
        match self {
            ColumnType::BigInt => "BIGINT NOT NULL".into(),
            ColumnType::NVarChar(Some(n)) => format!("NVARCHAR({n}) NOT NULL"),
            ColumnType::NVarChar(None) => "NVARCHAR(MAX) NOT NULL".into(),
            ColumnType::VarChar(n) => format!("VARCHAR({n}) NOT NULL"),
            ColumnType::DateTime2 => "DATETIME2(6) NOT NULL".into(),
            ColumnType::Date => "DATE NOT NULL".into(),
            ColumnType::NullableBigInt => "BIGINT NULL".into(),
            ColumnType::NullableDateTime2 => "DATETIME2(6) NULL".into(),
            ColumnType::NullableNVarChar(Some(n)) => format!("NVARCHAR({n}) NULL"),
            ColumnType::NullableNVarChar(None) => "NVARCHAR(MAX) NULL".into(),
        }
    }
}

/// Whether a table's rows change once written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keyed {
    /// A row never changes: one whose key is there is skipped.
    Once,
    /// A row is replaced by its newer version (a corrected hour, a session that ended): the row
    /// whose key is there is updated where a value differs, and the version it replaces goes to
    /// `trail` (the same columns and `replaced_at`), when the table keeps one.
    Latest { trail: Option<String> },
}

/// A table the sink writes: its name, its columns in order, how many of the first columns form
/// its natural key, and whether its rows change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Schema-qualified (`outpost.events`), or a `#temp` table (the wire tests' target).
    pub name: String,
    pub columns: Vec<(&'static str, ColumnType)>,
    pub key_columns: usize,
    pub keyed: Keyed,
}

impl Table {
    /// `outpost.events`: every committed event (migration 0001).
    pub fn events() -> Self {
        Self {
            name: "outpost.events".into(),
            columns: vec![
                ("edge", ColumnType::NVarChar(Some(64))),
                ("seq", ColumnType::BigInt),
                ("device", ColumnType::NVarChar(Some(64))),
                ("class", ColumnType::VarChar(16)),
                ("type", ColumnType::VarChar(64)),
                ("happened_at", ColumnType::DateTime2),
                ("received_at", ColumnType::DateTime2),
                ("body", ColumnType::NVarChar(None)),
            ],
            key_columns: 2,
            keyed: Keyed::Once,
        }
    }

    /// The same table under another name (tests write into a `#temp` copy); its trail, if it
    /// keeps one, under that name with `_trail` after it.
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.into();
        if let Keyed::Latest { trail: Some(trail) } = &mut self.keyed {
            *trail = format!("{name}_trail");
        }
        self
    }

    /// The key's columns as `t.[a] = s.[a] AND …`.
    fn key_match(&self) -> String {
        self.columns[..self.key_columns]
            .iter()
            .map(|(name, _)| format!("t.[{name}] = s.[{name}]"))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// Where the staged row `s` differs from the stored row `stored` (an alias or the table's
    /// name) in any value that is not the key; NULL-safe for nullable columns.
    fn differs(&self, stored: &str) -> String {
        let terms = self.columns[self.key_columns..]
            .iter()
            .map(|(name, kind)| {
                let (s, t) = (format!("s.[{name}]"), format!("{stored}.[{name}]"));
                if kind.nullable() {
                    format!(
                        "({s} <> {t} OR ({s} IS NULL AND {t} IS NOT NULL) \
                         OR ({s} IS NOT NULL AND {t} IS NULL))"
                    )
                } else {
                    format!("{s} <> {t}")
                }
            })
            .collect::<Vec<_>>()
            .join(" OR ");
        format!("({terms})")
    }

    /// `EXISTS` a staged row with the key of `stored` and a value that differs.
    fn replaced_by_stage(&self, stored: &str) -> String {
        let key = self.columns[..self.key_columns]
            .iter()
            .map(|(name, _)| format!("s.[{name}] = {stored}.[{name}]"))
            .collect::<Vec<_>>()
            .join(" AND ");
        format!(
            "EXISTS (SELECT 1 FROM {stage} AS s WHERE {key} AND {differs})",
            stage = self.stage_name(),
            differs = self.differs(stored),
        )
    }

    /// For [`Keyed::Latest`] with a trail: copies the stored versions the staged rows replace
    /// into the trail (run first).
    pub fn keep_replaced(&self) -> Option<String> {
        let Keyed::Latest { trail: Some(trail) } = &self.keyed else {
            return None;
        };
        let stored = self
            .columns
            .iter()
            .map(|(name, _)| format!("t.[{name}]"))
            .collect::<Vec<_>>()
            .join(", ");
        Some(format!(
            "INSERT INTO {trail} ({columns}, [replaced_at]) SELECT {stored}, SYSUTCDATETIME() \
             FROM {table} AS t WHERE {replaced}",
            columns = self.column_list(),
            table = self.name,
            replaced = self.replaced_by_stage("t"),
        ))
    }

    /// For [`Keyed::Latest`]: removes the stored rows a staged row replaces (the insert that
    /// follows puts the new version in their place, in the same transaction).
    pub fn remove_replaced(&self) -> Option<String> {
        if self.keyed == Keyed::Once || self.columns.len() == self.key_columns {
            return None;
        }
        Some(format!(
            "DELETE FROM {table} WHERE {replaced}",
            table = self.name,
            replaced = self.replaced_by_stage(&self.name),
        ))
    }

    /// The statements that move the staged rows into place, in order.
    pub fn apply_staged(&self) -> Vec<String> {
        self.keep_replaced()
            .into_iter()
            .chain(self.remove_replaced())
            .chain(std::iter::once(self.insert_new()))
            .collect()
    }

    /// Rows per staging statement.
    pub fn rows_per_statement(&self) -> usize {
        (MAX_PARAMS / self.columns.len().max(1)).max(1)
    }

    /// The per-connection staging table's name.
    pub fn stage_name(&self) -> String {
        let base: String = self
            .name
            .trim_start_matches('#')
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        format!("#stage_{base}")
    }

    fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|(name, _)| format!("[{name}]"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Creates this table's shape under `name` (the staging table, or a test's `#temp` target).
    pub fn create(&self, name: &str) -> String {
        let columns = self
            .columns
            .iter()
            .map(|(column, kind)| format!("[{column}] {}", kind.sql()))
            .collect::<Vec<_>>()
            .join(", ");
        format!("CREATE TABLE {name} ({columns})")
    }

    /// Creates this table's trail (its columns and `replaced_at`), for a table that keeps one
    /// (the migrations create the real ones; tests make `#temp` copies).
    pub fn create_trail(&self) -> Option<String> {
        let Keyed::Latest { trail: Some(trail) } = &self.keyed else {
            return None;
        };
        let create = self.create(trail);
        let columns = create.strip_suffix(')')?;
        Some(format!("{columns}, [replaced_at] DATETIME2(6) NOT NULL)"))
    }

    /// Creates the staging table (on a connection that has none yet: a `#temp` table lives as
    /// long as its connection).
    pub fn create_stage(&self) -> String {
        self.create(&self.stage_name())
    }

    /// Empties the staging table (on a connection that made it before).
    pub fn clear_stage(&self) -> String {
        format!("DELETE FROM {}", self.stage_name())
    }

    /// Inserts `rows` rows of parameters into the staging table.
    pub fn stage_insert(&self, rows: usize) -> String {
        let width = self.columns.len();
        let values = (0..rows)
            .map(|row| {
                let params = (0..width)
                    .map(|col| format!("@P{}", row * width + col + 1))
                    .collect::<Vec<_>>()
                    .join(", ");
                format!("({params})")
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "INSERT INTO {} ({}) VALUES {values}",
            self.stage_name(),
            self.column_list()
        )
    }

    /// Moves the staged rows whose key is not yet in the table into it.
    pub fn insert_new(&self) -> String {
        let key = self.key_match();
        let selected = self
            .columns
            .iter()
            .map(|(name, _)| format!("s.[{name}]"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "INSERT INTO {table} ({columns}) SELECT {selected} FROM {stage} AS s \
             WHERE NOT EXISTS (SELECT 1 FROM {table} AS t WHERE {key})",
            table = self.name,
            columns = self.column_list(),
            stage = self.stage_name(),
        )
    }
}

/// One migration: its number, its file's name, and its batches (split on `GO` lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub batches: Vec<String>,
}

/// The migrations in `deploy/mssql/`, in order (compiled in).
pub fn migrations() -> Vec<Migration> {
    [
        (
            1,
            "0001_events.sql",
            include_str!("../../../deploy/mssql/0001_events.sql"),
        ),
        (
            2,
            "0002_accounting.sql",
            include_str!("../../../deploy/mssql/0002_accounting.sql"),
        ),
        (
            3,
            "0003_operations.sql",
            include_str!("../../../deploy/mssql/0003_operations.sql"),
        ),
        (
            4,
            "0004_audit.sql",
            include_str!("../../../deploy/mssql/0004_audit.sql"),
        ),
    ]
    .into_iter()
    .map(|(version, name, text)| Migration {
        version,
        name,
        batches: split_batches(text),
    })
    .collect()
}

/// Splits a script on lines holding only `GO` (as `sqlcmd` does); drops comment-only batches.
pub fn split_batches(text: &str) -> Vec<String> {
    let mut batches = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if line.trim().eq_ignore_ascii_case("go") {
            batches.push(std::mem::take(&mut current));
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    batches.push(current);
    batches
        .into_iter()
        .map(|b| b.trim().to_owned())
        .filter(|b| {
            b.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with("--"))
        })
        .collect()
}

/// Creates the `outpost` schema and its version table where they are missing.
pub const BOOTSTRAP: [&str; 2] = [
    "IF SCHEMA_ID(N'outpost') IS NULL EXEC(N'CREATE SCHEMA outpost')",
    "IF OBJECT_ID(N'outpost.schema_version') IS NULL CREATE TABLE outpost.schema_version \
     ([version] INT NOT NULL PRIMARY KEY, [name] NVARCHAR(200) NOT NULL, \
     [applied_at] DATETIME2(6) NOT NULL DEFAULT SYSUTCDATETIME())",
];

/// The schema's version: the highest applied migration (0 for none).
pub const SCHEMA_VERSION: &str = "SELECT COALESCE(MAX([version]), 0) FROM outpost.schema_version";

/// Records a migration as applied (inside its transaction).
pub const RECORD_MIGRATION: &str =
    "INSERT INTO outpost.schema_version ([version], [name]) VALUES (@P1, @P2)";

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::MsSqlDialect;
    use sqlparser::parser::Parser;

    fn parses(sql: &str) {
        if let Err(e) = Parser::parse_sql(&MsSqlDialect {}, sql) {
            panic!("{e}\n{sql}");
        }
    }

    #[test]
    fn every_statement_the_sink_sends_parses_as_t_sql() {
        for table in crate::mssql::tables::all() {
            parses(&table.create(&table.stage_name()));
            parses(&table.create_stage());
            parses(&table.clear_stage());
            parses(&table.stage_insert(1));
            parses(&table.stage_insert(table.rows_per_statement()));
            for statement in table.apply_staged() {
                parses(&statement);
            }
            for statement in table.clone().named("#copy").apply_staged() {
                parses(&statement);
            }
        }
        for statement in BOOTSTRAP {
            parses(statement);
        }
        parses(SCHEMA_VERSION);
        parses(RECORD_MIGRATION);
    }

    #[test]
    fn every_migration_batch_parses_as_t_sql() {
        let all = migrations();
        assert!(!all.is_empty());
        for migration in &all {
            assert!(!migration.batches.is_empty(), "{}", migration.name);
            for batch in &migration.batches {
                parses(batch);
            }
        }
    }

    #[test]
    fn migrations_are_numbered_from_one_without_gaps_and_named_after_their_number() {
        for (i, migration) in migrations().iter().enumerate() {
            assert_eq!(migration.version, i as i32 + 1);
            assert!(
                migration
                    .name
                    .starts_with(&format!("{:04}_", migration.version))
            );
        }
    }

    #[test]
    fn no_statement_carries_more_than_sql_servers_parameter_limit() {
        for table in crate::mssql::tables::all() {
            let rows = table.rows_per_statement();
            assert!(rows * table.columns.len() <= 2_100, "{}", table.name);
            let sql = table.stage_insert(rows);
            assert!(sql.contains(&format!("@P{}", rows * table.columns.len())));
            assert!(!sql.contains(&format!("@P{}", rows * table.columns.len() + 1)));
        }
    }

    #[test]
    fn a_changing_table_keeps_the_version_it_replaces_then_replaces_only_what_differs() {
        let table = crate::mssql::tables::machine_days();
        let statements = table.apply_staged();
        assert_eq!(statements.len(), 3);
        assert!(statements[0].starts_with("INSERT INTO outpost.machine_days_trail"));
        assert!(statements[0].contains("SYSUTCDATETIME() FROM outpost.machine_days AS t WHERE"));
        assert!(statements[1].starts_with("DELETE FROM outpost.machine_days WHERE EXISTS"));
        for (statement, stored) in statements[..2].iter().zip(["t", "outpost.machine_days"]) {
            assert!(
                statement.contains(&format!("s.[edge] = {stored}.[edge] AND s.[device]")),
                "by key: {statement}"
            );
            assert!(
                statement.contains(&format!("(s.[site] <> {stored}.[site] OR ")),
                "only rows that differ: {statement}"
            );
            assert!(
                !statement.contains("s.[edge] <>"),
                "the key is not compared"
            );
        }
        assert!(statements[2].contains("WHERE NOT EXISTS"));
        let handpays = crate::mssql::tables::handpays().apply_staged();
        assert!(
            handpays[0]
                .contains("(s.[reset_seq] IS NULL AND outpost.handpays.[reset_seq] IS NOT NULL)"),
            "a NULL that becomes a value is a difference: {}",
            handpays[0]
        );
        assert_eq!(
            Table::events().apply_staged(),
            vec![Table::events().insert_new()]
        );
    }

    #[test]
    fn the_insert_skips_rows_whose_key_is_there_already() {
        let sql = Table::events().insert_new();
        assert!(sql.contains("WHERE NOT EXISTS"));
        assert!(sql.contains("t.[edge] = s.[edge] AND t.[seq] = s.[seq]"));
        assert!(!sql.contains("t.[device]"));
    }

    #[test]
    fn go_lines_split_a_script_and_comment_only_batches_are_dropped() {
        let batches = split_batches(
            "-- head\nCREATE TABLE a (x INT);\nGO\n-- only a comment\n go \nSELECT 1\n",
        );
        assert_eq!(
            batches,
            vec!["-- head\nCREATE TABLE a (x INT);", "SELECT 1"]
        );
    }
}
