//! The SQL the sink sends, as pure functions of a table's description: the migrations, the
//! staging table, the statements that fill it and the one that moves new rows into place.
//!
//! Invariants: every statement names its columns; values travel only as parameters (`@P1`…),
//! never in the text; a statement carries at most [`MAX_PARAMS`] of them (SQL Server's limit is
//! 2,100); the insert into the target skips every row whose key is already there, so a batch
//! written twice leaves the table as written once.

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
}

impl ColumnType {
    fn sql(self) -> String {
        match self {
            ColumnType::BigInt => "BIGINT".into(),
            ColumnType::NVarChar(Some(n)) => format!("NVARCHAR({n})"),
            ColumnType::NVarChar(None) => "NVARCHAR(MAX)".into(),
            ColumnType::VarChar(n) => format!("VARCHAR({n})"),
            ColumnType::DateTime2 => "DATETIME2(6)".into(),
        }
    }
}

/// A table the sink writes: its name, its columns in order, and how many of the first columns
/// form its natural key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Schema-qualified (`outpost.events`), or a `#temp` table (the wire tests' target).
    pub name: String,
    pub columns: Vec<(&'static str, ColumnType)>,
    pub key_columns: usize,
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
        }
    }

    /// The same table under another name (tests write into a `#temp` copy).
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.into();
        self
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
            .map(|(column, kind)| format!("[{column}] {} NOT NULL", kind.sql()))
            .collect::<Vec<_>>()
            .join(", ");
        format!("CREATE TABLE {name} ({columns})")
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
        let key = self.columns[..self.key_columns]
            .iter()
            .map(|(name, _)| format!("t.[{name}] = s.[{name}]"))
            .collect::<Vec<_>>()
            .join(" AND ");
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
    [(
        1,
        "0001_events.sql",
        include_str!("../../../deploy/mssql/0001_events.sql"),
    )]
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
        let table = Table::events();
        parses(&table.create(&table.stage_name()));
        parses(&table.create_stage());
        parses(&table.clear_stage());
        parses(&table.stage_insert(1));
        parses(&table.stage_insert(table.rows_per_statement()));
        parses(&table.insert_new());
        parses(&table.clone().named("#events_copy").insert_new());
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
        let table = Table::events();
        let rows = table.rows_per_statement();
        assert!(rows * table.columns.len() <= 2_100);
        let sql = table.stage_insert(rows);
        assert!(sql.contains(&format!("@P{}", rows * table.columns.len())));
        assert!(!sql.contains(&format!("@P{}", rows * table.columns.len() + 1)));
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
