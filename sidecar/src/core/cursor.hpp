/*
 * cursor.hpp: resume cursors (docs/protocol.md "Resume").
 *
 * Ids are taken at INSERT and become visible at COMMIT, so "the largest id a
 * tab saw" does not say which rows it had: a row with a smaller id can commit
 * later.  A cursor says it exactly, with the extension's read horizon
 * (livenotify.read_horizon(), extension/inflight.cpp):
 *
 *	  v1.<system identifier>.<timeline>.<horizon>[.<id>]...
 *
 * The tab had every row whose xmin is below horizon, and the rows with the
 * ids listed; livenotify.catchup_cursor() returns the others.  The system
 * identifier and timeline (livenotify.origin()) name the history the xids
 * and ids belong to: a cursor from another one gets resync `cursor_foreign`.
 *
 * CursorBook keeps, per (source, user), the ids delivered recently with the
 * xid below which each one's row lies (the batch's horizon xmax): an id can
 * leave the list once the base horizon passes it.  Losing an id from the list
 * (the list is capped, the book is bounded) only makes a later catch-up send
 * that row again, never skip one.
 *
 * Thread: Cursor functions any; a CursorBook belongs to one thread (the reader).
 */
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace livenotify
{

/* Ids a cursor made here lists at most; a parsed one may list up to kCursorMaxIdsParsed. */
constexpr size_t kCursorMaxIds = 16;
constexpr size_t kCursorMaxIdsParsed = 64;
/* Longest cursor text accepted (64 ids of 18 digits and the header fit). */
constexpr size_t kCursorMaxLength = 1400;

struct Cursor
{
	std::string system; /* decimal system identifier */
	int64_t timeline = 0;
	uint64_t horizon = 0;
	std::vector<int64_t> had;

	std::string encode() const;
	/* Bounded parse; nullopt (and *error) when text is not a v1 cursor. */
	static std::optional<Cursor> parse(std::string_view text, std::string *error = nullptr);
	/* "sys.tli": what origin() of the database must match. */
	std::string origin() const
	{
		return system + "." + std::to_string(timeline);
	}
	/* Add an id the tab now has, dropping the oldest beyond kCursorMaxIds. */
	void add_had(int64_t id);
};

class CursorBook
{
public:
	explicit CursorBook(size_t max_keys = 100000) : max_keys_(max_keys)
	{
	}

	/*
	 * The cursor of a notification frame (source, user, id) built in a batch
	 * whose base horizon is base (the xmin of an earlier complete read) and
	 * whose own horizon xmax is expiry (UINT64_MAX when unknown).
	 */
	std::string stamp(const std::string &origin_system, int64_t timeline, uint64_t base,
					  const std::string &source, const std::string &user, int64_t id,
					  uint64_t expiry);

	/* Another history (origin changed): nothing known holds. */
	void clear()
	{
		book_.clear();
	}
	size_t keys() const
	{
		return book_.size();
	}

private:
	struct Had
	{
		int64_t id;
		uint64_t expiry;
	};
	size_t max_keys_;
	std::unordered_map<std::string, std::deque<Had>> book_;
};

} // namespace livenotify
