//! The tables of the hub's domain as the sink writes them (`deploy/mssql/0002_accounting.sql`
//! creates them; a test holds the two to the same columns, types and keys).

use super::sql::{ColumnType, Keyed, Table};

use ColumnType::{
    BigInt, Date, DateTime2, NVarChar, NullableBigInt, NullableDateTime2, NullableNVarChar, VarChar,
};

const ID: ColumnType = NVarChar(Some(64));

fn latest(name: &str, with_trail: bool) -> Keyed {
    Keyed::Latest {
        trail: with_trail.then(|| format!("{name}_trail")),
    }
}

/// `outpost.meter_hours`: one machine's hour bucket, corrected in place with a trail.
pub fn meter_hours() -> Table {
    let name = "outpost.meter_hours";
    Table {
        name: name.into(),
        columns: vec![
            ("edge", ID),
            ("device", ID),
            ("hour_start", DateTime2),
            ("site", ID),
            ("gaming_day", Date),
            ("currency", VarChar(3)),
            ("minor_per_major", BigInt),
            ("denomination_minor", BigInt),
            ("coin_in_minor", BigInt),
            ("coin_out_minor", BigInt),
            ("jackpot_minor", BigInt),
            ("handpaid_cancelled_minor", BigInt),
            ("drop_minor", BigInt),
            ("tickets_in_cents", BigInt),
            ("tickets_out_cents", BigInt),
            ("net_win_minor", BigInt),
            ("games_played", BigInt),
            ("games_won", BigInt),
            ("bills", BigInt),
            ("handpays", BigInt),
            ("intervals", BigInt),
            ("meter_resets", BigInt),
            ("comms_lost", BigInt),
            ("missing_events", BigInt),
            ("manual_readings", BigInt),
            ("corrections", BigInt),
            ("metered", NVarChar(None)),
            ("adjusted", NVarChar(None)),
        ],
        key_columns: 3,
        keyed: latest(name, true),
    }
}

/// `outpost.machine_days`: one machine's gaming day, the sum of its hours.
pub fn machine_days() -> Table {
    let name = "outpost.machine_days";
    Table {
        name: name.into(),
        columns: vec![
            ("edge", ID),
            ("device", ID),
            ("gaming_day", Date),
            ("site", ID),
            ("currency", VarChar(3)),
            ("minor_per_major", BigInt),
            ("denomination_minor", BigInt),
            ("coin_in_minor", BigInt),
            ("coin_out_minor", BigInt),
            ("jackpot_minor", BigInt),
            ("drop_minor", BigInt),
            ("tickets_in_cents", BigInt),
            ("tickets_out_cents", BigInt),
            ("net_win_minor", BigInt),
            ("games_played", BigInt),
            ("games_won", BigInt),
            ("handpays", BigInt),
            ("hours", BigInt),
        ],
        key_columns: 3,
        keyed: latest(name, true),
    }
}

/// `outpost.reconciliations`: each machine's gaming day reconciled.
pub fn reconciliations() -> Table {
    let name = "outpost.reconciliations";
    Table {
        name: name.into(),
        columns: vec![
            ("edge", ID),
            ("device", ID),
            ("gaming_day", Date),
            ("site", ID),
            ("verdict", VarChar(16)),
            ("checks", NVarChar(None)),
            ("reasons", NVarChar(None)),
            ("intervals", BigInt),
        ],
        key_columns: 3,
        keyed: latest(name, true),
    }
}

/// `outpost.machine_meters`: each machine's latest reading of each meter.
pub fn machine_meters() -> Table {
    Table {
        name: "outpost.machine_meters".into(),
        columns: vec![
            ("edge", ID),
            ("device", ID),
            ("meter_code", BigInt),
            ("meter", VarChar(64)),
            ("value", BigInt),
            ("last_seq", BigInt),
        ],
        key_columns: 3,
        keyed: latest("outpost.machine_meters", false),
    }
}

/// `outpost.machine_sessions`: sessions the machine reported, once ended.
pub fn machine_sessions() -> Table {
    Table {
        name: "outpost.machine_sessions".into(),
        columns: vec![
            ("edge", ID),
            ("device", ID),
            ("opened_seq", BigInt),
            ("opened_at", DateTime2),
            ("closed_at", DateTime2),
            ("currency", VarChar(3)),
            ("coin_in_minor", BigInt),
            ("coin_out_minor", BigInt),
            ("games_played", BigInt),
        ],
        key_columns: 3,
        keyed: latest("outpost.machine_sessions", false),
    }
}

/// `outpost.handpays`: pending, then reset.
pub fn handpays() -> Table {
    Table {
        name: "outpost.handpays".into(),
        columns: vec![
            ("edge", ID),
            ("device", ID),
            ("seq", BigInt),
            ("state", VarChar(16)),
            ("credits", BigInt),
            ("currency", VarChar(3)),
            ("amount_minor", BigInt),
            ("pending_at", DateTime2),
            ("reset_at", NullableDateTime2),
            ("reset_seq", NullableBigInt),
        ],
        key_columns: 3,
        keyed: latest("outpost.handpays", false),
    }
}

/// `outpost.manual_readings`: readings entered by hand and their corrections, never changed.
pub fn manual_readings() -> Table {
    Table {
        name: "outpost.manual_readings".into(),
        columns: vec![
            ("id", BigInt),
            ("edge", ID),
            ("device", ID),
            ("read_at", DateTime2),
            ("entered_at", DateTime2),
            ("entered_by", NVarChar(Some(128))),
            ("reason", NVarChar(None)),
            ("corrects", NullableBigInt),
            ("meters", NVarChar(None)),
        ],
        key_columns: 1,
        keyed: Keyed::Once,
    }
}

/// `outpost.alerts`: alerts as they are now.
pub fn alerts() -> Table {
    Table {
        name: "outpost.alerts".into(),
        columns: vec![
            ("id", ID),
            ("rule", ID),
            ("site", ID),
            ("edge", ID),
            ("device", ID),
            ("detail", NVarChar(None)),
            ("state", VarChar(16)),
            ("fired_at", DateTime2),
            ("resolved_at", NullableDateTime2),
            ("acknowledged_by", NullableNVarChar(Some(128))),
            ("acknowledged_at", NullableDateTime2),
            ("acknowledged_note", NullableNVarChar(None)),
        ],
        key_columns: 1,
        keyed: latest("outpost.alerts", false),
    }
}

/// `outpost.commands`: commands and their fate.
pub fn commands() -> Table {
    Table {
        name: "outpost.commands".into(),
        columns: vec![
            ("id", ID),
            ("issuer", NVarChar(Some(128))),
            ("edge", ID),
            ("device", ID),
            ("kind", VarChar(16)),
            ("op", ID),
            ("args", NVarChar(None)),
            ("created_at", DateTime2),
            ("deadline_at", DateTime2),
            ("status", VarChar(16)),
            ("detail", NullableNVarChar(None)),
            ("result", NullableNVarChar(None)),
            ("updated_at", DateTime2),
        ],
        key_columns: 1,
        keyed: latest("outpost.commands", false),
    }
}

/// `outpost.guest_visits`: guest visits and their provisioning.
pub fn guest_visits() -> Table {
    Table {
        name: "outpost.guest_visits".into(),
        columns: vec![
            ("id", ID),
            ("guest_name", NVarChar(Some(256))),
            ("access_level", ID),
            ("begin_at", DateTime2),
            ("end_at", DateTime2),
            ("state", VarChar(32)),
            ("created_by", NVarChar(Some(128))),
            ("created_at", DateTime2),
            ("person_code", ID),
            ("person_id", NullableNVarChar(Some(64))),
            ("cancelled_by", NullableNVarChar(Some(128))),
            ("last_error", NullableNVarChar(None)),
            ("last_note", NullableNVarChar(None)),
            ("updated_at", DateTime2),
        ],
        key_columns: 1,
        keyed: latest("outpost.guest_visits", false),
    }
}

/// `outpost.player_sessions`: cards bound to machines, open or closed.
pub fn player_sessions() -> Table {
    Table {
        name: "outpost.player_sessions".into(),
        columns: vec![
            ("id", ID),
            ("player", NVarChar(Some(128))),
            ("edge", ID),
            ("device", ID),
            ("opened_by", NVarChar(Some(128))),
            ("opened_at", DateTime2),
            ("closed_by", NullableNVarChar(Some(128))),
            ("closed_at", NullableDateTime2),
            ("currency", VarChar(3)),
            ("coin_in_minor", NullableBigInt),
            ("coin_out_minor", NullableBigInt),
            ("games_played", NullableBigInt),
        ],
        key_columns: 1,
        keyed: latest("outpost.player_sessions", false),
    }
}

/// `outpost.handpay_steps`: who verified, approved and paid a handpay.
pub fn handpay_steps() -> Table {
    Table {
        name: "outpost.handpay_steps".into(),
        columns: vec![
            ("edge", ID),
            ("device", ID),
            ("seq", BigInt),
            ("verified_by", NullableNVarChar(Some(128))),
            ("verified_at", NullableDateTime2),
            ("approved_by", NullableNVarChar(Some(128))),
            ("approved_at", NullableDateTime2),
            ("paid_by", NullableNVarChar(Some(128))),
            ("paid_at", NullableDateTime2),
            ("reset_command", NullableNVarChar(Some(64))),
            ("notes", NVarChar(None)),
        ],
        key_columns: 3,
        keyed: latest("outpost.handpay_steps", false),
    }
}

/// `outpost.counted_drops`: every count room entry, never changed.
pub fn counted_drops() -> Table {
    Table {
        name: "outpost.counted_drops".into(),
        columns: vec![
            ("edge", ID),
            ("device", ID),
            ("gaming_day", Date),
            ("entry", BigInt),
            ("currency", VarChar(3)),
            ("amount_minor", BigInt),
            ("counted_by", NVarChar(Some(128))),
            ("counted_at", DateTime2),
            ("note", NVarChar(None)),
        ],
        key_columns: 4,
        keyed: Keyed::Once,
    }
}

/// Every table the sink writes.
pub fn all() -> Vec<Table> {
    vec![
        Table::events(),
        meter_hours(),
        machine_days(),
        reconciliations(),
        machine_meters(),
        machine_sessions(),
        handpays(),
        manual_readings(),
        alerts(),
        commands(),
        guest_visits(),
        player_sessions(),
        handpay_steps(),
        counted_drops(),
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::mssql::sql::migrations;
    use sqlparser::ast::{ColumnOption, Statement, TableConstraint};
    use sqlparser::dialect::MsSqlDialect;
    use sqlparser::parser::Parser;

    /// (columns as `name TYPE [NOT] NULL`, primary key) of every table the migrations create.
    fn created() -> std::collections::BTreeMap<String, (Vec<String>, Vec<String>)> {
        let mut out = std::collections::BTreeMap::new();
        for migration in migrations() {
            for batch in &migration.batches {
                for statement in Parser::parse_sql(&MsSqlDialect {}, batch).unwrap() {
                    let Statement::CreateTable(create) = statement else {
                        continue;
                    };
                    let columns = create
                        .columns
                        .iter()
                        .map(|c| {
                            let null = c.options.iter().any(|o| o.option == ColumnOption::Null);
                            let type_text = c.data_type.to_string().replace(' ', "");
                            format!(
                                "{} {} {}",
                                c.name.value,
                                type_text,
                                if null { "NULL" } else { "NOT NULL" }
                            )
                        })
                        .collect();
                    let key = create
                        .constraints
                        .iter()
                        .find_map(|c| match c {
                            TableConstraint::PrimaryKey(pk) => Some(
                                pk.columns
                                    .iter()
                                    .map(|c| c.column.expr.to_string())
                                    .collect(),
                            ),
                            _ => None,
                        })
                        .unwrap_or_default();
                    out.insert(create.name.to_string(), (columns, key));
                }
            }
        }
        out
    }

    fn described(table: &Table) -> Vec<String> {
        table
            .columns
            .iter()
            .map(|(name, kind)| {
                let sql = kind.sql();
                let (type_text, null) = match sql.strip_suffix(" NOT NULL") {
                    Some(t) => (t.to_owned(), "NOT NULL"),
                    None => (sql.trim_end_matches(" NULL").to_owned(), "NULL"),
                };
                format!("{name} {} {null}", type_text.replace(' ', ""))
            })
            .collect()
    }

    #[test]
    fn every_table_the_sink_writes_is_created_by_a_migration_with_the_same_columns_and_key() {
        let created = created();
        for table in all() {
            let Some((columns, key)) = created.get(&table.name) else {
                panic!("{} is not created by any migration", table.name);
            };
            assert_eq!(&described(&table), columns, "{}", table.name);
            let key_columns: Vec<String> = table.columns[..table.key_columns]
                .iter()
                .map(|(name, _)| name.to_string())
                .collect();
            assert_eq!(&key_columns, key, "{}'s primary key", table.name);
        }
    }

    #[test]
    fn every_trail_has_its_tables_columns_and_when_each_version_was_replaced() {
        let created = created();
        for table in all() {
            let Keyed::Latest { trail: Some(trail) } = &table.keyed else {
                continue;
            };
            let Some((columns, key)) = created.get(trail) else {
                panic!("{trail} is not created by any migration");
            };
            let mut expected = described(&table);
            expected.push("replaced_at DATETIME2(6) NOT NULL".into());
            assert_eq!(&expected, columns, "{trail}");
            assert!(key.is_empty(), "a trail keeps every version: no key");
        }
    }
}
