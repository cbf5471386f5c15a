-- Outpost schema, migration 3: what operators did and what the hub raised: alerts, commands,
-- guest visits and player sessions, each as it is now (the hub replaces a row when its record
-- changes); and the machines' transaction log as a view of the events.
-- Applied by `outpost-hub mssql migrate` in one transaction with its row in outpost.schema_version.
-- Batches are separated by lines holding only GO. Times are UTC.

-- Alerts the hub raised: firing, then resolved; acknowledged by whom, when and why.
CREATE TABLE outpost.alerts (
    id NVARCHAR(64) NOT NULL,
    [rule] NVARCHAR(64) NOT NULL,
    site NVARCHAR(64) NOT NULL,
    edge NVARCHAR(64) NOT NULL,
    device NVARCHAR(64) NOT NULL,
    detail NVARCHAR(MAX) NOT NULL,
    state VARCHAR(16) NOT NULL,
    fired_at DATETIME2(6) NOT NULL,
    resolved_at DATETIME2(6) NULL,
    acknowledged_by NVARCHAR(128) NULL,
    acknowledged_at DATETIME2(6) NULL,
    acknowledged_note NVARCHAR(MAX) NULL,
    CONSTRAINT pk_alerts PRIMARY KEY (id)
);
GO
CREATE INDEX ix_alerts_fired ON outpost.alerts (site, fired_at);
GO
-- Commands sent to devices, who issued them and their fate: the audit of what was done to a
-- machine or a TV (args and result as JSON).
CREATE TABLE outpost.commands (
    id NVARCHAR(64) NOT NULL,
    issuer NVARCHAR(128) NOT NULL,
    edge NVARCHAR(64) NOT NULL,
    device NVARCHAR(64) NOT NULL,
    kind VARCHAR(16) NOT NULL,
    op NVARCHAR(64) NOT NULL,
    args NVARCHAR(MAX) NOT NULL,
    created_at DATETIME2(6) NOT NULL,
    deadline_at DATETIME2(6) NOT NULL,
    status VARCHAR(16) NOT NULL,
    detail NVARCHAR(MAX) NULL,
    result NVARCHAR(MAX) NULL,
    updated_at DATETIME2(6) NOT NULL,
    CONSTRAINT pk_commands PRIMARY KEY (id)
);
GO
CREATE INDEX ix_commands_device ON outpost.commands (edge, device, created_at);
GO
-- Guest visits provisioned in HikCentral, their state and the last thing that happened.
CREATE TABLE outpost.guest_visits (
    id NVARCHAR(64) NOT NULL,
    guest_name NVARCHAR(256) NOT NULL,
    access_level NVARCHAR(64) NOT NULL,
    begin_at DATETIME2(6) NOT NULL,
    end_at DATETIME2(6) NOT NULL,
    state VARCHAR(32) NOT NULL,
    created_by NVARCHAR(128) NOT NULL,
    created_at DATETIME2(6) NOT NULL,
    person_code NVARCHAR(64) NOT NULL,
    person_id NVARCHAR(64) NULL,
    cancelled_by NVARCHAR(128) NULL,
    last_error NVARCHAR(MAX) NULL,
    last_note NVARCHAR(MAX) NULL,
    updated_at DATETIME2(6) NOT NULL,
    CONSTRAINT pk_guest_visits PRIMARY KEY (id)
);
GO
-- Player sessions: a card bound to a machine (POST …/session) until closed; meters are the
-- differences between the machine's readings at each end (NULL while open).
CREATE TABLE outpost.player_sessions (
    id NVARCHAR(64) NOT NULL,
    player NVARCHAR(128) NOT NULL,
    edge NVARCHAR(64) NOT NULL,
    device NVARCHAR(64) NOT NULL,
    opened_by NVARCHAR(128) NOT NULL,
    opened_at DATETIME2(6) NOT NULL,
    closed_by NVARCHAR(128) NULL,
    closed_at DATETIME2(6) NULL,
    currency VARCHAR(3) NOT NULL,
    coin_in_minor BIGINT NULL,
    coin_out_minor BIGINT NULL,
    games_played BIGINT NULL,
    CONSTRAINT pk_player_sessions PRIMARY KEY (id)
);
GO
CREATE INDEX ix_player_sessions_player ON outpost.player_sessions (player, opened_at);
GO
-- The machines' transaction log: every money event (bills, tickets, handpays, games), newest
-- last per machine.
CREATE VIEW outpost.transactions AS
SELECT e.edge, e.device, e.seq, e.type, e.happened_at, e.received_at, e.body
FROM outpost.events AS e
WHERE e.class = 'money';
GO
-- Alerts firing now, oldest first: what a floor supervisor's screen starts from.
CREATE VIEW outpost.alerts_firing AS
SELECT a.id, a.[rule], a.site, a.edge, a.device, a.detail, a.fired_at, a.acknowledged_by
FROM outpost.alerts AS a
WHERE a.state = 'firing';
