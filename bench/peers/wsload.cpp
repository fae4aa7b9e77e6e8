/*
 * wsload: the WebSocket load client of bench/peers/run.sh.
 *
 * Opens USERS x TABS sockets to one system (livenotifyd, the Node bridge or Daphne), then
 * records, for every text frame that carries a benchmark row, the time from the row's
 * "bench_ts" (microseconds since the epoch, set by the database when the row was inserted)
 * to the moment the frame was read, and which "bench_n" each socket saw (duplicates).
 *
 * One thread, epoll, no WebSocket library: the three servers are measured by the same
 * few hundred lines, so the client costs the same for each and stays far below them in CPU
 * (a Python client would compete with the server under test for the machine's 2 cores).
 *
 *   wsload --port P --path '/ws?user=%d' --users N --tabs 2 --out PREFIX [--connect-timeout S]
 *
 * Prints "READY <n>" once every socket is open and then "P <frames>" (unique benchmark
 * frames so far) every 500 ms, so the harness can wait for a backlog to drain; runs until
 * SIGTERM/SIGINT, then writes
 * PREFIX.sockets ("user tab unique dups closed" per socket) and PREFIX.lat ("bench_n
 * microseconds-since-bench_ts" per unique frame) and exits 0.  Exits 1 if the sockets cannot all be
 * opened.
 */
#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <unordered_set>
#include <utility>
#include <vector>

namespace
{

volatile sig_atomic_t stop_requested = 0;

void
on_signal(int)
{
	stop_requested = 1;
}

int64_t
now_us()
{
	timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return int64_t(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

enum class State
{
	Idle,
	Connecting,
	Handshake,
	Open,
	Closed
};

struct Conn
{
	int fd = -1;
	int user = 0;
	int tab = 0;
	State state = State::Idle;
	std::string in;	 // bytes read and not yet parsed
	std::string msg; // a fragmented message being assembled
	std::string out; // bytes waiting for the socket to accept them
	std::unordered_set<int64_t> seen;
	uint64_t dups = 0;
};

/*
 * The number after "key" in a JSON text, whatever spacing the server's serialiser used
 * (PostgreSQL's jsonb writes '"k": 1', JSON.stringify '"k":1').  -1 when absent.
 */
int64_t
find_number(const char *p, size_t len, const char *key)
{
	size_t klen = strlen(key);
	const char *end = p + len;
	const char *hit = static_cast<const char *>(memmem(p, len, key, klen));
	if (!hit)
		return -1;
	const char *q = hit + klen;
	while (q < end && (*q == ' ' || *q == ':' || *q == '"'))
		q++;
	if (q >= end || *q < '0' || *q > '9')
		return -1;
	int64_t v = 0;
	while (q < end && *q >= '0' && *q <= '9')
		v = v * 10 + (*q++ - '0');
	return v;
}

struct Load
{
	int port = 0;
	std::string path_template;
	int users = 0;
	int tabs = 2;
	int epfd = -1;
	std::vector<Conn> conns;
	std::vector<std::pair<int64_t, int64_t>> latencies; // (bench_n, frame time - bench_ts)
	uint64_t received = 0;								// unique benchmark frames, all sockets
	size_t next_to_start = 0;
	int in_flight = 0;
	int open = 0;
	int closed = 0;

	void start(size_t i);
	void on_event(size_t i, uint32_t events, int64_t t);
	void flush(Conn &c);
	void close_conn(Conn &c);
	void handle_frames(Conn &c, int64_t t);
	void on_message(Conn &c, const std::string &m, int64_t t);
	void send_frame(Conn &c, int opcode, const char *data, size_t len);
};

void
Load::start(size_t i)
{
	Conn &c = conns[i];
	c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (c.fd < 0)
	{
		perror("socket");
		exit(1);
	}
	int one = 1;
	setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	sockaddr_in a{};
	a.sin_family = AF_INET;
	a.sin_port = htons(port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int rc = connect(c.fd, reinterpret_cast<sockaddr *>(&a), sizeof a);
	if (rc < 0 && errno != EINPROGRESS)
	{
		perror("connect");
		exit(1);
	}
	char path[512];
	snprintf(path, sizeof path, path_template.c_str(), c.user);
	char req[1024];
	snprintf(req, sizeof req,
			 "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
			 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
			 "Sec-WebSocket-Version: 13\r\n\r\n",
			 path, port);
	c.out = req;
	c.state = State::Connecting;
	epoll_event ev{};
	ev.events = EPOLLIN | EPOLLOUT;
	ev.data.u64 = i;
	epoll_ctl(epfd, EPOLL_CTL_ADD, c.fd, &ev);
	in_flight++;
}

void
Load::flush(Conn &c)
{
	while (!c.out.empty())
	{
		ssize_t n = write(c.fd, c.out.data(), c.out.size());
		if (n < 0)
		{
			if (errno == EAGAIN || errno == EINTR)
				return;
			close_conn(c);
			return;
		}
		c.out.erase(0, size_t(n));
	}
}

void
Load::close_conn(Conn &c)
{
	if (c.state == State::Closed)
		return;
	if (c.state == State::Open)
		open--;
	else
		in_flight--;
	c.state = State::Closed;
	closed++;
	epoll_ctl(epfd, EPOLL_CTL_DEL, c.fd, nullptr);
	close(c.fd);
}

/* Client frames must be masked (RFC 6455 5.3); a zero mask keeps the payload as is. */
void
Load::send_frame(Conn &c, int opcode, const char *data, size_t len)
{
	if (len > 125)
		len = 125; // only control frames are sent, and those are at most 125 bytes
	c.out.push_back(char(0x80 | opcode));
	c.out.push_back(char(0x80 | len));
	c.out.append(4, '\0');
	c.out.append(data, len);
	flush(c);
}

void
Load::on_message(Conn &c, const std::string &m, int64_t t)
{
	int64_t n = find_number(m.data(), m.size(), "\"bench_n\"");
	if (n < 0)
		return; // hello, unread_count and the like: not part of the workload
	if (!c.seen.insert(n).second)
	{
		c.dups++;
		return;
	}
	int64_t ts = find_number(m.data(), m.size(), "\"bench_ts\"");
	received++;
	if (ts > 0)
		latencies.emplace_back(n, t - ts);
}

void
Load::handle_frames(Conn &c, int64_t t)
{
	size_t pos = 0;
	for (;;)
	{
		const unsigned char *p = reinterpret_cast<const unsigned char *>(c.in.data()) + pos;
		size_t avail = c.in.size() - pos;
		if (avail < 2)
			break;
		bool fin = p[0] & 0x80;
		int opcode = p[0] & 0x0f;
		bool masked = p[1] & 0x80;
		uint64_t len = p[1] & 0x7f;
		size_t hdr = 2;
		if (len == 126)
		{
			if (avail < 4)
				break;
			len = (uint64_t(p[2]) << 8) | p[3];
			hdr = 4;
		}
		else if (len == 127)
		{
			if (avail < 10)
				break;
			len = 0;
			for (int k = 0; k < 8; k++)
				len = (len << 8) | p[2 + k];
			hdr = 10;
		}
		if (masked)
			hdr += 4; // servers must not mask; tolerated, payload is not unmasked
		if (avail < hdr + len)
			break;
		const char *payload = reinterpret_cast<const char *>(p + hdr);
		switch (opcode)
		{
			case 0x0: // continuation
			case 0x1: // text
			case 0x2: // binary
				c.msg.append(payload, len);
				if (fin)
				{
					on_message(c, c.msg, t);
					c.msg.clear();
				}
				break;
			case 0x8: // close: count it, do not reconnect (a lost socket is lost frames)
				c.in.clear();
				close_conn(c);
				return;
			case 0x9: // ping: answer, or Daphne and livenotifyd drop the socket
				send_frame(c, 0xA, payload, len);
				break;
			default:
				break;
		}
		pos += hdr + len;
	}
	c.in.erase(0, pos);
}

void
Load::on_event(size_t i, uint32_t events, int64_t t)
{
	Conn &c = conns[i];
	if (c.state == State::Closed)
		return;
	if (c.state == State::Connecting && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
	{
		int err = 0;
		socklen_t l = sizeof err;
		getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &l);
		if (err)
		{
			fprintf(stderr, "wsload: connect user %d: %s\n", c.user, strerror(err));
			close_conn(c);
			return;
		}
		c.state = State::Handshake;
		flush(c);
		epoll_event ev{};
		ev.events = EPOLLIN;
		ev.data.u64 = i;
		epoll_ctl(epfd, EPOLL_CTL_MOD, c.fd, &ev);
	}
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	char buf[65536];
	for (;;)
	{
		ssize_t n = read(c.fd, buf, sizeof buf);
		if (n > 0)
		{
			c.in.append(buf, size_t(n));
			if (size_t(n) < sizeof buf)
				break;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		close_conn(c); // EOF or error
		return;
	}
	if (c.state == State::Handshake)
	{
		size_t e = c.in.find("\r\n\r\n");
		if (e == std::string::npos)
			return;
		if (c.in.compare(0, 12, "HTTP/1.1 101") != 0)
		{
			fprintf(stderr, "wsload: user %d refused: %.*s\n", c.user, int(c.in.find("\r\n")),
					c.in.c_str());
			close_conn(c);
			return;
		}
		c.in.erase(0, e + 4);
		c.state = State::Open;
		in_flight--;
		open++;
	}
	if (c.state == State::Open)
		handle_frames(c, t);
}

} // namespace

int
main(int argc, char **argv)
{
	Load L;
	std::string out;
	int connect_timeout_s = 60;
	int max_in_flight = 64;
	for (int i = 1; i + 1 < argc; i += 2)
	{
		std::string k = argv[i];
		const char *v = argv[i + 1];
		if (k == "--port")
			L.port = atoi(v);
		else if (k == "--path")
			L.path_template = v;
		else if (k == "--users")
			L.users = atoi(v);
		else if (k == "--tabs")
			L.tabs = atoi(v);
		else if (k == "--out")
			out = v;
		else if (k == "--connect-timeout")
			connect_timeout_s = atoi(v);
		else if (k == "--max-in-flight")
			max_in_flight = atoi(v);
		else
		{
			fprintf(stderr, "wsload: unknown option %s\n", k.c_str());
			return 2;
		}
	}
	if (!L.port || L.path_template.empty() || L.users <= 0 || out.empty())
	{
		fprintf(stderr, "usage: wsload --port P --path '/ws?user=%%d' --users N [--tabs 2] "
						"--out PREFIX\n");
		return 2;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	L.epfd = epoll_create1(0);
	for (int t = 0; t < L.tabs; t++)
		for (int u = 1; u <= L.users; u++)
		{
			Conn c;
			c.user = u;
			c.tab = t;
			L.conns.push_back(std::move(c));
		}
	L.latencies.reserve(1 << 20);

	const size_t total = L.conns.size();
	int64_t deadline = now_us() + int64_t(connect_timeout_s) * 1000000;
	bool ready = false;
	int64_t next_progress = 0;
	std::vector<epoll_event> evs(1024);
	while (!stop_requested)
	{
		/* A bounded number of handshakes at a time: Daphne's and Node's accept backlogs are
		 * small, and a burst of 1,000 SYNs measures the kernel, not the server. */
		while (L.next_to_start < total && L.in_flight < max_in_flight)
			L.start(L.next_to_start++);
		if (!ready)
		{
			if (L.open == int(total))
			{
				printf("READY %d\n", L.open);
				fflush(stdout);
				ready = true;
				next_progress = now_us() + 500000;
			}
			else if (L.closed > 0 || now_us() > deadline)
			{
				fprintf(stderr, "wsload: only %d of %zu sockets opened (%d failed)\n", L.open,
						total, L.closed);
				return 1;
			}
		}
		if (ready && now_us() >= next_progress)
		{
			printf("P %llu\n", (unsigned long long) L.received);
			fflush(stdout);
			next_progress += 500000;
		}
		int n = epoll_wait(L.epfd, evs.data(), int(evs.size()), 100);
		// One clock read per socket, after epoll returns: frames read together share it.
		for (int k = 0; k < n; k++)
			L.on_event(evs[k].data.u64, evs[k].events, now_us());
	}

	FILE *f = fopen((out + ".sockets").c_str(), "w");
	if (!f)
	{
		perror("fopen");
		return 1;
	}
	for (const Conn &c : L.conns)
		fprintf(f, "%d %d %zu %llu %d\n", c.user, c.tab, c.seen.size(), (unsigned long long) c.dups,
				c.state == State::Closed ? 1 : 0);
	fclose(f);
	f = fopen((out + ".lat").c_str(), "w");
	if (!f)
	{
		perror("fopen");
		return 1;
	}
	for (const auto &v : L.latencies)
		fprintf(f, "%lld %lld\n", (long long) v.first, (long long) v.second);
	fclose(f);
	return 0;
}
