/*
 * unread_cache.hpp: each online user's unread count, kept exact from the
 * queue instead of counted again for every batch.
 *
 * Counting a user's unread rows costs a visit to each of them, and every
 * frame of a batch waits for it.  So a count is fetched once (together with
 * the snapshot it was counted in, pg_current_snapshot()) and then moved on
 * by the queue itself:
 *
 *   - a `notification` entry whose row is unread adds 1, unless its
 *     transaction is visible in the snapshot the count was taken in (the row
 *     was already counted: it committed before the count, but reached the
 *     ring after the batch the count was fetched for);
 *   - every other change to a user's count (mark-as-read, a user column
 *     changed, a delete, a skipped unread row) comes as an `unread_count`
 *     entry, after which the count is fetched again;
 *   - an `unread_count` entry without a user (TRUNCATE) forgets the source.
 *
 * The snapshot test is exact because the extension appends a transaction's
 * entries to the ring only after the transaction has left the proc array:
 * an entry read before a count was fetched is always visible in that
 * count's snapshot, and one read after it is visible only if it committed
 * before.
 *
 * The reader skips the entries of users without a socket, so it forgets a
 * user's count when it sees one of their entries while they are offline.
 * Counts older than the TTL are fetched again, which also bounds the error
 * of a change made with the capture switched off (livenotify.enabled = off,
 * triggers disabled).
 *
 * Used by the reader thread only: no locking.  Free of lws and libpq so it
 * is unit-tested without a database.
 */
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace livenotify
{

/* A pg_snapshot ("xmin:xmax:xip,..."), 64-bit transaction ids. */
struct PgSnapshot
{
	uint64_t xmin = 0;
	uint64_t xmax = 0;
	std::vector<uint64_t> xip; /* sorted */

	/* nullopt unless text is a well-formed pg_snapshot. */
	static std::optional<PgSnapshot> parse(std::string_view text);

	/* Were the effects of committed transaction xid visible in this snapshot? */
	bool visible(uint64_t xid) const;
};

class UnreadCache
{
public:
	using Clock = std::chrono::steady_clock;

	/* ttl zero: nothing is cached, every count is fetched. */
	explicit UnreadCache(std::chrono::milliseconds ttl) : ttl_(ttl)
	{
	}

	bool enabled() const
	{
		return ttl_.count() > 0;
	}

	/* Is a count cached for (source, user) and younger than the TTL? */
	bool fresh(const std::string &source, const std::string &user, Clock::time_point now) const;

	/* A fetched count and the snapshot it was counted in. */
	void put(const std::string &source, const std::string &user, int64_t count,
			 std::shared_ptr<const PgSnapshot> snapshot, Clock::time_point fetched);

	/*
	 * A notification entry of committed transaction xid: the user's count
	 * after it, or nullopt when none is cached.  unread: the row counts.
	 */
	std::optional<int64_t> on_notification(const std::string &source, const std::string &user,
										   uint64_t xid, bool unread);

	std::optional<int64_t> get(const std::string &source, const std::string &user) const;

	void forget(const std::string &source, const std::string &user);
	void forget_source(const std::string &source);
	void clear()
	{
		sources_.clear();
	}

	/* Drop the counts older than the TTL; call now and then. */
	void expire(Clock::time_point now);

	size_t size() const;

private:
	struct Item
	{
		int64_t count;
		std::shared_ptr<const PgSnapshot> snapshot;
		Clock::time_point fetched;
	};
	using Users = std::unordered_map<std::string, Item>;

	Item *find(const std::string &source, const std::string &user);
	const Item *find(const std::string &source, const std::string &user) const;

	std::chrono::milliseconds ttl_;
	std::unordered_map<std::string, Users> sources_; /* source -> user key -> count */
};

} // namespace livenotify
