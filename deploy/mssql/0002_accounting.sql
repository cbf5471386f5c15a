-- Outpost schema, migration 2: the hub's accounting, as finance and BI tools read it.
-- Applied by `outpost-hub mssql migrate` in one transaction with its row in outpost.schema_version.
-- Batches are separated by lines holding only GO.
--
-- Money is in minor units of the currency (BIGINT, columns ending in _minor), beside the currency
-- code and minor_per_major (100 for USD), so nothing is rounded on the way; the views divide.
-- Times are UTC. A gaming day is the site's (it starts at the site's configured hour).
-- Tables whose rows the hub corrects keep each replaced version in a _trail table with the time
-- it was replaced: a correction entered by hand changes the hour and the day, and the trail shows
-- what they said before.

-- One machine's hour: meters in money and counts, what the events added up to, and flags.
CREATE TABLE outpost.meter_hours (
    edge NVARCHAR(64) NOT NULL,
    device NVARCHAR(64) NOT NULL,
    hour_start DATETIME2(6) NOT NULL,
    site NVARCHAR(64) NOT NULL,
    gaming_day DATE NOT NULL,
    currency VARCHAR(3) NOT NULL,
    minor_per_major BIGINT NOT NULL,
    denomination_minor BIGINT NOT NULL,
    coin_in_minor BIGINT NOT NULL,
    coin_out_minor BIGINT NOT NULL,
    jackpot_minor BIGINT NOT NULL,
    handpaid_cancelled_minor BIGINT NOT NULL,
    drop_minor BIGINT NOT NULL,
    tickets_in_cents BIGINT NOT NULL,
    tickets_out_cents BIGINT NOT NULL,
    net_win_minor BIGINT NOT NULL,
    games_played BIGINT NOT NULL,
    games_won BIGINT NOT NULL,
    bills BIGINT NOT NULL,
    handpays BIGINT NOT NULL,
    intervals BIGINT NOT NULL,
    meter_resets BIGINT NOT NULL,
    comms_lost BIGINT NOT NULL,
    missing_events BIGINT NOT NULL,
    manual_readings BIGINT NOT NULL,
    corrections BIGINT NOT NULL,
    metered NVARCHAR(MAX) NOT NULL,
    adjusted NVARCHAR(MAX) NOT NULL,
    CONSTRAINT pk_meter_hours PRIMARY KEY (edge, device, hour_start)
);
GO
CREATE INDEX ix_meter_hours_day ON outpost.meter_hours (site, gaming_day);
GO
CREATE TABLE outpost.meter_hours_trail (
    edge NVARCHAR(64) NOT NULL,
    device NVARCHAR(64) NOT NULL,
    hour_start DATETIME2(6) NOT NULL,
    site NVARCHAR(64) NOT NULL,
    gaming_day DATE NOT NULL,
    currency VARCHAR(3) NOT NULL,
    minor_per_major BIGINT NOT NULL,
    denomination_minor BIGINT NOT NULL,
    coin_in_minor BIGINT NOT NULL,
    coin_out_minor BIGINT NOT NULL,
    jackpot_minor BIGINT NOT NULL,
    handpaid_cancelled_minor BIGINT NOT NULL,
    drop_minor BIGINT NOT NULL,
    tickets_in_cents BIGINT NOT NULL,
    tickets_out_cents BIGINT NOT NULL,
    net_win_minor BIGINT NOT NULL,
    games_played BIGINT NOT NULL,
    games_won BIGINT NOT NULL,
    bills BIGINT NOT NULL,
    handpays BIGINT NOT NULL,
    intervals BIGINT NOT NULL,
    meter_resets BIGINT NOT NULL,
    comms_lost BIGINT NOT NULL,
    missing_events BIGINT NOT NULL,
    manual_readings BIGINT NOT NULL,
    corrections BIGINT NOT NULL,
    metered NVARCHAR(MAX) NOT NULL,
    adjusted NVARCHAR(MAX) NOT NULL,
    replaced_at DATETIME2(6) NOT NULL
);
GO
CREATE INDEX ix_meter_hours_trail_key ON outpost.meter_hours_trail (edge, device, hour_start);
GO
-- One machine's gaming day: the sum of its hours, and how its meters reconcile with its events.
CREATE TABLE outpost.machine_days (
    edge NVARCHAR(64) NOT NULL,
    device NVARCHAR(64) NOT NULL,
    gaming_day DATE NOT NULL,
    site NVARCHAR(64) NOT NULL,
    currency VARCHAR(3) NOT NULL,
    minor_per_major BIGINT NOT NULL,
    denomination_minor BIGINT NOT NULL,
    coin_in_minor BIGINT NOT NULL,
    coin_out_minor BIGINT NOT NULL,
    jackpot_minor BIGINT NOT NULL,
    drop_minor BIGINT NOT NULL,
    tickets_in_cents BIGINT NOT NULL,
    tickets_out_cents BIGINT NOT NULL,
    net_win_minor BIGINT NOT NULL,
    games_played BIGINT NOT NULL,
    games_won BIGINT NOT NULL,
    handpays BIGINT NOT NULL,
    hours BIGINT NOT NULL,
    CONSTRAINT pk_machine_days PRIMARY KEY (edge, device, gaming_day)
);
GO
CREATE INDEX ix_machine_days_site ON outpost.machine_days (site, gaming_day);
GO
CREATE TABLE outpost.machine_days_trail (
    edge NVARCHAR(64) NOT NULL,
    device NVARCHAR(64) NOT NULL,
    gaming_day DATE NOT NULL,
    site NVARCHAR(64) NOT NULL,
    currency VARCHAR(3) NOT NULL,
    minor_per_major BIGINT NOT NULL,
    denomination_minor BIGINT NOT NULL,
    coin_in_minor BIGINT NOT NULL,
    coin_out_minor BIGINT NOT NULL,
    jackpot_minor BIGINT NOT NULL,
    drop_minor BIGINT NOT NULL,
    tickets_in_cents BIGINT NOT NULL,
    tickets_out_cents BIGINT NOT NULL,
    net_win_minor BIGINT NOT NULL,
    games_played BIGINT NOT NULL,
    games_won BIGINT NOT NULL,
    handpays BIGINT NOT NULL,
    hours BIGINT NOT NULL,
    replaced_at DATETIME2(6) NOT NULL
);
GO
CREATE INDEX ix_machine_days_trail_key ON outpost.machine_days_trail (edge, device, gaming_day);
GO
-- Each machine's gaming day reconciled: meters against the events the hub received.
-- verdict: balanced, discrepancy or unverifiable (meters reset in the window).
CREATE TABLE outpost.reconciliations (
    edge NVARCHAR(64) NOT NULL,
    device NVARCHAR(64) NOT NULL,
    gaming_day DATE NOT NULL,
    site NVARCHAR(64) NOT NULL,
    verdict VARCHAR(16) NOT NULL,
    checks NVARCHAR(MAX) NOT NULL,
    reasons NVARCHAR(MAX) NOT NULL,
    intervals BIGINT NOT NULL,
    CONSTRAINT pk_reconciliations PRIMARY KEY (edge, device, gaming_day)
);
GO
CREATE TABLE outpost.reconciliations_trail (
    edge NVARCHAR(64) NOT NULL,
    device NVARCHAR(64) NOT NULL,
    gaming_day DATE NOT NULL,
    site NVARCHAR(64) NOT NULL,
    verdict VARCHAR(16) NOT NULL,
    checks NVARCHAR(MAX) NOT NULL,
    reasons NVARCHAR(MAX) NOT NULL,
    intervals BIGINT NOT NULL,
    replaced_at DATETIME2(6) NOT NULL
);
GO
-- Each machine's latest reading of each meter (as the machine counts it: credits, cents, counts).
CREATE TABLE outpost.machine_meters (
    edge NVARCHAR(64) NOT NULL,
    device NVARCHAR(64) NOT NULL,
    meter_code BIGINT NOT NULL,
    meter VARCHAR(64) NOT NULL,
    value BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    CONSTRAINT pk_machine_meters PRIMARY KEY (edge, device, meter_code)
);
GO
-- Sessions the machine reported itself (9E … 9F), once ended; meters are the differences.
CREATE TABLE outpost.machine_sessions (
    edge NVARCHAR(64) NOT NULL,
    device NVARCHAR(64) NOT NULL,
    opened_seq BIGINT NOT NULL,
    opened_at DATETIME2(6) NOT NULL,
    closed_at DATETIME2(6) NOT NULL,
    currency VARCHAR(3) NOT NULL,
    coin_in_minor BIGINT NOT NULL,
    coin_out_minor BIGINT NOT NULL,
    games_played BIGINT NOT NULL,
    CONSTRAINT pk_machine_sessions PRIMARY KEY (edge, device, opened_seq)
);
GO
-- Handpays: pending when the machine reported one (LP 1B), reset when it reported it paid (52).
CREATE TABLE outpost.handpays (
    edge NVARCHAR(64) NOT NULL,
    device NVARCHAR(64) NOT NULL,
    seq BIGINT NOT NULL,
    state VARCHAR(16) NOT NULL,
    credits BIGINT NOT NULL,
    currency VARCHAR(3) NOT NULL,
    amount_minor BIGINT NOT NULL,
    pending_at DATETIME2(6) NOT NULL,
    reset_at DATETIME2(6) NULL,
    reset_seq BIGINT NULL,
    CONSTRAINT pk_handpays PRIMARY KEY (edge, device, seq)
);
GO
-- Readings of a machine's meters entered by hand (its link was down), and their corrections:
-- who, when and why. Never changed once written.
CREATE TABLE outpost.manual_readings (
    id BIGINT NOT NULL,
    edge NVARCHAR(64) NOT NULL,
    device NVARCHAR(64) NOT NULL,
    read_at DATETIME2(6) NOT NULL,
    entered_at DATETIME2(6) NOT NULL,
    entered_by NVARCHAR(128) NOT NULL,
    reason NVARCHAR(MAX) NOT NULL,
    corrects BIGINT NULL,
    meters NVARCHAR(MAX) NOT NULL,
    CONSTRAINT pk_manual_readings PRIMARY KEY (id)
);
GO
-- A machine's gaming day in money (major units), with its reconciliation.
CREATE VIEW outpost.machine_day AS
SELECT d.site, d.edge, d.device, d.gaming_day, d.currency,
    CAST(d.coin_in_minor AS DECIMAL(19, 4)) / d.minor_per_major AS coin_in,
    CAST(d.coin_out_minor AS DECIMAL(19, 4)) / d.minor_per_major AS coin_out,
    CAST(d.jackpot_minor AS DECIMAL(19, 4)) / d.minor_per_major AS jackpot,
    CAST(d.drop_minor AS DECIMAL(19, 4)) / d.minor_per_major AS [drop],
    CAST(d.net_win_minor AS DECIMAL(19, 4)) / d.minor_per_major AS net_win,
    d.games_played, d.games_won, d.handpays, d.hours,
    r.verdict
FROM outpost.machine_days AS d
LEFT JOIN outpost.reconciliations AS r
    ON r.edge = d.edge AND r.device = d.device AND r.gaming_day = d.gaming_day;
GO
-- A site's gaming day: its machines summed, in money.
CREATE VIEW outpost.site_day AS
SELECT d.site, d.gaming_day, d.currency,
    COUNT(*) AS machines,
    SUM(CAST(d.coin_in_minor AS DECIMAL(19, 4)) / d.minor_per_major) AS coin_in,
    SUM(CAST(d.coin_out_minor AS DECIMAL(19, 4)) / d.minor_per_major) AS coin_out,
    SUM(CAST(d.jackpot_minor AS DECIMAL(19, 4)) / d.minor_per_major) AS jackpot,
    SUM(CAST(d.drop_minor AS DECIMAL(19, 4)) / d.minor_per_major) AS [drop],
    SUM(CAST(d.net_win_minor AS DECIMAL(19, 4)) / d.minor_per_major) AS net_win,
    SUM(d.games_played) AS games_played,
    SUM(d.handpays) AS handpays
FROM outpost.machine_days AS d
GROUP BY d.site, d.gaming_day, d.currency;
GO
-- Every machine on its site's latest gaming day: the floor today.
CREATE VIEW outpost.floor_today AS
SELECT m.*
FROM outpost.machine_day AS m
WHERE m.gaming_day = (
    SELECT MAX(d.gaming_day) FROM outpost.machine_days AS d WHERE d.site = m.site
);
GO
-- Machine days whose meters and events disagree now (a correction that balances one removes it).
CREATE VIEW outpost.discrepancies_open AS
SELECT r.site, r.edge, r.device, r.gaming_day, r.checks, r.reasons, r.intervals
FROM outpost.reconciliations AS r
WHERE r.verdict = 'discrepancy';
