/*
 * listener.cpp: the public listening socket, opened and accepted by us.
 *
 * lws 4.1 binds the listener itself, and two things go wrong there (issue 12):
 * a listen address that does not exist is "deferred" (lws retries later, for
 * interfaces that come up after boot), so the daemon logged `listening` and
 * sent READY=1 with nothing bound; and when accept() fails with EMFILE lws
 * logs and returns with the listening socket still readable, so the loop
 * turned at 100% of a core (lib/roles/listen/ops-listen.c,
 * rops_handle_POLLIN_listen).  So the socket is ours: bound before READY (a
 * failure is a clear error and exit 1), watched by lws as a raw file
 * descriptor (LWS_ADOPT_RAW_FILE_DESC, the lws loop still owns all polling),
 * and each accepted connection is handed to lws with lws_adopt_socket_vhost(),
 * the same adoption its own listener does.  On EMFILE/ENFILE, or at the
 * descriptor plan's socket cap (core/fd_budget.hpp), the listener's POLLIN is
 * switched off with lws_rx_flow_control() for a short pause.
 * Service thread only (server_internal.hpp), except open_listener() which
 * runs on the main thread before the loop exists.
 */
#include "server_internal.hpp"

#include "log.hpp"

#include <cerrno>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

namespace livenotify
{

namespace
{

/* Accepts per wake-up: others' events (frames, auth) are not held up by a connect storm. */
const int kAcceptBurst = 64;

int64_t
now_ms()
{
	return std::chrono::duration_cast<std::chrono::milliseconds>(
			   std::chrono::steady_clock::now().time_since_epoch())
		.count();
}

} // namespace

/* Main thread: bind and listen on listen_address:port; false (and an error line) on failure. */
bool
Server::open_listener()
{
	struct addrinfo hints;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	struct addrinfo *res = nullptr;
	std::string port = std::to_string(cfg_.port);
	const char *host = cfg_.listen_address.empty() ? nullptr : cfg_.listen_address.c_str();
	std::string host_s = host ? host : "";
	/* "[::1]" is how an IPv6 literal is often written next to a port. */
	if (host_s.size() > 2 && host_s.front() == '[' && host_s.back() == ']')
		host_s = host_s.substr(1, host_s.size() - 2);
	int rc = getaddrinfo(host ? host_s.c_str() : nullptr, port.c_str(), &hints, &res);
	if (rc != 0)
	{
		LOG_ERROR("listen_failed", "address=%s port=%d error=%s",
				  log_quote(cfg_.listen_address).c_str(), cfg_.port,
				  log_quote(std::string("cannot resolve: ") + gai_strerror(rc)).c_str());
		return false;
	}
	std::string last_error = "no address";
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
	{
		int fd =
			socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
		{
			last_error = strerror(errno);
			continue;
		}
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0)
		{
			listen_fd_ = fd;
			break;
		}
		last_error = strerror(errno);
		close(fd);
	}
	freeaddrinfo(res);
	if (listen_fd_ < 0)
	{
		LOG_ERROR("listen_failed", "address=%s port=%d error=%s",
				  log_quote(cfg_.listen_address).c_str(), cfg_.port, log_quote(last_error).c_str());
		return false;
	}
	return true;
}

/* Main thread, after the context exists: lws watches the listening socket from here on. */
bool
Server::watch_listener()
{
	vhost_ = lws_get_vhost_by_name(ctx_, "default");
	lws_sock_file_fd_type fd;
	fd.filefd = listen_fd_;
	if (vhost_)
		listen_wsi_ =
			lws_adopt_descriptor_vhost(vhost_, LWS_ADOPT_RAW_FILE_DESC, fd, kProtocolName, nullptr);
	if (!listen_wsi_)
	{
		LOG_ERROR("listen_failed", "address=%s port=%d error=%s",
				  log_quote(cfg_.listen_address).c_str(), cfg_.port,
				  log_quote("lws could not watch the listening socket").c_str());
		return false;
	}
	memset(&accept_timer_, 0, sizeof(accept_timer_));
	accept_timer_.owner = this;
	return true;
}

/* LWS_CALLBACK_RAW_RX_FILE on the listening socket: connections are waiting. */
void
Server::on_listen_readable()
{
	for (int i = 0; i < kAcceptBurst; i++)
	{
		if (live_wsi_ >= fd_plan_.socket_cap)
		{
			/* The plan's cap: the rest of the descriptors are the database's (fd_budget.hpp). */
			AcceptBackoff::Decision d = accept_backoff_.on_failure(now_ms());
			pause_accepting(d.pause_ms, d.log ? "socket_cap" : nullptr, d.failures);
			return;
		}
		struct sockaddr_storage sa;
		socklen_t salen = sizeof(sa);
		int fd = accept4(listen_fd_, reinterpret_cast<struct sockaddr *>(&sa), &salen,
						 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
		{
			int e = errno;
			if (e == EAGAIN || e == EWOULDBLOCK)
				return;
			if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM)
			{
				AcceptBackoff::Decision d = accept_backoff_.on_failure(now_ms());
				pause_accepting(d.pause_ms, d.log ? strerror(e) : nullptr, d.failures);
				return;
			}
			/* ECONNABORTED, EPROTO, EINTR...: that connection is gone; the next may be fine. */
			continue;
		}
		/*
		 * Connections per peer address, before lws spends anything on them: a
		 * peer holding max_sockets_per_address connections that never upgrade
		 * (each held until upgrade_timeout_s) would otherwise take the whole
		 * socket cap.  A trusted proxy carries many clients: its clients are
		 * counted at the upgrade instead (admission.cpp, X-Forwarded-For).
		 */
		std::string addr;
		char host[NI_MAXHOST];
		if (getnameinfo(reinterpret_cast<struct sockaddr *>(&sa), salen, host, sizeof(host),
						nullptr, 0, NI_NUMERICHOST) == 0)
			if (std::optional<IpAddress> a = IpAddress::parse(host))
				if (!in_any(cfg_.trusted_proxies, *a))
					addr = a->str();
		if (!addr.empty() && conn_limits_.admit(addr, false) != AddressAdmission::Ok)
		{
			close(fd);
			sh_->counters.rejected_connections.fetch_add(1, std::memory_order_relaxed);
			AcceptBackoff::Decision d = conn_refused_log_.on_failure(now_ms());
			if (d.log)
				LOG_WARN("tcp_rejected", "reason=address_socket_limit peer=%s refused=%llu",
						 log_quote(addr).c_str(), static_cast<unsigned long long>(d.failures));
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		/* lws closes fd itself when the adoption fails. */
		struct lws *wsi = lws_adopt_socket_vhost(vhost_, fd);
		if (addr.empty())
			continue;
		if (wsi)
			conn_addr_[wsi] = addr; /* given back at its LWS_CALLBACK_WSI_DESTROY */
		else
			conn_limits_.release(addr, false);
	}
}

/* LWS_CALLBACK_WSI_DESTROY of any connection: its peer address's count goes down. */
void
Server::connection_gone(struct lws *wsi)
{
	auto it = conn_addr_.find(wsi);
	if (it == conn_addr_.end())
		return;
	conn_limits_.release(it->second, false);
	conn_addr_.erase(it);
}

/*
 * Stop polling the listener for pause_ms.  why: the log line's reason, or
 * null when this pause is not logged (once per AcceptBackoff interval).
 */
void
Server::pause_accepting(int64_t pause_ms, const char *why, uint64_t failures)
{
	if (accept_paused_)
		return;
	accept_paused_ = true;
	sh_->counters.accept_pauses.fetch_add(1, std::memory_order_relaxed);
	if (why)
		LOG_WARN("accept_paused", "reason=%s failures=%llu pause_ms=%lld sockets=%llu cap=%llu",
				 log_quote(why).c_str(), static_cast<unsigned long long>(failures),
				 static_cast<long long>(pause_ms), static_cast<unsigned long long>(live_wsi_),
				 static_cast<unsigned long long>(fd_plan_.socket_cap));
	lws_rx_flow_control(listen_wsi_, 0);
	lws_sul_schedule(ctx_, 0, &accept_timer_.sul, accept_resume,
					 static_cast<lws_usec_t>(pause_ms) * LWS_US_PER_MS);
}

/* Service thread (lws timer): the pause is over; the next POLLIN accepts again. */
void
Server::accept_resume(lws_sorted_usec_list_t *sul)
{
	Server *s = static_cast<Server *>(Timer::owner_of(sul));
	s->accept_paused_ = false;
	if (s->listen_wsi_ && !s->shutting_down_)
		lws_rx_flow_control(s->listen_wsi_, 1);
}

} // namespace livenotify
