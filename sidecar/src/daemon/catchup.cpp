/*
 * catchup.cpp: the resume of an authenticated socket.  The replay is
 * fetched in pages by the workers and fed to the send queue at the pace the
 * socket drains, while live frames are held by the gate (core/resume.hpp);
 * a resume asked for before the reader's first position waits for it.
 * Service thread only (server_internal.hpp).
 */
#include "server_internal.hpp"

#include "log.hpp"

namespace livenotify
{

/* Start the replay of an authenticated socket's resume (the reader has its position). */
void
Server::start_resume(Session *s)
{
	std::string source = sh_->resume_source();
	if (source.empty())
	{
		/* No source to replay from: tell the client to refetch instead of pretending. */
		enqueue(s, make_resync_frame("no_resume_source", LWS_PRE), true);
		return;
	}
	/*
	 * Live frames are held from here on: the socket is in its group already,
	 * so every row committed from now on is also live.  The replay is fetched
	 * in pages and paced by the send queue (resume.hpp); the held frames get
	 * their own budget.
	 */
	ResumeLimits lim;
	lim.max_rows = static_cast<size_t>(cfg_.catchup_max_rows);
	lim.page_rows = std::min<size_t>(kCatchupPageRows, lim.max_rows);
	lim.held_bytes = cfg_.send_queue_bytes;
	lim.headroom = LWS_PRE;
	s->resume_source = source;
	if (s->cursor)
	{
		/*
		 * A cursor from another system or timeline (a failover that lost
		 * acknowledged rows gives their ids and xids to new rows): nothing in
		 * it can be trusted, so no catch-up; the client refetches.
		 */
		if (s->cursor->origin() != sh_->origin())
		{
			sh_->counters.resyncs.fetch_add(1, std::memory_order_relaxed);
			LOG_WARN("resync", "reason=cursor_foreign session=%llu cursor_origin=%s origin=%s",
					 static_cast<unsigned long long>(s->id), log_quote(s->cursor->origin()).c_str(),
					 log_quote(sh_->origin()).c_str());
			enqueue(s, make_resync_frame("cursor_foreign", LWS_PRE), true);
			return;
		}
		s->gate.begin_cursor(source, s->cursor->had, lim);
	}
	else
		s->gate.begin(source, *s->last_id, lim);
	request_catchup_page(s);
}

/*
 * ReaderReady: the reader took its first position (and resolved the resume
 * source).  Waiting resumes start now, so their catch-up query runs after that
 * position: a row committed before the query is in the catch-up, one committed
 * after the position is live, one in both is sent once (resume.hpp).  Sockets
 * that joined before it without a resume may have missed rows: resync `epoch`.
 */
void
Server::reader_ready()
{
	size_t resynced = 0;
	auto resync = make_resync_frame("epoch", LWS_PRE);
	for (auto &kv : sessions_)
	{
		Session *s = kv.second;
		switch (on_reader_ready(s->state, &s->reader_wait))
		{
			case ReaderReadyAction::StartResume:
				lws_sul_cancel(&s->resume_timer.sul);
				start_resume(s);
				break;
			case ReaderReadyAction::SendResync:
				enqueue(s, resync, true);
				resynced++;
				break;
			case ReaderReadyAction::Nothing:
				break;
		}
	}
	if (resynced)
	{
		sh_->counters.resyncs.fetch_add(1, std::memory_order_relaxed);
		LOG_WARN("resync", "reason=epoch sockets=%zu", resynced);
	}
}

/*
 * Service thread (lws timer): a resume waited kResumeWaitMs for the reader's
 * first position.  The client refetches (resync `catchup_failed`); it still
 * gets resync `epoch` when the reader connects, as rows committed between its
 * refetch and that position are in neither.
 */
void
Server::resume_wait_deadline(lws_sorted_usec_list_t *sul)
{
	Session *s = static_cast<Session *>(Timer::owner_of(sul));
	if (!on_resume_wait_expired(s->state, &s->reader_wait))
		return;
	LOG_WARN("catchup_failed", "session=%llu user=%s error=\"database not reached yet\"",
			 static_cast<unsigned long long>(s->id), log_quote(s->user).c_str());
	s->server->sh_->counters.resyncs.fetch_add(1, std::memory_order_relaxed);
	s->server->enqueue(s, make_resync_frame("catchup_failed", LWS_PRE), true);
}

/* Ask a worker for the resume's next catch-up page, if the gate wants one now. */
void
Server::request_catchup_page(Session *s)
{
	std::optional<ResumeGate::PageRequest> p = s->gate.next_page();
	if (!p)
		return;
	Job j;
	j.type = Job::Type::Catchup;
	j.session = s->id;
	j.source = s->resume_source;
	j.user = s->user;
	j.after_id = p->after_id;
	j.max_rows = p->max_rows;
	j.count_known = s->resume_count_known;
	j.unread = s->resume_unread;
	j.cursor = s->cursor;
	j.live = s->live;
	if (sh_->jobs.push(std::move(j)))
		return;
	/*
	 * catchup_queue_max jobs wait already: this page fails like a failed
	 * query (what was sent stays sent, then resync `catchup_failed`), through
	 * the inbox so the gate sees it after this call returns.
	 */
	LOG_WARN("catchup_failed", "session=%llu user=%s error=\"catch-up queue full\"",
			 static_cast<unsigned long long>(s->id), log_quote(s->user).c_str());
	Event e;
	e.type = Event::Type::CatchupResult;
	e.session = s->id;
	e.user = s->user;
	e.failed = true;
	sh_->inbox.post(std::move(e), ctx_);
}

/*
 * Move the resume's frames (replayed rows, resync trailer, held live frames)
 * into the send queue at the pace the socket drains (resume.hpp), and fetch
 * the next page when the gate runs low.  Called when a page arrives and on
 * every SERVER_WRITEABLE of a resuming socket.
 */
void
Server::feed_resume(Session *s)
{
	if (!s->gate.holding() || session_closing(s->state))
		return;
	while (FramePtr f = s->gate.pull(s->queue.bytes(), s->queue.limit()))
	{
		if (f->kind == FrameKind::Resync)
			sh_->counters.resyncs.fetch_add(1, std::memory_order_relaxed);
		if (s->queue.push(std::move(f)) == SendQueue::Push::Overflow)
		{
			/* Only if a SIGHUP shrank the bound below one frame. */
			slow_client(s, "catchup");
			return;
		}
	}
	if (s->gate.holding())
	{
		request_catchup_page(s);
		return;
	}
	ResumeGate::End end = s->gate.end();
	LOG_INFO("ws_resumed", "session=%llu user=%s rows=%zu truncated=%d failed=%d",
			 static_cast<unsigned long long>(s->id), log_quote(s->user).c_str(), s->gate.replayed(),
			 end == ResumeGate::End::Truncated, end == ResumeGate::End::Failed);
}

/* A catch-up page (or its failure) for a resuming socket. */
void
Server::on_catchup(Session *s, Event &e)
{
	if (e.failed)
		s->gate.on_page_failed();
	else
	{
		/* A failed count is asked again with the next page. */
		if (!e.rows.empty() && !e.count_error)
		{
			s->resume_count_known = true;
			s->resume_unread = e.unread;
		}
		/* The next page's frames list these too (the worker stamped this page the same way). */
		if (s->cursor)
			for (const auto &r : e.rows)
				s->cursor->add_had(r.first);
		s->gate.on_page(std::move(e.rows), e.more);
	}
	feed_resume(s);
	if (!s->queue.empty())
		lws_callback_on_writable(s->wsi);
}

} // namespace livenotify
