-- pgbench script of the writer-TPS passes: one notification per autocommit transaction, the
-- same rows the libpq writer (writer.cpp) inserts in the latency runs: bench_n unique
-- (user = n % users + 1, every tenth row an "event", a type all three systems skip), bench_ts
-- the INSERT's clock_timestamp() in microseconds.
INSERT INTO api_notification (user_id, type, title, message, is_read, created_at, extra)
SELECT s.n % :users + 1, CASE WHEN s.n % 10 = 9 THEN 'event' ELSE 'like' END, 'bench',
	'someone liked your post', false, now(),
	jsonb_build_object('bench_n', s.n,
		'bench_ts', (extract(epoch FROM clock_timestamp()) * 1000000)::bigint)
FROM (SELECT nextval('bench_n') AS n) s;
