/*
 * e2e-insert: writes benchmark rows into api_notification at a fixed rate,
 * through libpq's asynchronous API on several connections, and records for
 * every row the time its INSERT was sent and the time its COMMIT was
 * acknowledged (shared.hpp).
 *
 *   e2e-insert --shm=FILE --conninfo=STR --from=K --count=N --rate=ROWS_PER_S
 *              [--batch=ROWS_PER_TX] [--conns=N] [--users=N]
 *
 * Each transaction is one autocommit INSERT of --batch rows, as a web app's
 * request or a worker's bulk_create would write them.  Transaction j is due at
 * start + j * batch / rate; it goes out on a free connection as soon as it is
 * due.  When every connection is still waiting for its commit the send is
 * late: that is counted (the database, not the pacing, is then the limit) and
 * the rate printed at the end is the achieved one, not the asked one.
 */
#include "shared.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <poll.h>
#include <string>
#include <vector>

namespace
{

struct Conn
{
	PGconn *pg = nullptr;
	bool busy = false;
	uint64_t k0 = 0, n = 0; /* rows of the transaction in flight */
	int64_t sent = 0;
};

const char *
arg(int argc, char **argv, const char *name, const char *dflt)
{
	size_t l = strlen(name);
	for (int i = 1; i < argc; i++)
		if (strncmp(argv[i], name, l) == 0 && argv[i][l] == '=')
			return argv[i] + l + 1;
	return dflt;
}

void
die(const char *what, PGconn *pg)
{
	fprintf(stderr, "e2e-insert: %s: %s\n", what, pg ? PQerrorMessage(pg) : "");
	exit(1);
}

} // namespace

int
main(int argc, char **argv)
{
	const char *shm_path = arg(argc, argv, "--shm", nullptr);
	const char *conninfo = arg(argc, argv, "--conninfo", "");
	uint64_t from = strtoull(arg(argc, argv, "--from", "0"), nullptr, 10);
	uint64_t count = strtoull(arg(argc, argv, "--count", "1000"), nullptr, 10);
	double rate = atof(arg(argc, argv, "--rate", "1000"));
	uint64_t batch = strtoull(arg(argc, argv, "--batch", "1"), nullptr, 10);
	int nconns = atoi(arg(argc, argv, "--conns", "16"));
	uint64_t users = strtoull(arg(argc, argv, "--users", "1000"), nullptr, 10);
	if (!shm_path || rate <= 0 || batch == 0 || nconns <= 0 || users == 0)
	{
		fprintf(stderr, "usage: e2e-insert --shm=FILE --conninfo=STR --from=K --count=N "
						"--rate=ROWS_PER_S [--batch=N] [--conns=N] [--users=N]\n");
		return 2;
	}
	e2e::Shared sh;
	if (!sh.open(shm_path, false))
		return 1;
	if (from + count > sh.h->capacity)
	{
		fprintf(stderr, "e2e-insert: rows %llu..%llu beyond the file's %llu\n",
				(unsigned long long) from, (unsigned long long) (from + count),
				(unsigned long long) sh.h->capacity);
		return 1;
	}

	std::vector<Conn> conns(static_cast<size_t>(nconns));
	for (auto &c : conns)
	{
		c.pg = PQconnectdb(conninfo);
		if (PQstatus(c.pg) != CONNECTION_OK)
			die("connect", c.pg);
		/* Prepared once: each transaction then costs no parse/plan of a fresh statement. */
		std::string sql =
			"INSERT INTO api_notification (user_id, type, title, message) SELECT * FROM unnest("
			"$1::int[], $2::text[], $3::text[], $4::text[])";
		PGresult *r = PQprepare(c.pg, "ins", sql.c_str(), 4, nullptr);
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			die("prepare", c.pg);
		PQclear(r);
		if (PQsetnonblocking(c.pg, 1) != 0)
			die("nonblocking", c.pg);
	}

	const uint64_t ntx = (count + batch - 1) / batch;
	const double tx_interval_ns = 1e9 * static_cast<double>(batch) / rate;
	uint64_t next_tx = 0, done_tx = 0, late = 0, errors = 0;
	int64_t max_late_ns = 0;
	std::vector<int64_t> commit_ns;
	commit_ns.reserve(ntx);
	std::vector<pollfd> pfds(conns.size());
	std::string a_user, a_type, a_title, a_msg;
	const int64_t start = e2e::now_ns();

	while (done_tx < ntx)
	{
		int64_t now = e2e::now_ns();
		/* Send every transaction that is due, one per free connection. */
		while (next_tx < ntx)
		{
			int64_t due =
				start + static_cast<int64_t>(static_cast<double>(next_tx) * tx_interval_ns);
			if (due > now)
				break;
			auto free_conn =
				std::find_if(conns.begin(), conns.end(), [](const Conn &c) { return !c.busy; });
			if (free_conn == conns.end())
				break;
			Conn &c = *free_conn;
			if (now - due > 1000000)
				late++;
			max_late_ns = std::max(max_late_ns, now - due);
			c.k0 = from + next_tx * batch;
			c.n = std::min<uint64_t>(batch, from + count - c.k0);
			/* The send time goes into the row itself, so a client can see it without the join. */
			c.sent = e2e::now_ns();
			a_user = "{";
			a_type = "{";
			a_title = "{";
			a_msg = "{";
			for (uint64_t i = 0; i < c.n; i++)
			{
				uint64_t k = c.k0 + i;
				const char *sep = i ? "," : "";
				a_user += sep + std::to_string(e2e::user_of(k, users));
				a_type += sep;
				a_type += "like";
				a_title += sep + std::to_string(k) + ":" + std::to_string(c.sent);
				a_msg += sep;
				a_msg += "\"someone liked your post\"";
				sh.send_ns[k] = c.sent;
			}
			a_user += "}";
			a_type += "}";
			a_title += "}";
			a_msg += "}";
			const char *vals[4] = {a_user.c_str(), a_type.c_str(), a_title.c_str(), a_msg.c_str()};
			if (!PQsendQueryPrepared(c.pg, "ins", 4, vals, nullptr, nullptr, 0))
				die("send", c.pg);
			while (PQflush(c.pg) == 1)
				; /* a few hundred bytes: the socket buffer takes them at once */
			c.busy = true;
			next_tx++;
			now = e2e::now_ns();
		}

		/* Wait for a reply or the next due time, whichever is first. */
		int64_t wait_ns = -1;
		if (next_tx < ntx &&
			std::any_of(conns.begin(), conns.end(), [](const Conn &c) { return !c.busy; }))
		{
			int64_t due =
				start + static_cast<int64_t>(static_cast<double>(next_tx) * tx_interval_ns);
			wait_ns = std::max<int64_t>(0, due - e2e::now_ns());
		}
		for (size_t i = 0; i < conns.size(); i++)
			pfds[i] = {PQsocket(conns[i].pg), static_cast<short>(conns[i].busy ? POLLIN : 0), 0};
		struct timespec ts = {static_cast<time_t>(wait_ns / 1000000000),
							  static_cast<long>(wait_ns % 1000000000)};
		if (ppoll(pfds.data(), pfds.size(), wait_ns < 0 ? nullptr : &ts, nullptr) < 0 &&
			errno != EINTR)
			die("ppoll", nullptr);
		for (size_t i = 0; i < conns.size(); i++)
		{
			Conn &c = conns[i];
			if (!c.busy || !(pfds[i].revents & (POLLIN | POLLERR | POLLHUP)))
				continue;
			if (!PQconsumeInput(c.pg))
				die("consume", c.pg);
			if (PQisBusy(c.pg))
				continue;
			int64_t acked = e2e::now_ns();
			PGresult *r;
			while ((r = PQgetResult(c.pg)) != nullptr)
			{
				if (PQresultStatus(r) != PGRES_COMMAND_OK)
				{
					errors++;
					fprintf(stderr, "e2e-insert: %s", PQresultErrorMessage(r));
				}
				PQclear(r);
			}
			for (uint64_t j = 0; j < c.n; j++)
				sh.ack_ns[c.k0 + j] = acked;
			commit_ns.push_back(acked - c.sent);
			c.busy = false;
			done_tx++;
		}
	}
	int64_t end = e2e::now_ns();
	for (auto &c : conns)
		PQfinish(c.pg);

	std::sort(commit_ns.begin(), commit_ns.end());
	auto pct = [&](double p) {
		return commit_ns.empty() ? 0.0
								 : commit_ns[std::min(commit_ns.size() - 1,
													  static_cast<size_t>(p * commit_ns.size()))] /
									   1e6;
	};
	double secs = (end - start) / 1e9;
	/* One line of key=value pairs: run.sh reads it. */
	printf("insert rows=%llu tx=%llu secs=%.2f rate=%.0f asked=%.0f late_tx=%llu max_late_ms=%.1f "
		   "errors=%llu tx_ms_p50=%.2f tx_ms_p99=%.2f\n",
		   (unsigned long long) count, (unsigned long long) ntx, secs, count / secs, rate,
		   (unsigned long long) late, max_late_ns / 1e6, (unsigned long long) errors, pct(0.50),
		   pct(0.99));
	return errors ? 1 : 0;
}
