/*
 * client_message.cpp: see client_message.hpp.
 */
#include "client_message.hpp"

#include "cursor.hpp"

#include <nlohmann/json.hpp>

namespace livenotify
{

std::optional<int64_t>
parse_id(std::string_view text)
{
	if (text.empty() || text.size() > 18)
		return std::nullopt;
	int64_t v = 0;
	for (char c : text)
	{
		if (c < '0' || c > '9')
			return std::nullopt;
		v = v * 10 + (c - '0');
	}
	return v;
}

ClientMessage
parse_client_message(std::string_view text)
{
	ClientMessage m;
	nlohmann::json doc = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
	if (doc.is_discarded() || !doc.is_object())
	{
		m.error = "not a JSON object";
		return m;
	}
	auto type = doc.find("type");
	if (type == doc.end() || !type->is_string())
	{
		m.error = "missing type";
		return m;
	}
	const std::string &t = type->get_ref<const std::string &>();

	auto last = doc.find("last_id");
	if (last != doc.end() && !last->is_null())
	{
		if (last->is_number_integer() && last->get<int64_t>() >= 0)
			m.last_id = last->get<int64_t>();
		else if (last->is_string() && parse_id(last->get_ref<const std::string &>()))
			m.last_id = parse_id(last->get_ref<const std::string &>());
		else
		{
			m.error = "last_id must be a non-negative integer";
			return m;
		}
	}

	auto cur = doc.find("cursor");
	if (cur != doc.end() && !cur->is_null())
	{
		std::string why;
		if (!cur->is_string())
		{
			m.error = "cursor must be a string";
			return m;
		}
		if (!Cursor::parse(cur->get_ref<const std::string &>(), &why))
		{
			m.error = why;
			return m;
		}
		m.cursor = cur->get<std::string>();
	}

	if (t == "auth")
	{
		auto tok = doc.find("token");
		if (tok != doc.end())
		{
			if (!tok->is_string())
			{
				m.error = "token must be a string";
				return m;
			}
			m.token = tok->get<std::string>();
		}
		auto user = doc.find("user");
		if (user != doc.end())
		{
			if (user->is_string())
				m.user = user->get<std::string>();
			else if (user->is_number_integer())
				m.user = user->dump();
			else
			{
				m.error = "user must be a string";
				return m;
			}
		}
		m.type = ClientMessage::Type::Auth;
	}
	else if (t == "resume")
		m.type = ClientMessage::Type::Resume;
	else if (t == "ping")
		m.type = ClientMessage::Type::Ping;
	else
		m.type = ClientMessage::Type::Unknown;
	return m;
}

std::string
token_from_protocol_header(std::string_view header, std::string_view protocol_name)
{
	size_t pos = 0;
	while (pos <= header.size())
	{
		size_t comma = header.find(',', pos);
		if (comma == std::string_view::npos)
			comma = header.size();
		std::string_view item = header.substr(pos, comma - pos);
		while (!item.empty() && (item.front() == ' ' || item.front() == '\t'))
			item.remove_prefix(1);
		while (!item.empty() && (item.back() == ' ' || item.back() == '\t'))
			item.remove_suffix(1);
		if (!item.empty() && item != protocol_name)
		{
			if (item.substr(0, 7) == "bearer.")
				item.remove_prefix(7);
			return std::string(item);
		}
		pos = comma + 1;
	}
	return "";
}

bool
origin_allowed(const std::vector<std::string> &allowlist, std::optional<std::string_view> origin)
{
	if (allowlist.empty() || !origin)
		return true;
	for (const auto &a : allowlist)
		if (a == "*" || (!origin->empty() && a == *origin))
			return true;
	return false;
}

} // namespace livenotify
