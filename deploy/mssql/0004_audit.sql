-- Outpost schema, migration 4: the people's steps on money (handpays verified, approved and paid;
-- drop boxes counted) and one audit log of who did what, when, from every record that says so.
-- Applied by `outpost-hub mssql migrate` in one transaction with its row in outpost.schema_version.
-- Batches are separated by lines holding only GO. Times are UTC.

-- A handpay's workflow: verified by an attendant, approved by a supervisor, paid (LP 94 reset).
CREATE TABLE outpost.handpay_steps (
    edge NVARCHAR(64) NOT NULL,
    device NVARCHAR(64) NOT NULL,
    seq BIGINT NOT NULL,
    verified_by NVARCHAR(128) NULL,
    verified_at DATETIME2(6) NULL,
    approved_by NVARCHAR(128) NULL,
    approved_at DATETIME2(6) NULL,
    paid_by NVARCHAR(128) NULL,
    paid_at DATETIME2(6) NULL,
    reset_command NVARCHAR(64) NULL,
    notes NVARCHAR(MAX) NOT NULL,
    CONSTRAINT pk_handpay_steps PRIMARY KEY (edge, device, seq)
);
GO
-- What the count room found in a machine's drop box for a gaming day: every entry, corrections
-- beside what they correct (the latest entry is the count).
CREATE TABLE outpost.counted_drops (
    edge NVARCHAR(64) NOT NULL,
    device NVARCHAR(64) NOT NULL,
    gaming_day DATE NOT NULL,
    entry BIGINT NOT NULL,
    currency VARCHAR(3) NOT NULL,
    amount_minor BIGINT NOT NULL,
    counted_by NVARCHAR(128) NOT NULL,
    counted_at DATETIME2(6) NOT NULL,
    note NVARCHAR(MAX) NOT NULL,
    CONSTRAINT pk_counted_drops PRIMARY KEY (edge, device, gaming_day, entry)
);
GO
-- Who did what, when: commands, alert acknowledgements, readings entered by hand, handpay steps,
-- drop counts, player sessions and guest visits, newest last.
CREATE VIEW outpost.audit_log AS
SELECT c.created_at AS at, c.issuer AS who, 'command ' + c.op AS action, c.edge, c.device,
    c.status AS detail
FROM outpost.commands AS c
UNION ALL
SELECT a.acknowledged_at, a.acknowledged_by, 'acknowledge alert ' + a.[rule], a.edge, a.device,
    a.acknowledged_note
FROM outpost.alerts AS a
WHERE a.acknowledged_by IS NOT NULL
UNION ALL
SELECT m.entered_at, m.entered_by, 'enter meters by hand', m.edge, m.device, m.reason
FROM outpost.manual_readings AS m
UNION ALL
SELECT h.verified_at, h.verified_by, 'verify handpay', h.edge, h.device, NULL
FROM outpost.handpay_steps AS h
WHERE h.verified_by IS NOT NULL
UNION ALL
SELECT h.approved_at, h.approved_by, 'approve handpay', h.edge, h.device, NULL
FROM outpost.handpay_steps AS h
WHERE h.approved_by IS NOT NULL
UNION ALL
SELECT h.paid_at, h.paid_by, 'pay handpay', h.edge, h.device, h.reset_command
FROM outpost.handpay_steps AS h
WHERE h.paid_by IS NOT NULL
UNION ALL
SELECT d.counted_at, d.counted_by, 'count drop', d.edge, d.device, d.note
FROM outpost.counted_drops AS d
UNION ALL
SELECT s.opened_at, s.opened_by, 'open player session', s.edge, s.device, s.player
FROM outpost.player_sessions AS s
UNION ALL
SELECT s.closed_at, s.closed_by, 'close player session', s.edge, s.device, s.player
FROM outpost.player_sessions AS s
WHERE s.closed_by IS NOT NULL
UNION ALL
SELECT v.created_at, v.created_by, 'create guest visit', N'', N'', v.guest_name
FROM outpost.guest_visits AS v
UNION ALL
SELECT v.updated_at, v.cancelled_by, 'cancel guest visit', N'', N'', v.guest_name
FROM outpost.guest_visits AS v
WHERE v.cancelled_by IS NOT NULL;
