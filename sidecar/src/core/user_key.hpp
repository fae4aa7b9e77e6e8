/*
 * user_key.hpp: the one form of a user key (docs/protocol.md, "User keys").
 *
 * A user key is the user column's value as PostgreSQL prints it with ::text:
 * live entries carry that form, catch-up and counts accept only it (the
 * extension's _check_user_keys), and the daemon's groups compare it.  A
 * token whose subject names a value of a source's user column under another
 * spelling ("042", " 42", "+42", "42 " for an integer; "a " for char(n);
 * upper case for a uuid) is refused here, before it joins a group: it would
 * get the rows catch-up casts to that value but none of the live ones.
 *
 * The rules mirror PostgreSQL 15's input functions (int2in/int4in/int8in via
 * pg_strtoint*, uuid_in, varchar and bpchar's explicit casts, which cut to
 * the length); a key that is no value of the type at all (letters for an
 * integer) is left alone: that user has no rows in that source.
 *
 * Pure C++ (no lws, no libpq): unit-tested in tests/test_user_key.cpp.
 */
#pragma once

#include <string>
#include <vector>

namespace livenotify
{

struct UserKeyType
{
	enum class Kind
	{
		Int16,
		Int32,
		Int64,
		Uuid,
		Text,
		Varchar, /* max_chars: -1 for none */
		Bpchar,	 /* max_chars: -1 for none */
		Other,	 /* not checked here */
	};
	Kind kind = Kind::Other;
	int max_chars = -1;
};

/* From pg_attribute: atttypid::regtype::text and atttypmod. */
UserKeyType user_key_type(const std::string &regtype, int typmod);

enum class KeyForm
{
	Canonical,	  /* key::type::text = key */
	NotAValue,	  /* the cast would fail: no row of this type has this key */
	NonCanonical, /* the cast succeeds but prints another string */
};

KeyForm classify_user_key(const std::string &key, const UserKeyType &type);

/*
 * Whether a user key may join a group given the user column types of the
 * registered sources: refused if it is another spelling of a value of any
 * of them.  why says which type.
 */
bool user_key_acceptable(const std::string &key, const std::vector<UserKeyType> &types,
						 std::string *why);

} // namespace livenotify
