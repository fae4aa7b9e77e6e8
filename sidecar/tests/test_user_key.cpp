/*
 * test_user_key.cpp: the daemon's canonical user key check (core/user_key.hpp), against
 * what PostgreSQL 15's ::type::text prints (checked by hand with psql for each case).
 */
#include "user_key.hpp"

#include <gtest/gtest.h>

using namespace livenotify;

namespace
{

KeyForm
form(const std::string &key, const char *type, int typmod = -1)
{
	return classify_user_key(key, user_key_type(type, typmod));
}

} // namespace

TEST(UserKey, IntegerCanonical)
{
	EXPECT_EQ(form("42", "integer"), KeyForm::Canonical);
	EXPECT_EQ(form("0", "integer"), KeyForm::Canonical);
	EXPECT_EQ(form("-7", "integer"), KeyForm::Canonical);
	EXPECT_EQ(form("2147483647", "integer"), KeyForm::Canonical);
	EXPECT_EQ(form("-2147483648", "integer"), KeyForm::Canonical);
	EXPECT_EQ(form("8000000000", "bigint"), KeyForm::Canonical);
	EXPECT_EQ(form("-9223372036854775808", "bigint"), KeyForm::Canonical);
}

TEST(UserKey, IntegerOtherSpellingsAreRefused)
{
	/* '042'::int::text = '42', and so on: the spellings the issue found. */
	for (const char *k : {"042", " 42", "+42", "42 ", "\t42", "-0", "00", "+0"})
		EXPECT_EQ(form(k, "integer"), KeyForm::NonCanonical) << k;
	EXPECT_EQ(form("08000000000", "bigint"), KeyForm::NonCanonical);
	EXPECT_EQ(form("0042", "smallint"), KeyForm::NonCanonical);
}

TEST(UserKey, IntegerNotAValue)
{
	for (const char *k : {"", " ", "forty-two", "4 2", "42a", "0x2a", "1e3", "--1", "+"})
		EXPECT_EQ(form(k, "integer"), KeyForm::NotAValue) << k;
	EXPECT_EQ(form("2147483648", "integer"), KeyForm::NotAValue);
	EXPECT_EQ(form("-2147483649", "integer"), KeyForm::NotAValue);
	EXPECT_EQ(form("32768", "smallint"), KeyForm::NotAValue);
	EXPECT_EQ(form("9223372036854775808", "bigint"), KeyForm::NotAValue);
	EXPECT_EQ(form("99999999999999999999999", "bigint"), KeyForm::NotAValue);
}

TEST(UserKey, Uuid)
{
	EXPECT_EQ(form("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "uuid"), KeyForm::Canonical);
	EXPECT_EQ(form("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "uuid"), KeyForm::NonCanonical);
	EXPECT_EQ(form("{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}", "uuid"), KeyForm::NonCanonical);
	EXPECT_EQ(form("a0eebc999c0b4ef8bb6d6bb9bd380a11", "uuid"), KeyForm::NonCanonical);
	EXPECT_EQ(form("42", "uuid"), KeyForm::NotAValue);
}

TEST(UserKey, CharacterTypes)
{
	EXPECT_EQ(form(" 42", "text"), KeyForm::Canonical);
	EXPECT_EQ(form("42 ", "text"), KeyForm::Canonical);
	/* char(5): atttypmod 9. */
	EXPECT_EQ(form("alice", "character", 9), KeyForm::Canonical);
	EXPECT_EQ(form("a", "character", 9), KeyForm::Canonical);
	EXPECT_EQ(form("a ", "character", 9), KeyForm::NonCanonical);
	EXPECT_EQ(form("alicebob", "character", 9), KeyForm::NonCanonical);
	EXPECT_EQ(form("\xc3\xa9l\xc3\xa8ve", "character", 9), KeyForm::Canonical); /* 5 chars */
	/* varchar(5) */
	EXPECT_EQ(form("bob  ", "character varying", 9), KeyForm::Canonical);
	EXPECT_EQ(form("bobbybob", "character varying", 9), KeyForm::NonCanonical);
	EXPECT_EQ(form("anything at all", "character varying", -1), KeyForm::Canonical);
	EXPECT_EQ(form(std::string("a\0b", 3), "text"), KeyForm::NotAValue);
}

TEST(UserKey, AcceptableAcrossSources)
{
	std::vector<UserKeyType> types = {user_key_type("integer", -1), user_key_type("text", -1)};
	std::string why;
	EXPECT_TRUE(user_key_acceptable("42", types, &why));
	/* No integer row has this key; the text source may: accepted. */
	EXPECT_TRUE(user_key_acceptable("alice", types, &why));
	EXPECT_FALSE(user_key_acceptable("042", types, &why));
	EXPECT_EQ(why, "non_canonical_user_key type=integer");
	/* Before the reader loaded the sources nothing is known: accepted (the extension still
	 * refuses the key in catch-up and counts). */
	EXPECT_TRUE(user_key_acceptable("042", {}, &why));
}
