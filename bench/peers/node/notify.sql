-- The Node bridge's capture: the usual "notify on insert" trigger.  Skipped types are
-- filtered here so the bridge delivers the same rows as the seed signal and livenotify.
-- pg_notify payloads are limited to 8000 bytes: larger rows fail the INSERT (NOTIFY's rule);
-- the benchmark's rows are small.
CREATE OR REPLACE FUNCTION bench_notify_notification() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.type NOT IN ('event', 'message') THEN
		PERFORM pg_notify('notifications', row_to_json(NEW)::text);
	END IF;
	RETURN NEW;
END;
$$;

DROP TRIGGER IF EXISTS bench_notify_notification ON api_notification;
CREATE TRIGGER bench_notify_notification AFTER INSERT ON api_notification
	FOR EACH ROW EXECUTE FUNCTION bench_notify_notification();
