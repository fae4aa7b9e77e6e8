/*
 * delivery.cpp: frames to sockets.  The inbox drained in slices, per-socket
 * send queues with their bound (a socket over it is closed 1008, others are
 * unaffected), writing at the pace of the kernel, and our closing handshake.
 * Service thread only (server_internal.hpp).
 */
#include "server_internal.hpp"

#include "log.hpp"

#include <malloc.h>

namespace livenotify
{

void
Server::close_session(Session *s, int code, const std::string &reason)
{
	/* The first close wins; before the 101 a refusal is an HTTP status (admission.cpp). */
	if (!advance(s, SessionEvent::CloseRequested))
		return;
	s->close_code = code;
	s->close_reason = reason.substr(0, 100);
	s->live->store(false, std::memory_order_release); /* its queued catch-up jobs are dropped */
	s->queue.clear();
	lws_callback_on_writable(s->wsi);
}

/* A socket over its bound (send queue, or live frames held during a replay): 1008. */
void
Server::slow_client(Session *s, const char *during)
{
	sh_->counters.slow_client_closes.fetch_add(1, std::memory_order_relaxed);
	LOG_WARN("slow_client",
			 "session=%llu user=%s during=%s queued_bytes=%zu held_bytes=%zu limit=%zu",
			 static_cast<unsigned long long>(s->id), log_quote(s->user).c_str(), during,
			 s->queue.bytes(), s->gate.held_bytes(), s->queue.limit());
	close_session(s, LWS_CLOSE_STATUS_POLICY_VIOLATION, "send queue full");
}

/*
 * Queue a frame on one socket.  Frames of a resuming socket go through its
 * gate (held until the replay ends, duplicates dropped); bypass_gate is for
 * control frames (hello, resync, pong) that are not part of the row stream.
 * direct (the live frames of drain_inbox): written at once when nothing is
 * waiting before it (write_now()).
 */
void
Server::enqueue(Session *s, const FramePtr &f, bool bypass_gate, bool direct)
{
	if (s->state != SessionState::Open)
		return;
	if (!bypass_gate)
	{
		switch (s->gate.on_live(f))
		{
			case ResumeGate::Live::Drop:
				return;
			case ResumeGate::Live::Overflow:
				slow_client(s, "catchup");
				return;
			case ResumeGate::Live::Held:
				/* Released in order once the replay is out (now, if it already is). */
				feed_resume(s);
				if (!s->queue.empty())
					lws_callback_on_writable(s->wsi);
				return;
			case ResumeGate::Live::Send:
				break;
		}
	}
	if (direct && s->queue.empty() && !s->gate.holding() && write_now(s, f))
		return;
	switch (s->queue.push(f))
	{
		case SendQueue::Push::Overflow:
			/* Over its bound: close 1008 so the client resumes from its last id; others are
			 * unaffected. */
			slow_client(s, "live");
			return;
		case SendQueue::Push::Coalesced:
			sh_->counters.pongs_coalesced.fetch_add(1, std::memory_order_relaxed);
			return; /* the pong already waiting answers this ping too */
		case SendQueue::Push::Queued:
			break;
	}
	lws_callback_on_writable(s->wsi);
}

/*
 * A live frame for a socket with nothing queued is written now, from the
 * service thread (drain_inbox), instead of arming POLLOUT and writing it in
 * the WRITEABLE callback: that round costs two epoll_ctl and a loop turn per
 * frame, most of the daemon's CPU per row when each commit goes to a user's
 * one or two sockets (issue 15, docs/benchmarks.md "Delivery CPU").
 *
 * What lws 4.1 allows (lib/core-net/output.c, lib/roles/ws/ops-ws.c):
 * lws_write() does not check that it runs in the callback; a partial send is
 * kept by lws (buflist_out), which arms POLLOUT, sends the rest first and
 * calls WRITEABLE only once it is out.  It must not be called again while
 * that rest is buffered (the frame's header state would be wrong):
 * lws_partial_buffered() is checked first, and every frame after it is queued
 * as before.  So lws holds at most one frame beyond the send queue's bound.
 * permessage-deflate, the other case of output held inside lws, is never
 * negotiated (server.cpp sets no extensions).  False: queue it instead.
 */
bool
Server::write_now(Session *s, const FramePtr &f)
{
	struct lws *wsi = s->wsi;
	if (!s->drop_reason.empty())
		return true; /* a write failed: lws is closing it; later frames go nowhere */
	if (lws_partial_buffered(wsi) || lws_get_network_wsi(wsi) != wsi)
		return false;
	size_t n = f->size();
	int m =
		lws_write(wsi, reinterpret_cast<unsigned char *>(f->writable_payload()), n, LWS_WRITE_TEXT);
	if (m < static_cast<int>(n))
	{
		/* The connection is unusable; outside its callbacks lws closes it asynchronously. */
		LOG_WARN("write_failed", "session=%llu user=%s", static_cast<unsigned long long>(s->id),
				 log_quote(s->user).c_str());
		s->drop_reason = "write failed";
		lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
		return true;
	}
	sh_->counters.frames_sent.fetch_add(1, std::memory_order_relaxed);
	sh_->counters.bytes_sent.fetch_add(n, std::memory_order_relaxed);
	sh_->counters.frames_written_directly.fetch_add(1, std::memory_order_relaxed);
	return true;
}

/*
 * {"type":"pong"} for a client ping.  One frame serves every socket (lws
 * scribbles only its headroom, one write at a time), and a socket holds at
 * most one (send_queue.hpp): pings from a client that does not read cost
 * nothing here, and client_message_rate closes it.
 */
void
Server::send_pong(Session *s)
{
	if (!pong_)
		pong_ = make_pong_frame(LWS_PRE);
	enqueue(s, pong_, true);
}

/*
 * Service thread (lws timer, every kTrimIntervalMs): give freed memory back
 * to the kernel after a burst, when the send queues hold kTrimAfterBytes less
 * than their peak since the last trim or the arenas hold that much more free
 * memory than after the last trim (core/memory_trim.hpp).  glibc's malloc_trim
 * walks every arena, the reader's and the workers' too, where frames are
 * built.
 */
void
Server::trim_tick(lws_sorted_usec_list_t *sul)
{
	Server *s = static_cast<Server *>(Timer::owner_of(sul));
	if (s->trim_.due(std::chrono::steady_clock::now(), &s->queue_totals_, mallinfo2().fordblks))
	{
		malloc_trim(0);
		s->trim_.trimmed(mallinfo2().fordblks);
		s->sh_->counters.malloc_trims.fetch_add(1, std::memory_order_relaxed);
	}
	lws_sul_schedule(s->ctx_, 0, &s->trim_timer_.sul, trim_tick,
					 static_cast<lws_usec_t>(kTrimIntervalMs) * LWS_US_PER_MS);
}

/*
 * LWS_CALLBACK_SERVER_WRITEABLE: write queued frames while the kernel takes
 * them (lws_send_pipe_choked), then ask to be called again.  Each frame's
 * buffer has LWS_PRE bytes in front for lws's framing header.
 */
int
Server::on_writeable(struct lws *wsi, Session *s)
{
	if (session_closing(s->state))
	{
		/*
		 * Hand lws our close frame once and return -1: lws sends it and waits
		 * (up to 5 s) for the peer's close before it drops TCP, the closing
		 * handshake of RFC 6455 5.5.1.  A later writeable callback while it
		 * waits must not return -1 again: lws takes a second close request in
		 * LRS_AWAITING_CLOSE_ACK as "the polite way failed" and kills the
		 * connection at once (lib/core-net/close.c, __lws_close_free_wsi).
		 */
		if (!advance(s, SessionEvent::CloseFrameSent))
			return 0;
		lws_close_reason(wsi, static_cast<enum lws_close_status>(s->close_code),
						 reinterpret_cast<unsigned char *>(&s->close_reason[0]),
						 s->close_reason.size());
		return -1;
	}
	for (;;)
	{
		if (s->gate.holding())
			feed_resume(s);
		if (s->queue.empty() || session_closing(s->state))
			break;
		const FramePtr &f = s->queue.front();
		size_t n = f->size();
		int m = lws_write(wsi, reinterpret_cast<unsigned char *>(f->writable_payload()), n,
						  LWS_WRITE_TEXT);
		if (m < static_cast<int>(n))
		{
			LOG_WARN("write_failed", "session=%llu user=%s", static_cast<unsigned long long>(s->id),
					 log_quote(s->user).c_str());
			s->drop_reason = "write failed";
			return -1;
		}
		sh_->counters.frames_sent.fetch_add(1, std::memory_order_relaxed);
		sh_->counters.bytes_sent.fetch_add(n, std::memory_order_relaxed);
		s->queue.pop();
		if (lws_send_pipe_choked(wsi))
			break;
	}
	if (session_closing(s->state) || !s->queue.empty())
		lws_callback_on_writable(wsi);
	return 0;
}

/* LWS_CALLBACK_EVENT_WAIT_CANCELLED: everything the database threads handed over. */
void
Server::drain_inbox()
{
	for (auto &e : sh_->inbox.take())
		backlog_.push_back(std::move(e));
	/*
	 * Work in slices: a burst (1000 rows of a few kB for one user) queued all
	 * at once would overflow the send queues of perfectly healthy clients
	 * before lws had a chance to write anything.  After a slice we wake
	 * ourselves again, so lws services writeable sockets between slices.
	 */
	size_t budget = 64;
	size_t byte_budget = cfg_.send_queue_bytes / 4; /* one slice never fills a queue on its own */
	size_t handled = 0; /* what the reader's backpressure counts (Inbox::done) */
	while (!backlog_.empty() && budget-- > 0)
	{
		Event e = std::move(backlog_.front());
		backlog_.pop_front();
		handled += Inbox::cost(e);
		size_t bytes = e.frame ? e.frame->cost() : 0;
		byte_budget = bytes >= byte_budget ? 0 : byte_budget - bytes;
		if (byte_budget == 0)
			budget = 0;
		switch (e.type)
		{
			case Event::Type::Deliver:
			{
				const std::vector<Session *> *g = groups_.find(e.user);
				if (!g)
					break;
				/* Copy: enqueue may close a socket, but never removes it from the group here. */
				for (Session *s : *g)
					enqueue(s, e.frame, false, true);
				break;
			}
			case Event::Type::Broadcast:
				groups_.for_each(
					[&](const std::string &, Session *s) { enqueue(s, e.frame, true); });
				break;
			case Event::Type::AuthResult:
			{
				auto it = sessions_.find(e.session);
				if (it == sessions_.end())
					break; /* closed meanwhile */
				on_auth_result(it->second, e);
				break;
			}
			case Event::Type::CatchupResult:
			{
				auto it = sessions_.find(e.session);
				/* Dropped when the session closed meanwhile (session_state.hpp). */
				if (it != sessions_.end() && session_takes_catchup_page(it->second->state))
					on_catchup(it->second, e);
				break;
			}
			case Event::Type::ReaderReady:
				reader_ready();
				break;
		}
	}
	sh_->inbox.done(handled);
	if (!backlog_.empty())
		lws_cancel_service(ctx_);
}

} // namespace livenotify
