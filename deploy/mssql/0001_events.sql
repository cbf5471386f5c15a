-- Outpost schema, migration 1: every event the hub committed, one row per (edge, seq).
-- Applied by `outpost-hub mssql migrate` in one transaction with its row in outpost.schema_version.
-- Batches are separated by lines holding only GO.

CREATE TABLE outpost.events (
    edge NVARCHAR(64) NOT NULL,
    seq BIGINT NOT NULL,
    device NVARCHAR(64) NOT NULL,
    class VARCHAR(16) NOT NULL,
    type VARCHAR(64) NOT NULL,
    happened_at DATETIME2(6) NOT NULL,
    received_at DATETIME2(6) NOT NULL,
    body NVARCHAR(MAX) NOT NULL,
    CONSTRAINT pk_events PRIMARY KEY (edge, seq)
);
GO
CREATE INDEX ix_events_device_time ON outpost.events (edge, device, happened_at);
GO
CREATE INDEX ix_events_type_time ON outpost.events (type, happened_at);
GO
-- Money movements of the last day, newest first: what a cage or finance dashboard starts from.
CREATE VIEW outpost.money_events_today AS
SELECT edge, seq, device, type, happened_at, body
FROM outpost.events
WHERE class = 'money' AND happened_at >= DATEADD(day, -1, SYSUTCDATETIME());
