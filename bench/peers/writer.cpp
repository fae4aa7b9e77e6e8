/*
 * writer: the libpq inserter of bench/peers/run.sh.
 *
 * Inserts Django-shaped notification rows at a fixed rate (row i is due at start + i/rate,
 * evenly spaced) over several connections, one autocommit INSERT per transaction, and records
 * for every row how long its INSERT took until the server acknowledged the COMMIT.  The client
 * (wsload) records how long after the same bench_ts its frame arrived, so the report gets
 * commit-to-frame latency per row as (frame - bench_ts) - (ack - bench_ts).
 *
 * Each row carries in `extra`: bench_n (unique; user = n % users + 1; every tenth row is an
 * "event", a type all three systems skip) and bench_ts (microseconds since the epoch, taken
 * when the INSERT is sent: time a row waits for a free connection is the writer's, not the
 * system's, and is reported as lag instead).
 *
 *   writer --conninfo 'host=... dbname=app' --rate 1000 --seconds 8 --conns 4 --users 500
 *          --out PREFIX
 * Writes PREFIX.ack ("n ack_us" per row) and prints one JSON line: rows, seconds, achieved
 * rate, mean and max INSERT+COMMIT ms, rows sent more than 5 ms after they were due.
 */
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <libpq-fe.h>
#include <poll.h>
#include <string>
#include <algorithm>
#include <vector>

namespace
{

int64_t
now_us()
{
	timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return int64_t(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

struct Slot
{
	PGconn *conn = nullptr;
	bool busy = false;
	int64_t n = 0;
	int64_t sent = 0;
};

} // namespace

int
main(int argc, char **argv)
{
	std::string conninfo, out;
	double rate = 0, seconds = 8;
	int conns = 4, users = 0;
	for (int i = 1; i + 1 < argc; i += 2)
	{
		std::string k = argv[i];
		const char *v = argv[i + 1];
		if (k == "--conninfo")
			conninfo = v;
		else if (k == "--rate")
			rate = atof(v);
		else if (k == "--seconds")
			seconds = atof(v);
		else if (k == "--conns")
			conns = atoi(v);
		else if (k == "--users")
			users = atoi(v);
		else if (k == "--out")
			out = v;
		else
		{
			fprintf(stderr, "writer: unknown option %s\n", k.c_str());
			return 2;
		}
	}
	if (rate <= 0 || users <= 0 || out.empty() || conns <= 0)
	{
		fprintf(stderr, "usage: writer --conninfo C --rate R --seconds S --conns K --users N "
						"--out PREFIX\n");
		return 2;
	}
	std::vector<Slot> slots(conns);
	for (Slot &s : slots)
	{
		s.conn = PQconnectdb(conninfo.c_str());
		if (PQstatus(s.conn) != CONNECTION_OK)
		{
			fprintf(stderr, "writer: %s", PQerrorMessage(s.conn));
			return 1;
		}
		PQsetnonblocking(s.conn, 1);
	}

	const int64_t total = int64_t(rate * seconds);
	std::vector<int64_t> ack(total, -1);
	int64_t next = 0, done = 0, late = 0;
	const int64_t start = now_us() + 100000;
	char sql[512];
	std::vector<pollfd> pfds(conns);

	const int64_t end = start + int64_t(seconds * 1e6);
	int64_t sent_rows = total;
	while (done < sent_rows)
	{
		int64_t now = now_us();
		/* A saturated system gets no more rows after the deadline: the achieved rate says it. */
		if (now >= end && next < total)
			sent_rows = next;
		/* Send every row that is due on a free connection; a row with none free waits. */
		for (Slot &s : slots)
		{
			if (next >= sent_rows)
				break;
			int64_t due = start + int64_t(double(next) * 1e6 / rate);
			if (due > now)
				break;
			if (s.busy)
				continue;
			if (now - due > 5000)
				late++;
			int64_t n = next++;
			snprintf(sql, sizeof sql,
					 "INSERT INTO api_notification (user_id, type, title, message, is_read, "
					 "created_at, extra) VALUES (%d, '%s', 'bench', 'someone liked your post', "
					 "false, now(), '{\"bench_n\": %lld, \"bench_ts\": %lld}')",
					 int(n % users) + 1, n % 10 == 9 ? "event" : "like", (long long) n,
					 (long long) now_us());
			s.n = n;
			s.sent = now_us();
			// The text above carries bench_ts; sent is re-read after formatting so the two
			// differ by the snprintf alone.
			if (!PQsendQuery(s.conn, sql))
			{
				fprintf(stderr, "writer: %s", PQerrorMessage(s.conn));
				return 1;
			}
			PQflush(s.conn);
			s.busy = true;
		}
		/* Wait for an acknowledgement or the next due time, whichever comes first. */
		int64_t wait_us = 50000;
		if (next < sent_rows)
		{
			int64_t due = start + int64_t(double(next) * 1e6 / rate);
			wait_us = due - now_us();
			if (wait_us < 0)
				wait_us = 0;
		}
		for (int k = 0; k < conns; k++)
		{
			pfds[k].fd = slots[k].busy ? PQsocket(slots[k].conn) : -1;
			pfds[k].events = POLLIN;
			pfds[k].revents = 0;
		}
		/* ppoll, not poll: at 5,000 rows/s rows are 200 us apart, and poll's millisecond
		 * timeout would either send them late or spin a core the systems need. */
		timespec ts{time_t(wait_us / 1000000), long(wait_us % 1000000) * 1000};
		if (ppoll(pfds.data(), nfds_t(conns), &ts, nullptr) < 0 && errno != EINTR)
		{
			perror("poll");
			return 1;
		}
		for (int k = 0; k < conns; k++)
		{
			Slot &s = slots[k];
			if (!s.busy || !(pfds[k].revents & (POLLIN | POLLERR | POLLHUP)))
				continue;
			if (!PQconsumeInput(s.conn))
			{
				fprintf(stderr, "writer: %s", PQerrorMessage(s.conn));
				return 1;
			}
			if (PQisBusy(s.conn))
				continue;
			int64_t t = now_us();
			PGresult *r;
			while ((r = PQgetResult(s.conn)) != nullptr)
			{
				if (PQresultStatus(r) != PGRES_COMMAND_OK)
				{
					fprintf(stderr, "writer: %s", PQresultErrorMessage(r));
					return 1;
				}
				PQclear(r);
			}
			ack[s.n] = t - s.sent;
			s.busy = false;
			done++;
		}
	}
	const double elapsed = double(std::min(now_us(), end) - start) / 1e6;
	for (Slot &s : slots)
		PQfinish(s.conn);

	FILE *f = fopen((out + ".ack").c_str(), "w");
	if (!f)
	{
		perror("fopen");
		return 1;
	}
	double sum = 0;
	int64_t mx = 0;
	for (int64_t n = 0; n < sent_rows; n++)
	{
		fprintf(f, "%lld %lld\n", (long long) n, (long long) ack[n]);
		sum += double(ack[n]);
		if (ack[n] > mx)
			mx = ack[n];
	}
	fclose(f);
	printf("{\"rows\": %lld, \"seconds\": %.3f, \"achieved_rate\": %.1f, \"insert_ms\": %.3f, "
		   "\"insert_max_ms\": %.3f, \"late\": %lld}\n",
		   (long long) sent_rows, elapsed, double(sent_rows) / elapsed,
		   sum / double(std::max<int64_t>(sent_rows, 1)) / 1000.0, double(mx) / 1000.0,
		   (long long) late);
	return 0;
}
