/*
 * cursor.cpp: see cursor.hpp.
 */
#include "cursor.hpp"

#include <algorithm>

namespace livenotify
{

namespace
{

/* Decimal digits only, 1..max_digits of them, no sign. */
bool
parse_digits(std::string_view s, size_t max_digits, uint64_t *out)
{
	if (s.empty() || s.size() > max_digits)
		return false;
	uint64_t v = 0;
	for (char c : s)
	{
		if (c < '0' || c > '9')
			return false;
		uint64_t d = static_cast<uint64_t>(c - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

} // namespace

std::string
Cursor::encode() const
{
	std::string s = "v1." + system + "." + std::to_string(timeline) + "." + std::to_string(horizon);
	for (int64_t id : had)
	{
		s += '.';
		s += std::to_string(id);
	}
	return s;
}

std::optional<Cursor>
Cursor::parse(std::string_view text, std::string *error)
{
	auto fail = [&](const char *why) -> std::optional<Cursor> {
		if (error)
			*error = why;
		return std::nullopt;
	};
	if (text.size() > kCursorMaxLength)
		return fail("cursor too long");
	std::vector<std::string_view> parts;
	size_t pos = 0;
	while (true)
	{
		size_t dot = text.find('.', pos);
		parts.push_back(text.substr(pos, dot == std::string_view::npos ? text.npos : dot - pos));
		if (parts.size() > 4 + kCursorMaxIdsParsed)
			return fail("cursor lists too many ids");
		if (dot == std::string_view::npos)
			break;
		pos = dot + 1;
	}
	if (parts.size() < 4 || parts[0] != "v1")
		return fail("not a v1 cursor");
	Cursor c;
	uint64_t v;
	if (!parse_digits(parts[1], 20, &v))
		return fail("bad system identifier in cursor");
	c.system = std::to_string(v); /* canonical: no leading zeros */
	if (!parse_digits(parts[2], 10, &v) || v == 0 || v > UINT32_MAX)
		return fail("bad timeline in cursor");
	c.timeline = static_cast<int64_t>(v);
	if (!parse_digits(parts[3], 20, &v) || v > static_cast<uint64_t>(INT64_MAX))
		return fail("bad horizon in cursor");
	c.horizon = v;
	for (size_t i = 4; i < parts.size(); i++)
	{
		if (!parse_digits(parts[i], 18, &v))
			return fail("bad id in cursor");
		c.had.push_back(static_cast<int64_t>(v));
	}
	return c;
}

void
Cursor::add_had(int64_t id)
{
	if (std::find(had.begin(), had.end(), id) != had.end())
		return;
	had.push_back(id);
	while (had.size() > kCursorMaxIds)
		had.erase(had.begin());
}

std::string
CursorBook::stamp(const std::string &origin_system, int64_t timeline, uint64_t base,
				  const std::string &source, const std::string &user, int64_t id, uint64_t expiry)
{
	std::string key = source;
	key += '\0';
	key += user;
	auto it = book_.find(key);
	if (it == book_.end())
	{
		/* Bounded: forgetting only costs duplicates on a later resume. */
		if (book_.size() >= max_keys_)
			book_.clear();
		it = book_.emplace(std::move(key), std::deque<Had>()).first;
	}
	std::deque<Had> &d = it->second;
	/* A row whose xids are all below base is below the horizon: no need to list it. */
	d.erase(std::remove_if(d.begin(), d.end(), [&](const Had &h) { return h.expiry <= base; }),
			d.end());
	bool present = false;
	for (const Had &h : d)
		present = present || h.id == id;
	if (!present)
		d.push_back(Had{id, expiry});
	while (d.size() > kCursorMaxIds)
		d.pop_front();

	Cursor c;
	c.system = origin_system;
	c.timeline = timeline;
	c.horizon = base;
	for (const Had &h : d)
		c.had.push_back(h.id);
	return c.encode();
}

} // namespace livenotify
