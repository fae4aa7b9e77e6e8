/*
 * address_limits.hpp: how many sockets, and how many not yet authenticated,
 * one client address holds.
 *
 * The pre-auth budget (preauth.hpp) keeps unauthenticated sockets away from
 * max_sockets, but one address could still fill that budget and evict
 * everyone else's pending sockets, or hold max_sockets worth of
 * authenticated ones with many accounts.  nginx's limit_conn is the model: a
 * small table keyed by address, counted at admission, before any
 * authentication work.  The address is the one net_address.hpp's
 * client_address() gives (the proxy's client, not the proxy).  No sockets here.
 */
#pragma once

#include <cstddef>
#include <string>
#include <unordered_map>

namespace livenotify
{

enum class AddressAdmission
{
	Ok,
	SocketLimit,  /* the address already holds max_sockets_per_address sockets */
	PendingLimit, /* ... or max_pending_auth_per_address unauthenticated ones */
};

class AddressLimits
{
public:
	AddressLimits(size_t max_sockets, size_t max_pending)
		: max_sockets_(max_sockets), max_pending_(max_pending)
	{
	}

	/* A new socket from addr, not authenticated yet (pending) or already (a token in the URL). */
	AddressAdmission admit(const std::string &addr, bool pending)
	{
		Count &c = counts_[addr];
		if (c.sockets >= max_sockets_)
			return drop_if_empty(addr, AddressAdmission::SocketLimit);
		if (pending && c.pending >= max_pending_)
			return drop_if_empty(addr, AddressAdmission::PendingLimit);
		c.sockets++;
		if (pending)
			c.pending++;
		return AddressAdmission::Ok;
	}

	/* A pending socket of addr authenticated: it stays counted as a socket. */
	void authenticated(const std::string &addr)
	{
		auto it = counts_.find(addr);
		if (it != counts_.end() && it->second.pending > 0)
			it->second.pending--;
	}

	/* A socket of addr went (pending: it had not authenticated). */
	void release(const std::string &addr, bool pending)
	{
		auto it = counts_.find(addr);
		if (it == counts_.end())
			return;
		if (it->second.sockets > 0)
			it->second.sockets--;
		if (pending && it->second.pending > 0)
			it->second.pending--;
		if (it->second.sockets == 0)
			counts_.erase(it);
	}

	/* SIGHUP: sockets already over a smaller limit stay; new ones are refused. */
	void set_limits(size_t max_sockets, size_t max_pending)
	{
		max_sockets_ = max_sockets;
		max_pending_ = max_pending;
	}

	size_t sockets(const std::string &addr) const
	{
		auto it = counts_.find(addr);
		return it == counts_.end() ? 0 : it->second.sockets;
	}
	size_t pending(const std::string &addr) const
	{
		auto it = counts_.find(addr);
		return it == counts_.end() ? 0 : it->second.pending;
	}
	/* Addresses with at least one socket (the table never holds more). */
	size_t addresses() const
	{
		return counts_.size();
	}

private:
	struct Count
	{
		size_t sockets = 0;
		size_t pending = 0;
	};

	AddressAdmission drop_if_empty(const std::string &addr, AddressAdmission a)
	{
		auto it = counts_.find(addr);
		if (it != counts_.end() && it->second.sockets == 0)
			counts_.erase(it);
		return a;
	}

	size_t max_sockets_;
	size_t max_pending_;
	std::unordered_map<std::string, Count> counts_;
};

} // namespace livenotify
