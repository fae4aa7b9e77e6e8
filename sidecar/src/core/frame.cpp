/*
 * frame.cpp: see frame.hpp.
 */
#include "frame.hpp"

#include <nlohmann/json.hpp>

namespace livenotify
{

namespace
{

FramePtr
new_frame(FrameKind kind, size_t headroom, size_t reserve)
{
	auto f = std::make_shared<Frame>();
	f->kind = kind;
	f->headroom = headroom;
	f->buf.reserve(headroom + reserve);
	f->buf.assign(headroom, '\0');
	return f;
}

/*
 * SAX handler that stops the parse as soon as the value of the wanted
 * top-level key has been seen (returning false from a callback ends
 * nlohmann's sax_parse early), so locating the id costs a scan of the row's
 * prefix, not a DOM.
 */
class TopLevelIntFinder : public nlohmann::json_sax<nlohmann::json>
{
public:
	explicit TopLevelIntFinder(std::string_view key) : key_(key)
	{
	}

	std::optional<int64_t> result;

	bool null() override
	{
		return value_seen();
	}
	bool boolean(bool) override
	{
		return value_seen();
	}
	bool number_integer(number_integer_t v) override
	{
		return int_seen(v);
	}
	bool number_unsigned(number_unsigned_t v) override
	{
		if (v > static_cast<number_unsigned_t>(INT64_MAX))
			return value_seen();
		return int_seen(static_cast<int64_t>(v));
	}
	bool number_float(number_float_t, const string_t &) override
	{
		return value_seen();
	}
	bool string(string_t &) override
	{
		return value_seen();
	}
	bool binary(binary_t &) override
	{
		return value_seen();
	}
	bool start_object(std::size_t) override
	{
		if (depth_ == 0 && started_)
			return false; /* a second top-level value: not ours */
		if (depth_ == 1 && matched_)
			return false; /* the key's value is an object: not an integer */
		started_ = true;
		depth_++;
		return true;
	}
	bool end_object() override
	{
		depth_--;
		return true;
	}
	bool start_array(std::size_t) override
	{
		if (depth_ == 0)
			return false; /* top level must be an object */
		if (depth_ == 1 && matched_)
			return false;
		depth_++;
		return true;
	}
	bool end_array() override
	{
		depth_--;
		return true;
	}
	bool key(string_t &k) override
	{
		if (depth_ == 1)
			matched_ = (k == key_);
		return true;
	}
	bool parse_error(std::size_t, const std::string &, const nlohmann::detail::exception &) override
	{
		return false;
	}

private:
	bool value_seen()
	{
		if (depth_ == 0)
			return false;
		return !(depth_ == 1 && matched_); /* matched but not an integer: stop, no result */
	}
	bool int_seen(int64_t v)
	{
		if (depth_ == 1 && matched_)
		{
			result = v;
			return false; /* found: stop parsing */
		}
		return value_seen();
	}

	std::string_view key_;
	int depth_ = 0;
	bool started_ = false;
	bool matched_ = false;
};

} // namespace

std::string
json_string(std::string_view s)
{
	/* error_handler_t::replace: invalid UTF-8 becomes U+FFFD rather than throwing. */
	return nlohmann::json(std::string(s))
		.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::optional<int64_t>
find_top_level_int(std::string_view json, std::string_view key)
{
	TopLevelIntFinder finder(key);
	/* strict=false: we stop early on purpose, trailing input is not an error. */
	nlohmann::json::sax_parse(json.begin(), json.end(), &finder,
							  nlohmann::json::input_format_t::json, false);
	return finder.result;
}

FramePtr
make_notification_frame(std::string_view source, int64_t id, std::string_view row_json,
						std::optional<int64_t> unread, size_t headroom, std::string_view cursor,
						bool count_error)
{
	std::string src = json_string(source);
	auto f = new_frame(FrameKind::Notification, headroom,
					   row_json.size() + src.size() + cursor.size() + 96);
	f->id = id;
	f->source = std::string(source);
	std::string &b = f->buf;
	b += "{\"type\":\"notification\",\"source\":";
	b += src;
	b += ",\"id\":";
	b += std::to_string(id);
	if (!cursor.empty())
	{
		/* Escaped all the same: the builder does not rely on the caller's format. */
		b += ",\"cursor\":";
		b += json_string(cursor);
	}
	b += ",\"notification\":";
	b += row_json;
	if (unread)
	{
		b += ",\"unread_count\":";
		b += std::to_string(*unread);
	}
	else if (count_error)
		b += ",\"unread_count_error\":true";
	b += '}';
	return f;
}

FramePtr
make_unread_count_frame(std::string_view source, int64_t unread, size_t headroom)
{
	std::string src = json_string(source);
	auto f = new_frame(FrameKind::UnreadCount, headroom, src.size() + 64);
	f->source = std::string(source);
	f->buf += "{\"type\":\"unread_count\",\"source\":";
	f->buf += src;
	f->buf += ",\"unread_count\":";
	f->buf += std::to_string(unread);
	f->buf += '}';
	return f;
}

FramePtr
make_ephemeral_frame(std::string_view kind, const std::optional<std::string_view> &payload,
					 size_t headroom)
{
	std::string k = json_string(kind);
	size_t plen = payload ? payload->size() : 0;
	auto f = new_frame(FrameKind::Ephemeral, headroom, k.size() + plen + 32);
	std::string &b = f->buf;
	b += "{\"type\":";
	b += k;
	if (!payload)
	{
		b += '}';
		return f;
	}
	/*
	 * Ephemeral messages are rare next to notifications, so a full parse to
	 * check the shape is affordable here; the text sent is still the
	 * original, not a re-serialisation.
	 */
	nlohmann::json doc = nlohmann::json::parse(payload->begin(), payload->end(), nullptr, false);
	if (!doc.is_discarded() && doc.is_object() && !doc.contains("type"))
	{
		if (doc.empty())
		{
			b += '}';
			return f;
		}
		std::string_view p = *payload;
		size_t open = p.find('{');
		b += ',';
		b += p.substr(open + 1); /* members and the closing brace */
		return f;
	}
	b += ",\"payload\":";
	if (doc.is_discarded())
		b += json_string(*payload); /* not JSON at all: send it as a string */
	else
		b += *payload;
	b += '}';
	return f;
}

FramePtr
make_hello_frame(std::string_view user, int64_t epoch, size_t headroom)
{
	auto f = new_frame(FrameKind::Hello, headroom, user.size() + 64);
	f->buf += "{\"type\":\"hello\",\"protocol\":1,\"user\":";
	f->buf += json_string(user);
	f->buf += ",\"epoch\":";
	f->buf += std::to_string(epoch);
	f->buf += '}';
	return f;
}

FramePtr
make_resync_frame(std::string_view reason, size_t headroom)
{
	auto f = new_frame(FrameKind::Resync, headroom, reason.size() + 32);
	f->buf += "{\"type\":\"resync\",\"reason\":";
	f->buf += json_string(reason);
	f->buf += '}';
	return f;
}

FramePtr
make_pong_frame(size_t headroom)
{
	auto f = new_frame(FrameKind::Pong, headroom, 16);
	f->buf += "{\"type\":\"pong\"}";
	return f;
}

} // namespace livenotify
