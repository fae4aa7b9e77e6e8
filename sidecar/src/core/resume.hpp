/*
 * resume.hpp: the seam between catch-up rows and live frames, and the pace of
 * the replay.
 *
 * A resuming socket joins its user's group (so live frames for it start to
 * flow) before the first catch-up query runs.  Every row is then in the
 * catch-up result, in the live stream, or in both: never in neither.  While
 * the replay runs, live frames are held back; when it ends, the held frames
 * are released in order without the rows catch-up already delivered.
 *
 * A resume by cursor (cursor.hpp, begin_cursor()) fetches its pages from
 * livenotify.catchup_cursor() instead, which knows from the cursor's horizon
 * exactly which rows the client has had; the ids the cursor lists count as
 * delivered.  The seam below is the same for both.
 *
 * De-duplication is by the exact set of ids catch-up delivered (and ids the
 * client said it has, <= last_id), not by "id <= highest catch-up id": ids are
 * assigned at INSERT but become visible at COMMIT, so a row with a smaller id
 * can commit after the catch-up snapshot and would be lost by a high-water
 * mark.  The filter stays on after the seam because the reader may still be
 * behind the catch-up snapshot.  Only notification frames of the catch-up
 * source carry ids; all other frames pass through (in order).
 *
 * Pace.  A client that missed more than send_queue_bytes of rows must still
 * be able to resume (a tab closed for being slow always has), so the replay
 * does not go into the send queue at once:
 *   - catch-up is fetched in pages of page_rows rows (keyset: id > the last
 *     id fetched), the next page only once less than half a page waits here,
 *     so a resuming socket holds at most ~1.5 pages in memory;
 *   - pull() hands out the next frame (replayed row, then the resync trailer
 *     if any, then the held live frames) only while the send queue holds less
 *     than half its bound, so the replay never counts against the slow-client
 *     bound and never crowds out control frames; the caller pulls again each
 *     time the socket drained (LWS_CALLBACK_SERVER_WRITEABLE).
 * Paging keeps the seam exact: a row committed before the socket joined is
 * visible to every page's query, and pages are consecutive id ranges; a row
 * committed after it joined is also in the live stream.
 *
 * Live frames that arrive during the replay are held with their own budget
 * (held_bytes, the daemon passes send_queue_bytes; counted in Frame::cost(),
 * like the send queue): a client that cannot take
 * the replay as fast as its user's live traffic grows is a slow client (1008,
 * then it resumes from its last id).
 *
 * Thread: the lws service thread only.
 */
#pragma once

#include "frame.hpp"

#include <algorithm>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

namespace livenotify
{

struct ResumeLimits
{
	size_t page_rows = 100;		 /* rows per catch-up query */
	size_t max_rows = 1000;		 /* catchup_max_rows: beyond, resync `catchup_limit` */
	size_t held_bytes = 1 << 20; /* budget for live frames held back during the replay */
	size_t headroom = 0;		 /* LWS_PRE, for the resync frame built here */
};

class ResumeGate
{
public:
	/* Start a resume for source after the client's last id: live frames are held from now on. */
	void begin(const std::string &source, int64_t client_last_id,
			   const ResumeLimits &limits = ResumeLimits())
	{
		source_ = source;
		client_last_ = client_last_id;
		limits_ = limits;
		if (limits_.page_rows == 0)
			limits_.page_rows = 1;
		active_ = true;
		holding_ = true;
		end_ = End::None;
		fetching_ = false;
		resync_sent_ = false;
		after_ = client_last_id;
		fetched_ = 0;
		replayed_ = 0;
		replay_.clear();
		held_.clear();
		held_bytes_ = 0;
	}

	/*
	 * Start a resume by cursor (cursor.hpp): catch-up pages come from
	 * livenotify.catchup_cursor(), starting below every id; the ids the cursor
	 * lists are had, so neither a page nor a live frame sends them again.
	 */
	void begin_cursor(const std::string &source, const std::vector<int64_t> &had,
					  const ResumeLimits &limits = ResumeLimits())
	{
		begin(source, INT64_MIN, limits);
		delivered_.clear();
		delivered_.insert(had.begin(), had.end());
	}

	bool holding() const
	{
		return holding_;
	}
	size_t held_bytes() const
	{
		return held_bytes_;
	}
	/* Catch-up rows fetched and not handed out yet. */
	size_t pending_rows() const
	{
		return replay_.size();
	}
	/* Catch-up rows handed out (duplicates excluded). */
	size_t replayed() const
	{
		return replayed_;
	}

	enum class End
	{
		None,	   /* more pages to come */
		Complete,  /* every missed row was fetched */
		Truncated, /* max_rows reached with rows left: resync `catchup_limit` */
		Failed	   /* a query failed: resync `catchup_failed` */
	};
	End end() const
	{
		return end_;
	}

	/* Would this frame duplicate one the client has or got from catch-up? */
	bool is_duplicate(const Frame &f) const
	{
		if (!active_ || f.kind != FrameKind::Notification || f.source != source_)
			return false;
		return f.id <= client_last_ || delivered_.count(f.id) != 0;
	}

	enum class Live
	{
		Send,	 /* deliver now */
		Held,	 /* kept until the replay ends */
		Drop,	 /* duplicate */
		Overflow /* held frames over their budget: the client is too slow */
	};

	Live on_live(const FramePtr &f)
	{
		if (is_duplicate(*f))
			return Live::Drop;
		if (holding_)
		{
			if (!held_.empty() && held_bytes_ + f->cost() > limits_.held_bytes)
				return Live::Overflow;
			held_bytes_ += f->cost();
			held_.push_back(f);
			return Live::Held;
		}
		return Live::Send;
	}

	struct PageRequest
	{
		int64_t after_id; /* rows with id > after_id */
		size_t max_rows;  /* the query asks for one more, to tell whether rows remain */
	};

	/*
	 * The catch-up page to fetch now, if any (the request is then in flight):
	 * none while one is in flight, once the end is known, or while at least
	 * half a page still waits to be handed out.
	 */
	std::optional<PageRequest> next_page()
	{
		if (!holding_ || fetching_ || end_ != End::None || replay_.size() > limits_.page_rows / 2)
			return std::nullopt;
		size_t left = limits_.max_rows > fetched_ ? limits_.max_rows - fetched_ : 0;
		if (left == 0)
		{
			end_ = End::Truncated; /* max_rows == 0: nothing to replay */
			return std::nullopt;
		}
		fetching_ = true;
		return PageRequest{after_, std::min(limits_.page_rows, left)};
	}

	/*
	 * The page asked for arrived: rows in id order (at most the max_rows of
	 * the request); more: the query found rows beyond them.
	 */
	void on_page(std::vector<std::pair<int64_t, FramePtr>> rows, bool more)
	{
		fetching_ = false;
		if (!holding_)
			return;
		fetched_ += rows.size();
		for (auto &r : rows)
		{
			after_ = std::max(after_, r.first);
			/* A row the client has, or one catch-up already returned, is not sent twice. */
			if (r.first <= client_last_ || !delivered_.insert(r.first).second)
				continue;
			replay_.push_back(std::move(r.second));
		}
		if (!more)
			end_ = End::Complete;
		else if (fetched_ >= limits_.max_rows)
			end_ = End::Truncated;
	}

	/* The page's query failed: what was fetched is still sent, then resync `catchup_failed`. */
	void on_page_failed()
	{
		fetching_ = false;
		if (end_ == End::None)
			end_ = End::Failed;
	}

	/*
	 * The next frame of this resume to put into the send queue, or nullptr
	 * when nothing may go now: the queue holds half its bound or more (pull
	 * again once it drained), or the next page has not arrived.  Order: the
	 * replayed rows, the resync trailer (truncated or failed), the held live
	 * frames without duplicates.  When the last held frame is out the gate
	 * opens (holding() turns false) and live frames flow directly.
	 */
	FramePtr pull(size_t queued_bytes, size_t queue_limit)
	{
		if (!holding_)
			return nullptr;
		if (!replay_.empty())
		{
			if (!fits(queued_bytes, queue_limit, replay_.front()->cost()))
				return nullptr;
			FramePtr f = std::move(replay_.front());
			replay_.pop_front();
			replayed_++;
			return f;
		}
		if (end_ == End::None)
			return nullptr; /* the next page is on its way (or must be asked for) */
		if ((end_ == End::Truncated || end_ == End::Failed) && !resync_sent_)
		{
			FramePtr f = make_resync_frame(end_ == End::Failed ? "catchup_failed" : "catchup_limit",
										   limits_.headroom);
			if (!fits(queued_bytes, queue_limit, f->cost()))
				return nullptr;
			resync_sent_ = true;
			return f;
		}
		while (!held_.empty())
		{
			FramePtr &front = held_.front();
			if (is_duplicate(*front))
			{
				held_bytes_ -= front->cost();
				held_.pop_front();
				continue;
			}
			if (!fits(queued_bytes, queue_limit, front->cost()))
				return nullptr;
			FramePtr f = std::move(front);
			held_.pop_front();
			held_bytes_ -= f->cost();
			return f;
		}
		holding_ = false; /* the seam is passed */
		return nullptr;
	}

private:
	/* Resume frames fill the send queue up to half its bound; an empty queue takes any frame. */
	static bool fits(size_t queued_bytes, size_t queue_limit, size_t n)
	{
		return queued_bytes == 0 || queued_bytes + n <= queue_limit / 2;
	}

	std::string source_;
	int64_t client_last_ = 0;
	ResumeLimits limits_;
	bool active_ = false;
	bool holding_ = false;
	End end_ = End::None;
	bool fetching_ = false;
	bool resync_sent_ = false;
	int64_t after_ = 0;	 /* the next page starts after this id */
	size_t fetched_ = 0; /* rows returned by catch-up so far (for max_rows) */
	size_t replayed_ = 0;
	std::unordered_set<int64_t> delivered_;
	std::deque<FramePtr> replay_;
	std::deque<FramePtr> held_;
	size_t held_bytes_ = 0;
};

} // namespace livenotify
