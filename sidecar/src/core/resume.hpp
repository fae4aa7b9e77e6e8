/*
 * resume.hpp: the seam between catch-up rows and live frames.
 *
 * A resuming socket joins its user's group (so live frames for it start to
 * flow) before the catch-up query runs.  Every row is then in the catch-up
 * result, in the live stream, or in both: never in neither.  While catch-up
 * runs, live frames are held back; when it ends, the held frames are released
 * in order without the rows catch-up already delivered.
 *
 * De-duplication is by the exact set of ids catch-up delivered (and ids the
 * client said it has, <= last_id), not by "id <= highest catch-up id": ids are
 * assigned at INSERT but become visible at COMMIT, so a row with a smaller id
 * can commit after the catch-up snapshot and would be lost by a high-water
 * mark.  The filter stays on after the seam because the reader may still be
 * behind the catch-up snapshot.  Only notification frames of the catch-up
 * source carry ids; all other frames pass through (in order).
 *
 * Thread: the lws service thread only.
 */
#pragma once

#include "frame.hpp"

#include <cstdint>
#include <string>
#include <unordered_set>
#include <vector>

namespace livenotify
{

class ResumeGate
{
public:
	/* Start a resume for source after the client's last id: live frames are held from now on. */
	void begin(const std::string &source, int64_t client_last_id)
	{
		source_ = source;
		client_last_ = client_last_id;
		active_ = true;
		holding_ = true;
		held_.clear();
		held_bytes_ = 0;
	}

	bool holding() const
	{
		return holding_;
	}
	size_t held_bytes() const
	{
		return held_bytes_;
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
		Send, /* deliver now */
		Held, /* kept until the catch-up ends */
		Drop  /* duplicate */
	};

	Live on_live(const FramePtr &f)
	{
		if (is_duplicate(*f))
			return Live::Drop;
		if (holding_)
		{
			held_bytes_ += f->size();
			held_.push_back(f);
			return Live::Held;
		}
		return Live::Send;
	}

	/* A catch-up row is about to be sent; returns false if it is a duplicate (already sent). */
	bool on_catchup(int64_t id)
	{
		if (id <= client_last_)
			return false;
		return delivered_.insert(id).second;
	}

	/* Catch-up finished: the held frames to send now, in arrival order, without duplicates. */
	std::vector<FramePtr> finish()
	{
		holding_ = false;
		std::vector<FramePtr> out;
		out.reserve(held_.size());
		for (auto &f : held_)
			if (!is_duplicate(*f))
				out.push_back(std::move(f));
		held_.clear();
		held_bytes_ = 0;
		return out;
	}

private:
	std::string source_;
	int64_t client_last_ = 0;
	bool active_ = false;
	bool holding_ = false;
	std::unordered_set<int64_t> delivered_;
	std::vector<FramePtr> held_;
	size_t held_bytes_ = 0;
};

} // namespace livenotify
