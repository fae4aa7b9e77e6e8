--
-- rules: livenotify.rules (source, type, action) is edited with plain DML.  A change is
-- seen by the changing session from its next statement, and by every session from its next
-- transaction (the cross-session case is in test/isolation/specs/rules_reload.spec).
-- A type without a rule is delivered; type '*' sets the source's default.
--
-- Errors show their message, DETAIL and HINT; not the CONTEXT (line numbers of internals).
\set SHOW_CONTEXT never
SELECT last_seq AS base FROM livenotify.position() \gset

-- The rules setup left: the seed app's skipped types.
SELECT type, action FROM livenotify.rules WHERE source = 'api_notification' ORDER BY type;

-- A type without a rule is delivered.
INSERT INTO api_notification (user_id, type, title, message) VALUES (1, 'like', 'r1', '');
-- A skipped type is not.
INSERT INTO api_notification (user_id, type, title, message) VALUES (1, 'event', 'r2', '');

-- A new skip rule applies from the next statement.
INSERT INTO livenotify.rules VALUES ('api_notification', 'like', 'skip');
INSERT INTO api_notification (user_id, type, title, message) VALUES (1, 'like', 'r3', '');

-- Turning a skipped type into a delivered one.
UPDATE livenotify.rules SET action = 'deliver'
 WHERE source = 'api_notification' AND type = 'event';
INSERT INTO api_notification (user_id, type, title, message) VALUES (1, 'event', 'r4', '');

-- Deleting a rule brings back the default (deliver).
DELETE FROM livenotify.rules WHERE source = 'api_notification' AND type = 'like';
INSERT INTO api_notification (user_id, type, title, message) VALUES (1, 'like', 'r5', '');

-- '*' skips every type that has no rule of its own...
INSERT INTO livenotify.rules VALUES ('api_notification', '*', 'skip');
INSERT INTO api_notification (user_id, type, title, message) VALUES (1, 'comment', 'r6', '');
-- ...while a type's own rule still wins.
INSERT INTO api_notification (user_id, type, title, message) VALUES (1, 'event', 'r7', '');

-- Inside a transaction, a change applies from the next statement of that transaction...
BEGIN;
DELETE FROM livenotify.rules WHERE source = 'api_notification' AND type = '*';
INSERT INTO api_notification (user_id, type, title, message) VALUES (1, 'comment', 'r8', '');
COMMIT;
-- ...and a rolled-back change is forgotten.
BEGIN;
INSERT INTO livenotify.rules VALUES ('api_notification', 'comment', 'skip');
ROLLBACK;
INSERT INTO api_notification (user_id, type, title, message) VALUES (1, 'comment', 'r9', '');

-- Only 'skip' and 'deliver' are actions.
INSERT INTO livenotify.rules VALUES ('api_notification', 'comment', 'drop');
-- One rule per (source, type).
INSERT INTO livenotify.rules VALUES ('api_notification', 'event', 'skip');

-- Delivered: r1, r4, r5, r7, r8, r9 (the skipped ones, unread, queued unread_counts).
SELECT payload::json->>'title' AS title, payload::json->>'type' AS type
  FROM livenotify.read(:base, 100, 10) WHERE kind = 'notification' ORDER BY seq;

-- Back to the seed app's rules for the tests that follow.
DELETE FROM livenotify.rules WHERE source = 'api_notification';
INSERT INTO livenotify.rules VALUES ('api_notification', 'event', 'skip'),
                                    ('api_notification', 'message', 'skip');
SELECT type, action FROM livenotify.rules WHERE source = 'api_notification' ORDER BY type;
