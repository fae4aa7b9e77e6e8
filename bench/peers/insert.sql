-- pgbench script of the libpq writer: one notification per transaction (autocommit).
-- bench_n is unique (user = n % users + 1, every tenth row is an "event", which all three
-- systems skip); bench_ts is the insert's clock_timestamp() in microseconds, the start of
-- the commit-to-frame latency (so it includes the commit's WAL flush, the same for all).
INSERT INTO api_notification (user_id, type, title, message, is_read, created_at, extra)
SELECT s.n % :users + 1, CASE WHEN s.n % 10 = 9 THEN 'event' ELSE 'like' END, 'bench',
	'someone liked your post', false, now(),
	jsonb_build_object('bench_n', s.n,
		'bench_ts', (extract(epoch FROM clock_timestamp()) * 1000000)::bigint)
FROM (SELECT nextval('bench_n') AS n) s;
