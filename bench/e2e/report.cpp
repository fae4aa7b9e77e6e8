/*
 * e2e-report: figures for one range of benchmark rows [from, to) from the
 * shared file (shared.hpp), as one line of key=value pairs for run.sh.
 *
 *   e2e-report --shm=FILE --from=K --to=K [--label=NAME]
 *
 * Per delivery (row x tab of its user):
 *   commit-to-frame   = receive time - time the inserter's COMMIT returned.
 *                       The ring is written after the WAL flush (XACT_EVENT_COMMIT),
 *                       so this is latency from the moment the app knows its row is
 *                       committed; a frame can beat the COMMIT reply to the inserter,
 *                       which shows as a small negative value.
 *   send-to-frame     = receive time - time the INSERT was sent (in the row):
 *                       adds the INSERT's execution and the commit's WAL flush.
 * expected = rows sent in the range x tabs; lost = expected - received;
 * duplicates = extra receipts of a row on a socket that already had it.
 * The delivery rate is received / (last receive - first send): a client or
 * daemon that falls behind stretches the denominator.
 */
#include "shared.hpp"

#include <algorithm>
#include <string>
#include <vector>

namespace
{

const char *
arg(int argc, char **argv, const char *name, const char *dflt)
{
	size_t l = strlen(name);
	for (int i = 1; i < argc; i++)
		if (strncmp(argv[i], name, l) == 0 && argv[i][l] == '=')
			return argv[i] + l + 1;
	return dflt;
}

double
pct(const std::vector<int64_t> &v, double p)
{
	if (v.empty())
		return 0;
	size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
	return static_cast<double>(v[i]) / 1e6;
}

} // namespace

int
main(int argc, char **argv)
{
	const char *shm_path = arg(argc, argv, "--shm", nullptr);
	uint64_t from = strtoull(arg(argc, argv, "--from", "0"), nullptr, 10);
	uint64_t to = strtoull(arg(argc, argv, "--to", "0"), nullptr, 10);
	std::string label = arg(argc, argv, "--label", "range");
	e2e::Shared sh;
	if (!shm_path || !sh.open(shm_path, false))
		return 2;
	to = std::min<uint64_t>(to, sh.h->capacity);
	const uint64_t tabs = sh.h->tabs;

	std::vector<int64_t> c2f, s2f;
	/* The first and the last tenth of the range (by row number, i.e. send order): a latency that
	 * grows while the rate stays the same shows a cost that grows with the table. */
	std::vector<int64_t> c2f_first, c2f_last;
	const uint64_t tenth = (to > from ? to - from : 0) / 10;
	uint64_t rows = 0, unacked = 0, expected = 0, received = 0, dups = 0;
	int64_t first_send = INT64_MAX, last_send = 0, last_recv = 0;
	for (uint64_t k = from; k < to; k++)
	{
		int64_t sent = sh.send_ns[k];
		if (!sent)
			continue; /* never sent (the inserter stopped early) */
		rows++;
		first_send = std::min(first_send, sent);
		last_send = std::max(last_send, sent);
		int64_t acked = sh.ack_ns[k];
		if (!acked)
			unacked++;
		for (uint64_t t = 0; t < tabs; t++)
		{
			expected++;
			uint64_t slot = k * tabs + t;
			uint8_t n = sh.seen[slot];
			if (!n)
				continue;
			received++;
			dups += n - 1u;
			int64_t r = sh.recv_ns[slot];
			last_recv = std::max(last_recv, r);
			s2f.push_back(r - sent);
			if (acked)
			{
				c2f.push_back(r - acked);
				if (k < from + tenth)
					c2f_first.push_back(r - acked);
				else if (k >= to - tenth)
					c2f_last.push_back(r - acked);
			}
		}
	}
	std::sort(c2f.begin(), c2f.end());
	std::sort(s2f.begin(), s2f.end());
	std::sort(c2f_first.begin(), c2f_first.end());
	std::sort(c2f_last.begin(), c2f_last.end());
	double send_secs = rows > 1 ? (last_send - first_send) / 1e9 : 0;
	double span_secs = received ? (last_recv - first_send) / 1e9 : 0;
	const e2e::ClientCounters &c = sh.h->c;
	printf("report label=%s rows=%llu unacked=%llu expected=%llu received=%llu lost=%llu "
		   "duplicates=%llu offered_per_s=%.0f delivered_per_s=%.0f "
		   "c2f_ms_p50=%.3f c2f_ms_p90=%.3f c2f_ms_p99=%.3f c2f_ms_p999=%.3f c2f_ms_max=%.3f "
		   "c2f_ms_min=%.3f s2f_ms_p50=%.3f s2f_ms_p99=%.3f s2f_ms_max=%.3f "
		   "c2f_ms_p50_first10=%.3f c2f_ms_p99_first10=%.3f c2f_ms_p50_last10=%.3f "
		   "c2f_ms_p99_last10=%.3f "
		   "sockets_open=%llu closes=%llu wrong_user=%llu resyncs=%llu no_count=%llu\n",
		   label.c_str(), (unsigned long long) rows, (unsigned long long) unacked,
		   (unsigned long long) expected, (unsigned long long) received,
		   (unsigned long long) (expected - received), (unsigned long long) dups,
		   send_secs > 0 ? rows * tabs / send_secs : 0.0,
		   span_secs > 0 ? received / span_secs : 0.0, pct(c2f, 0.50), pct(c2f, 0.90),
		   pct(c2f, 0.99), pct(c2f, 0.999), c2f.empty() ? 0.0 : c2f.back() / 1e6,
		   c2f.empty() ? 0.0 : c2f.front() / 1e6, pct(s2f, 0.50), pct(s2f, 0.99),
		   s2f.empty() ? 0.0 : s2f.back() / 1e6, pct(c2f_first, 0.50), pct(c2f_first, 0.99),
		   pct(c2f_last, 0.50), pct(c2f_last, 0.99), (unsigned long long) c.sockets_open.load(),
		   (unsigned long long) c.closes.load(), (unsigned long long) c.wrong_user.load(),
		   (unsigned long long) c.resyncs.load(), (unsigned long long) c.no_count.load());
	return 0;
}
