/*
 * groups.hpp: per-user socket groups.
 *
 * GroupRegistry is the service thread's map user -> sockets (several tabs,
 * several devices), with the per-user and total limits.  It is not locked:
 * only the lws service thread uses it.
 *
 * ActiveUsers is the small locked view the reader thread needs ("which of
 * these users have a socket here?") so it can skip users with no socket and
 * ask unread counts only for the others.  The service thread updates it when
 * a user's first socket joins and the last one leaves.
 */
#pragma once

#include <algorithm>
#include <cstddef>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace livenotify
{

enum class Admission
{
	Ok,
	UserLimit,
	TotalLimit
};

template <typename Handle> class GroupRegistry
{
public:
	GroupRegistry(size_t max_total, size_t max_per_user)
		: max_total_(max_total), max_per_user_(max_per_user)
	{
	}

	/* SIGHUP may change the limits; existing sockets stay. */
	void set_limits(size_t max_total, size_t max_per_user)
	{
		max_total_ = max_total;
		max_per_user_ = max_per_user;
	}

	/* Would one more socket for user be admitted?  Counts sockets still authenticating too
	 * (reserve()). */
	Admission admit(const std::string &user) const
	{
		if (sockets_ + reserved_ >= max_total_)
			return Admission::TotalLimit;
		auto it = groups_.find(user);
		if (it != groups_.end() && it->second.size() >= max_per_user_)
			return Admission::UserLimit;
		return Admission::Ok;
	}

	/* Total-limit slots for sockets whose user is not known yet (first-message or SQL auth). */
	bool reserve()
	{
		if (sockets_ + reserved_ >= max_total_)
			return false;
		reserved_++;
		return true;
	}
	void unreserve()
	{
		if (reserved_ > 0)
			reserved_--;
	}

	/* Returns true when this is the user's first socket (the user became active). */
	bool add(const std::string &user, Handle h)
	{
		auto &g = groups_[user];
		g.push_back(h);
		sockets_++;
		return g.size() == 1;
	}

	/* Returns true when this was the user's last socket (the user became inactive). */
	bool remove(const std::string &user, Handle h)
	{
		auto it = groups_.find(user);
		if (it == groups_.end())
			return false;
		auto &g = it->second;
		auto pos = std::find(g.begin(), g.end(), h);
		if (pos == g.end())
			return false;
		/* Order within a group does not matter: swap-and-pop keeps removal O(1) after the find. */
		*pos = g.back();
		g.pop_back();
		sockets_--;
		if (g.empty())
		{
			groups_.erase(it);
			return true;
		}
		return false;
	}

	const std::vector<Handle> *find(const std::string &user) const
	{
		auto it = groups_.find(user);
		return it == groups_.end() ? nullptr : &it->second;
	}

	template <typename Fn> void for_each(Fn fn) const
	{
		for (const auto &kv : groups_)
			for (const auto &h : kv.second)
				fn(kv.first, h);
	}

	size_t sockets() const
	{
		return sockets_;
	}
	size_t users() const
	{
		return groups_.size();
	}
	size_t reserved() const
	{
		return reserved_;
	}

private:
	std::unordered_map<std::string, std::vector<Handle>> groups_;
	size_t sockets_ = 0;
	size_t reserved_ = 0;
	size_t max_total_;
	size_t max_per_user_;
};

class ActiveUsers
{
public:
	/* Service thread. */
	void activate(const std::string &user)
	{
		std::lock_guard<std::mutex> g(mu_);
		users_.insert(user);
	}
	void deactivate(const std::string &user)
	{
		std::lock_guard<std::mutex> g(mu_);
		users_.erase(user);
	}

	/* Reader thread: one lock per batch.  flags[i] = whether keys[i] is active. */
	std::vector<bool> filter(const std::vector<std::string> &keys) const
	{
		std::vector<bool> out(keys.size());
		std::lock_guard<std::mutex> g(mu_);
		for (size_t i = 0; i < keys.size(); i++)
			out[i] = users_.count(keys[i]) != 0;
		return out;
	}

	size_t size() const
	{
		std::lock_guard<std::mutex> g(mu_);
		return users_.size();
	}

private:
	mutable std::mutex mu_;
	std::unordered_set<std::string> users_;
};

} // namespace livenotify
