/*
 * unread_cache.cpp: see unread_cache.hpp.
 */
#include "unread_cache.hpp"

#include <algorithm>
#include <charconv>

namespace livenotify
{

namespace
{

bool
parse_u64(std::string_view s, uint64_t *out)
{
	if (s.empty())
		return false;
	auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
	return ec == std::errc() && end == s.data() + s.size();
}

} // namespace

std::optional<PgSnapshot>
PgSnapshot::parse(std::string_view text)
{
	PgSnapshot s;
	size_t c1 = text.find(':');
	if (c1 == std::string_view::npos)
		return std::nullopt;
	size_t c2 = text.find(':', c1 + 1);
	if (c2 == std::string_view::npos)
		return std::nullopt;
	if (!parse_u64(text.substr(0, c1), &s.xmin) ||
		!parse_u64(text.substr(c1 + 1, c2 - c1 - 1), &s.xmax) || s.xmin > s.xmax)
		return std::nullopt;
	std::string_view rest = text.substr(c2 + 1);
	while (!rest.empty())
	{
		size_t comma = rest.find(',');
		uint64_t x;
		if (!parse_u64(rest.substr(0, comma), &x) || x < s.xmin || x >= s.xmax)
			return std::nullopt;
		s.xip.push_back(x);
		if (comma == std::string_view::npos)
			break;
		rest = rest.substr(comma + 1);
		if (rest.empty())
			return std::nullopt; /* trailing comma */
	}
	std::sort(s.xip.begin(), s.xip.end());
	return s;
}

bool
PgSnapshot::visible(uint64_t xid) const
{
	if (xid < xmin)
		return true; /* finished before the snapshot: committed, since it is in the ring */
	if (xid >= xmax)
		return false; /* started after it */
	return !std::binary_search(xip.begin(), xip.end(), xid);
}

UnreadCache::Item *
UnreadCache::find(const std::string &source, const std::string &user)
{
	auto s = sources_.find(source);
	if (s == sources_.end())
		return nullptr;
	auto u = s->second.find(user);
	return u == s->second.end() ? nullptr : &u->second;
}

const UnreadCache::Item *
UnreadCache::find(const std::string &source, const std::string &user) const
{
	return const_cast<UnreadCache *>(this)->find(source, user);
}

bool
UnreadCache::fresh(const std::string &source, const std::string &user, Clock::time_point now) const
{
	const Item *item = enabled() ? find(source, user) : nullptr;
	return item != nullptr && now - item->fetched < ttl_;
}

void
UnreadCache::put(const std::string &source, const std::string &user, int64_t count,
				 std::shared_ptr<const PgSnapshot> snapshot, Clock::time_point fetched)
{
	/* Without a snapshot an entry could not be placed before or after the count. */
	if (!enabled() || !snapshot)
	{
		forget(source, user);
		return;
	}
	sources_[source][user] = Item{count, std::move(snapshot), fetched};
}

std::optional<int64_t>
UnreadCache::on_notification(const std::string &source, const std::string &user, uint64_t xid,
							 bool unread)
{
	Item *item = find(source, user);
	if (item == nullptr)
		return std::nullopt;
	if (unread && !item->snapshot->visible(xid))
		item->count++;
	return item->count;
}

std::optional<int64_t>
UnreadCache::get(const std::string &source, const std::string &user) const
{
	const Item *item = find(source, user);
	if (item == nullptr)
		return std::nullopt;
	return item->count;
}

void
UnreadCache::forget(const std::string &source, const std::string &user)
{
	auto s = sources_.find(source);
	if (s != sources_.end())
		s->second.erase(user);
}

void
UnreadCache::forget_source(const std::string &source)
{
	sources_.erase(source);
}

void
UnreadCache::expire(Clock::time_point now)
{
	for (auto &s : sources_)
		for (auto it = s.second.begin(); it != s.second.end();)
		{
			if (now - it->second.fetched >= ttl_)
				it = s.second.erase(it);
			else
				++it;
		}
}

size_t
UnreadCache::size() const
{
	size_t n = 0;
	for (const auto &s : sources_)
		n += s.second.size();
	return n;
}

} // namespace livenotify
