/*
 * preauth.hpp: the budget of sockets that have not authenticated yet.
 *
 * A socket whose user is unknown at the upgrade (a first-message token, SQL
 * auth) costs a file descriptor and a session until it authenticates or its
 * deadline passes.  Such sockets used to hold max_sockets slots, so a client
 * without credentials could take every slot from real users (issue 12).
 * They now have a separate, small budget, and when it is full the oldest
 * pending socket is evicted to admit the new one: an attacker only evicts
 * his own sockets (or another pending one, which retries), never an
 * authenticated user's.  nginx's limit_conn is the model: a small state of
 * its own, counted before the expensive work starts.  No sockets here.
 */
#pragma once

#include <cstdint>
#include <list>
#include <optional>
#include <unordered_map>

namespace livenotify
{

class PreAuthBudget
{
public:
	explicit PreAuthBudget(size_t limit) : limit_(limit < 1 ? 1 : limit)
	{
	}

	/* Admit session id; if the budget was full, the oldest pending id, now evicted from it. */
	std::optional<uint64_t> admit(uint64_t id)
	{
		std::optional<uint64_t> evicted;
		if (order_.size() >= limit_)
		{
			evicted = order_.front();
			remove(*evicted);
		}
		order_.push_back(id);
		where_[id] = std::prev(order_.end());
		return evicted;
	}

	/* Authenticated, closed or evicted: its place is free.  Unknown ids are ignored. */
	void remove(uint64_t id)
	{
		auto it = where_.find(id);
		if (it == where_.end())
			return;
		order_.erase(it->second);
		where_.erase(it);
	}

	/* SIGHUP: a smaller budget applies to the next admission (it evicts down to it one by one). */
	void set_limit(size_t limit)
	{
		limit_ = limit < 1 ? 1 : limit;
	}

	bool contains(uint64_t id) const
	{
		return where_.count(id) != 0;
	}
	size_t size() const
	{
		return order_.size();
	}
	size_t limit() const
	{
		return limit_;
	}

private:
	size_t limit_;
	std::list<uint64_t> order_; /* oldest first */
	std::unordered_map<uint64_t, std::list<uint64_t>::iterator> where_;
};

} // namespace livenotify
