/*
 * e2e-client: USERS x TABS WebSocket connections to livenotifyd on one
 * libwebsockets client context (one thread, lws's event loop), authenticated
 * with HS256 JWTs, recording the receive time of every benchmark row on every
 * socket into the shared file (shared.hpp).
 *
 *   e2e-client --shm=FILE --capacity=ROWS --port=P --secret=S --users=N [--tabs=2]
 *              [--sources=N] [--max-pending=N] [--evlib=ev|uv|poll]
 *
 * It creates FILE, opens the sockets a few hundred at a time (a burst of
 * thousands of simultaneous handshakes only measures the listen backlog),
 * prints "ready sockets=N secs=S" once every socket got its hello, and then
 * records until SIGTERM or SIGINT.  Sockets are numbered user-major: socket i
 * belongs to user i / TABS + 1 and is tab i % TABS of that user, matching
 * e2e::user_of() on the inserter's side.
 *
 * Per frame the work is a prefix compare, two memmem() and two number parses
 * on the frame as lws hands it over: no JSON library, so the client is not
 * the bottleneck it is measuring.
 */
#include "shared.hpp"

#include <libwebsockets.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <csignal>
#include <string>
#include <vector>

namespace
{

struct Sock
{
	uint32_t index = 0;
	uint32_t user = 0;
	uint32_t tab = 0;
	bool hello = false;
	bool done = false;	 /* closed or failed: not reopened */
	std::string partial; /* a frame lws delivered in pieces */
};

struct Client
{
	e2e::Shared sh;
	std::vector<Sock> socks;
	std::vector<std::string> paths;
	std::vector<std::string> sources;
	struct lws_context *ctx = nullptr;
	int port = 0;
	uint32_t tabs = 2;
	size_t next = 0;	/* next socket to open */
	size_t pending = 0; /* connecting, no hello yet */
	size_t max_pending = 200;
	size_t failed = 0;
	bool ready_printed = false;
	int64_t t_start = 0;
	lws_sorted_usec_list_t tick;
};

Client g;
volatile sig_atomic_t g_stop = 0;

void
on_signal(int)
{
	g_stop = 1;
}

std::string
b64url(const unsigned char *p, size_t n)
{
	static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	std::string out;
	size_t i = 0;
	for (; i + 2 < n; i += 3)
	{
		uint32_t v = (p[i] << 16) | (p[i + 1] << 8) | p[i + 2];
		out += tbl[v >> 18];
		out += tbl[(v >> 12) & 63];
		out += tbl[(v >> 6) & 63];
		out += tbl[v & 63];
	}
	if (n - i == 1)
	{
		uint32_t v = p[i] << 16;
		out += tbl[v >> 18];
		out += tbl[(v >> 12) & 63];
	}
	else if (n - i == 2)
	{
		uint32_t v = (p[i] << 16) | (p[i + 1] << 8);
		out += tbl[v >> 18];
		out += tbl[(v >> 12) & 63];
		out += tbl[(v >> 6) & 63];
	}
	return out;
}

/* An HS256 JWT as the app would mint it: sub = the user id, exp in three hours. */
std::string
make_jwt(const std::string &secret, uint32_t user)
{
	std::string hdr = R"({"alg":"HS256","typ":"JWT"})";
	std::string claims = "{\"sub\":\"" + std::to_string(user) +
						 "\",\"exp\":" + std::to_string(time(nullptr) + 3 * 3600) + "}";
	std::string signing =
		b64url(reinterpret_cast<const unsigned char *>(hdr.data()), hdr.size()) + "." +
		b64url(reinterpret_cast<const unsigned char *>(claims.data()), claims.size());
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
		 reinterpret_cast<const unsigned char *>(signing.data()), signing.size(), mac, &maclen);
	return signing + "." + b64url(mac, maclen);
}

void
print_counters()
{
	const e2e::ClientCounters &c = g.sh.h->c;
	printf("client sockets_open=%llu closes=%llu connect_errors=%llu frames=%llu "
		   "notifications=%llu duplicates=%llu wrong_user=%llu resyncs=%llu\n",
		   (unsigned long long) c.sockets_open.load(), (unsigned long long) c.closes.load(),
		   (unsigned long long) c.connect_errors.load(), (unsigned long long) c.frames.load(),
		   (unsigned long long) c.notifications.load(), (unsigned long long) c.duplicates.load(),
		   (unsigned long long) c.wrong_user.load(), (unsigned long long) c.resyncs.load());
	fflush(stdout);
}

/* Service thread: open sockets until max_pending handshakes are in flight. */
void
top_up()
{
	while (g.next < g.socks.size() && g.pending < g.max_pending)
	{
		Sock &s = g.socks[g.next];
		struct lws_client_connect_info ci;
		memset(&ci, 0, sizeof(ci));
		ci.context = g.ctx;
		ci.address = "127.0.0.1";
		ci.port = g.port;
		ci.path = g.paths[s.user - 1].c_str();
		ci.host = "127.0.0.1";
		ci.protocol = "livenotify.v1";
		ci.userdata = &s;
		/* Several loopback source addresses: 10,000+ sockets never run short of ephemeral ports. */
		ci.iface = g.sources[g.next % g.sources.size()].c_str();
		g.next++;
		g.pending++;
		if (!lws_client_connect_via_info(&ci))
		{
			/* The error callback may already have run for it: done marks it counted. */
			if (!s.done)
			{
				s.done = true;
				g.pending--;
				g.failed++;
				g.sh.h->c.connect_errors.fetch_add(1, std::memory_order_relaxed);
			}
		}
	}
	if (!g.ready_printed && g.next == g.socks.size() && g.pending == 0)
	{
		g.ready_printed = true;
		printf("ready sockets=%llu failed=%zu secs=%.1f\n",
			   (unsigned long long) g.sh.h->c.sockets_open.load(), g.failed,
			   (e2e::now_ns() - g.t_start) / 1e9);
		fflush(stdout);
	}
}

/* Service thread (lws timer): keeps connecting and notices a stop request. */
void
on_tick(lws_sorted_usec_list_t *)
{
	if (g_stop)
	{
		/*
		 * Under libev, lws_service() runs ev_run() and only returns when the
		 * context dies; a measuring client has nothing to tear down that the
		 * kernel will not, so it reports and leaves from here.
		 */
		print_counters();
		_exit(0);
	}
	top_up();
	lws_sul_schedule(g.ctx, 0, &g.tick, on_tick, 20 * LWS_US_PER_MS);
}

const char *
find(const char *p, size_t n, const char *needle, size_t nl)
{
	const void *r = memmem(p, n, needle, nl);
	return r ? static_cast<const char *>(r) + nl : nullptr;
}

void
on_frame(Sock &s, const char *p, size_t n, int64_t t)
{
	e2e::ClientCounters &c = g.sh.h->c;
	c.frames.fetch_add(1, std::memory_order_relaxed);
	static const char kNotif[] = "{\"type\":\"notification\"";
	static const char kHello[] = "{\"type\":\"hello\"";
	static const char kResync[] = "{\"type\":\"resync\"";
	if (n >= sizeof(kNotif) - 1 && memcmp(p, kNotif, sizeof(kNotif) - 1) == 0)
	{
		const char *row = find(p, n, "\"notification\":{", 16);
		const char *title = row ? find(row, n - (row - p), "\"title\":\"", 9) : nullptr;
		const char *uid = row ? find(row, n - (row - p), "\"user_id\":", 10) : nullptr;
		char *e = nullptr;
		uint64_t k = title ? strtoull(title, &e, 10) : 0;
		if (!title || !e || *e != ':' || k >= g.sh.h->capacity)
		{
			c.out_of_range.fetch_add(1, std::memory_order_relaxed);
			return;
		}
		if (!uid || strtoul(uid, nullptr, 10) != s.user)
			c.wrong_user.fetch_add(1, std::memory_order_relaxed);
		if (!find(p, n, "\"unread_count\":", 15))
			c.no_count.fetch_add(1, std::memory_order_relaxed);
		c.notifications.fetch_add(1, std::memory_order_relaxed);
		uint64_t slot = k * g.tabs + s.tab;
		if (g.sh.seen[slot] != 255 && g.sh.seen[slot]++ > 0)
			c.duplicates.fetch_add(1, std::memory_order_relaxed);
		else
			g.sh.recv_ns[slot] = t;
		return;
	}
	if (n >= sizeof(kHello) - 1 && memcmp(p, kHello, sizeof(kHello) - 1) == 0)
	{
		if (!s.hello)
		{
			s.hello = true;
			g.pending--;
			c.sockets_open.fetch_add(1, std::memory_order_relaxed);
		}
		return;
	}
	if (n >= sizeof(kResync) - 1 && memcmp(p, kResync, sizeof(kResync) - 1) == 0)
		c.resyncs.fetch_add(1, std::memory_order_relaxed);
	else
		c.other_frames.fetch_add(1, std::memory_order_relaxed);
}

/* Service thread: lws's events for every client socket. */
int
callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	Sock *s = static_cast<Sock *>(user);
	switch (reason)
	{
		case LWS_CALLBACK_CLIENT_RECEIVE:
		{
			/* The receive time first: everything after it is the client's own cost. */
			int64_t t = e2e::now_ns();
			if (!s)
				return 0;
			const char *p = static_cast<const char *>(in);
			bool complete = lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi);
			if (!complete || !s->partial.empty())
			{
				s->partial.append(p, len);
				if (!complete)
					return 0;
				on_frame(*s, s->partial.data(), s->partial.size(), t);
				s->partial.clear();
				return 0;
			}
			on_frame(*s, p, len, t);
			return 0;
		}

		case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
			fprintf(stderr, "e2e-client: connect error: %s\n",
					in ? static_cast<const char *>(in) : "(none)");
			if (s && !s->done)
			{
				s->done = true;
				if (!s->hello)
					g.pending--;
				g.failed++;
				g.sh.h->c.connect_errors.fetch_add(1, std::memory_order_relaxed);
			}
			return 0;

		case LWS_CALLBACK_CLIENT_CLOSED:
			if (s && !s->done)
			{
				s->done = true;
				if (s->hello)
				{
					g.sh.h->c.sockets_open.fetch_sub(1, std::memory_order_relaxed);
					g.sh.h->c.closes.fetch_add(1, std::memory_order_relaxed);
					if (!g_stop)
						fprintf(stderr, "e2e-client: socket %u (user %u) closed by the daemon\n",
								s->index, s->user);
				}
				else
				{
					g.pending--;
					g.failed++;
					g.sh.h->c.connect_errors.fetch_add(1, std::memory_order_relaxed);
				}
			}
			return 0;

		default:
			break;
	}
	return 0;
}

const char *
arg(int argc, char **argv, const char *name, const char *dflt)
{
	size_t l = strlen(name);
	for (int i = 1; i < argc; i++)
		if (strncmp(argv[i], name, l) == 0 && argv[i][l] == '=')
			return argv[i] + l + 1;
	return dflt;
}

} // namespace

int
main(int argc, char **argv)
{
	const char *shm_path = arg(argc, argv, "--shm", nullptr);
	uint64_t capacity = strtoull(arg(argc, argv, "--capacity", "1"), nullptr, 10);
	g.port = atoi(arg(argc, argv, "--port", "8765"));
	std::string secret = arg(argc, argv, "--secret", "");
	uint32_t users = static_cast<uint32_t>(atoi(arg(argc, argv, "--users", "1000")));
	g.tabs = static_cast<uint32_t>(atoi(arg(argc, argv, "--tabs", "2")));
	int nsources = atoi(arg(argc, argv, "--sources", "4"));
	g.max_pending = static_cast<size_t>(atoi(arg(argc, argv, "--max-pending", "200")));
	std::string evlib = arg(argc, argv, "--evlib", "ev");
	if (!shm_path || secret.empty() || users == 0 || g.tabs == 0 || nsources < 1 || nsources > 250)
	{
		fprintf(stderr,
				"usage: e2e-client --shm=FILE --capacity=ROWS --port=P --secret=S "
				"--users=N [--tabs=2] [--sources=N] [--max-pending=N] [--evlib=ev|uv|poll]\n");
		return 2;
	}
	if (!g.sh.open(shm_path, true, capacity, g.tabs))
		return 1;
	g.sh.h->users = users;
	g.sh.h->c.sockets_wanted.store(static_cast<uint64_t>(users) * g.tabs);

	for (int i = 1; i <= nsources; i++)
		g.sources.push_back("127.0.0." + std::to_string(i));
	for (uint32_t u = 1; u <= users; u++)
		g.paths.push_back("/ws?token=" + make_jwt(secret, u));
	g.socks.resize(static_cast<size_t>(users) * g.tabs);
	for (size_t i = 0; i < g.socks.size(); i++)
	{
		g.socks[i].index = static_cast<uint32_t>(i);
		g.socks[i].user = static_cast<uint32_t>(i / g.tabs + 1);
		g.socks[i].tab = static_cast<uint32_t>(i % g.tabs);
	}

	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	lws_set_log_level(LLL_ERR, nullptr);

	static struct lws_protocols protocols[2];
	protocols[0].name = "livenotify.v1";
	protocols[0].callback = callback;
	protocols[0].per_session_data_size = 0; /* userdata is our Sock */
	protocols[0].rx_buffer_size = 16384;

	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	/*
	 * No fd_limit_per_thread: below the process's file limit it makes lws 4.1
	 * find a socket's wsi by scanning its table on every event (wsi_from_fd's
	 * "slow fds handling"), a fifth of this client's CPU at 50,000 frames/s.
	 * Sized from the limit (raised by run.sh), the lookup is an index.
	 */
	info.timeout_secs = 30;
	/*
	 * lws's default loop calls poll() over every socket on each turn: with
	 * thousands of sockets that scan, not the frames, is where the client's
	 * CPU would go.  Debian builds the libev glue as a plugin (epoll).
	 */
	if (evlib == "ev")
		info.options |= LWS_SERVER_OPTION_LIBEV;
	else if (evlib == "uv")
		info.options |= LWS_SERVER_OPTION_LIBUV;
	g.ctx = lws_create_context(&info);
	if (!g.ctx)
	{
		fprintf(stderr, "e2e-client: lws_create_context failed\n");
		return 1;
	}
	g.t_start = e2e::now_ns();
	memset(&g.tick, 0, sizeof(g.tick));
	lws_sul_schedule(g.ctx, 0, &g.tick, on_tick, 1);
	while (!g_stop)
		if (lws_service(g.ctx, 0) < 0)
			break;
	print_counters();
	lws_context_destroy(g.ctx);
	return 0;
}
