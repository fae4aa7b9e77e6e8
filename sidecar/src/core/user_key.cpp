/*
 * user_key.cpp: see user_key.hpp.
 */
#include "user_key.hpp"

#include <cstdint>
#include <limits>

namespace livenotify
{

namespace
{

/* PostgreSQL's scanner_isspace(), which pg_strtoint* skip around the digits. */
bool
pg_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

KeyForm
classify_int(const std::string &key, int64_t min, int64_t max)
{
	size_t i = 0, n = key.size();
	bool neg = false;
	uint64_t v = 0;
	size_t digits = 0;

	while (i < n && pg_space(key[i]))
		i++;
	if (i < n && (key[i] == '-' || key[i] == '+'))
		neg = key[i++] == '-';
	for (; i < n && key[i] >= '0' && key[i] <= '9'; i++, digits++)
	{
		if (v > (std::numeric_limits<uint64_t>::max() - 9) / 10)
			return KeyForm::NotAValue; /* out of range of any integer type */
		v = v * 10 + static_cast<uint64_t>(key[i] - '0');
		if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) + 1)
			return KeyForm::NotAValue; /* out of range of any integer type */
	}
	while (i < n && pg_space(key[i]))
		i++;
	if (digits == 0 || i != n)
		return KeyForm::NotAValue;
	if (neg ? v > static_cast<uint64_t>(-(min + 1)) + 1 : v > static_cast<uint64_t>(max))
		return KeyForm::NotAValue;
	std::string printed = (neg && v != 0 ? "-" : "") + std::to_string(v);
	return printed == key ? KeyForm::Canonical : KeyForm::NonCanonical;
}

bool
hex_digit(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

KeyForm
classify_uuid(const std::string &key)
{
	/* uuid_out: lower case, 8-4-4-4-12. */
	static const size_t dash[] = {8, 13, 18, 23};
	bool canonical = key.size() == 36;
	for (size_t i = 0; canonical && i < key.size(); i++)
	{
		bool want_dash = i == dash[0] || i == dash[1] || i == dash[2] || i == dash[3];
		char c = key[i];
		canonical = want_dash ? c == '-' : ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
	}
	if (canonical)
		return KeyForm::Canonical;
	/*
	 * uuid_in (string_to_uuid) also takes upper case, braces and hyphens
	 * after any group of four digits: 32 hex digits among those is some
	 * uuid's other spelling.
	 */
	std::string s = key;
	if (s.size() >= 2 && s.front() == '{' && s.back() == '}')
		s = s.substr(1, s.size() - 2);
	size_t hex = 0;
	for (char c : s)
	{
		if (hex_digit(c))
			hex++;
		else if (c != '-')
			return KeyForm::NotAValue;
	}
	return hex == 32 ? KeyForm::NonCanonical : KeyForm::NotAValue;
}

/* Characters of a UTF-8 string (the keys come from JSON: valid UTF-8). */
size_t
utf8_chars(const std::string &s)
{
	size_t n = 0;
	for (unsigned char c : s)
		n += (c & 0xC0) != 0x80;
	return n;
}

} // namespace

UserKeyType
user_key_type(const std::string &regtype, int typmod)
{
	UserKeyType t;
	/* varchar and bpchar keep the length plus VARHDRSZ (4) in atttypmod; -1 for none. */
	int chars = typmod >= 4 ? typmod - 4 : -1;
	if (regtype == "smallint")
		t.kind = UserKeyType::Kind::Int16;
	else if (regtype == "integer")
		t.kind = UserKeyType::Kind::Int32;
	else if (regtype == "bigint")
		t.kind = UserKeyType::Kind::Int64;
	else if (regtype == "uuid")
		t.kind = UserKeyType::Kind::Uuid;
	else if (regtype == "text")
		t.kind = UserKeyType::Kind::Text;
	else if (regtype == "character varying")
		t = {UserKeyType::Kind::Varchar, chars};
	else if (regtype == "character" || regtype == "bpchar")
		t = {UserKeyType::Kind::Bpchar, chars};
	return t;
}

KeyForm
classify_user_key(const std::string &key, const UserKeyType &type)
{
	if (key.find('\0') != std::string::npos)
		return KeyForm::NotAValue; /* no PostgreSQL string holds a NUL */
	switch (type.kind)
	{
		case UserKeyType::Kind::Int16:
			return classify_int(key, std::numeric_limits<int16_t>::min(),
								std::numeric_limits<int16_t>::max());
		case UserKeyType::Kind::Int32:
			return classify_int(key, std::numeric_limits<int32_t>::min(),
								std::numeric_limits<int32_t>::max());
		case UserKeyType::Kind::Int64:
			return classify_int(key, std::numeric_limits<int64_t>::min(),
								std::numeric_limits<int64_t>::max());
		case UserKeyType::Kind::Uuid:
			return classify_uuid(key);
		case UserKeyType::Kind::Varchar:
			/* An explicit cast to varchar(n) cuts a longer string (varchar.c). */
			if (type.max_chars >= 0 && utf8_chars(key) > static_cast<size_t>(type.max_chars))
				return KeyForm::NonCanonical;
			return KeyForm::Canonical;
		case UserKeyType::Kind::Bpchar:
			/* char(n)::text drops trailing blanks; the cast cuts a longer string. */
			if (!key.empty() && key.back() == ' ')
				return KeyForm::NonCanonical;
			if (type.max_chars >= 0 && utf8_chars(key) > static_cast<size_t>(type.max_chars))
				return KeyForm::NonCanonical;
			return KeyForm::Canonical;
		case UserKeyType::Kind::Text:
		case UserKeyType::Kind::Other:
			break;
	}
	return KeyForm::Canonical;
}

bool
user_key_acceptable(const std::string &key, const std::vector<UserKeyType> &types, std::string *why)
{
	static const char *const names[] = {"smallint", "integer", "bigint", "uuid",
										"text",		"varchar", "char",	 "other"};
	for (const UserKeyType &t : types)
		if (classify_user_key(key, t) == KeyForm::NonCanonical)
		{
			if (why)
				*why =
					std::string("non_canonical_user_key type=") + names[static_cast<int>(t.kind)];
			return false;
		}
	return true;
}

} // namespace livenotify
