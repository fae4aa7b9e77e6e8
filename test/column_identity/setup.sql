-- test/column_identity/setup.sql: registrations whose attribute numbers do not survive a
-- dump/restore (a dropped column before the user column) or differ between a partitioned
-- table and one of its partitions (attached with another column order).  Runs at 0.1 or 0.2.
\set ON_ERROR_STOP on
CREATE TABLE api_notification (
    id       bigserial PRIMARY KEY,
    legacy   integer,
    user_id  integer NOT NULL,
    type     varchar(50) NOT NULL,
    title    text NOT NULL,
    is_read  boolean NOT NULL DEFAULT false
);
-- Dropped: a restored table has no such column, and every later attribute number shifts.
ALTER TABLE api_notification DROP COLUMN legacy;
SELECT livenotify.register('api_notification', read_column => 'is_read');
INSERT INTO livenotify.rules VALUES ('api_notification', 'digest', 'skip');

CREATE TABLE part_notification (
    id      bigserial,
    user_id integer NOT NULL,
    type    text NOT NULL,
    secret  text NOT NULL
) PARTITION BY LIST (user_id);
CREATE TABLE part_7 PARTITION OF part_notification FOR VALUES IN (7);
CREATE TABLE part_99 (junk integer, secret text NOT NULL, type text NOT NULL,
                      user_id integer NOT NULL, id bigint NOT NULL);
ALTER TABLE part_99 DROP COLUMN junk;
ALTER TABLE part_notification ATTACH PARTITION part_99 FOR VALUES IN (99);
SELECT livenotify.register('part_notification');

-- Every trigger fires once before the move (at 0.1 too, with the 0.2 library installed: the
-- update suite runs this file in a database created at 0.1).
INSERT INTO api_notification (user_id, type, title) VALUES (5, 'like', 'gone');
UPDATE api_notification SET is_read = true WHERE user_id = 5;
DELETE FROM api_notification WHERE user_id = 5;
TRUNCATE api_notification;

-- History: catch-up must give these back to their users after the move.
INSERT INTO api_notification (user_id, type, title) VALUES (7, 'like', 'old for 7'),
                                                          (99, 'like', 'old for 99');
INSERT INTO part_notification (user_id, type, secret) VALUES (7, 'like', 'old secret of 7'),
                                                            (99, 'like', 'old secret of 99');
