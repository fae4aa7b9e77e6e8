/*
 * test_session_state.cpp: the session lifecycle (core/session_state.hpp):
 * every (state, event) pair, then the races the daemon meets when a worker's
 * answer or the reader's position arrives after the session moved on.
 */
#include "session_state.hpp"

#include <gtest/gtest.h>

#include <map>
#include <utility>

using namespace livenotify;
using S = SessionState;
using E = SessionEvent;

namespace
{

const S kStates[] = {S::Upgrading, S::AwaitingAuth, S::AuthPending, S::Open,
					 S::Closing,   S::CloseSent,	S::Closed};
const E kEvents[] = {E::Established,	E::AuthSubmitted,  E::AuthAccepted,
					 E::CloseRequested, E::CloseFrameSent, E::Gone};

/* Apply events in order; the state after the last. */
S
run(S s, std::initializer_list<E> evs)
{
	for (E e : evs)
		s = session_transition(s, e).to;
	return s;
}

} // namespace

/* The whole table: the transitions that apply, and that every other pair leaves the state alone. */
TEST(SessionState, EveryTransition)
{
	const std::map<std::pair<S, E>, S> applies = {
		{{S::Upgrading, E::Established}, S::AwaitingAuth},
		{{S::Upgrading, E::Gone}, S::Closed},
		{{S::AwaitingAuth, E::AuthSubmitted}, S::AuthPending},
		{{S::AwaitingAuth, E::AuthAccepted}, S::Open},
		{{S::AwaitingAuth, E::CloseRequested}, S::Closing},
		{{S::AwaitingAuth, E::Gone}, S::Closed},
		{{S::AuthPending, E::AuthAccepted}, S::Open},
		{{S::AuthPending, E::CloseRequested}, S::Closing},
		{{S::AuthPending, E::Gone}, S::Closed},
		{{S::Open, E::CloseRequested}, S::Closing},
		{{S::Open, E::Gone}, S::Closed},
		{{S::Closing, E::CloseFrameSent}, S::CloseSent},
		{{S::Closing, E::Gone}, S::Closed},
		{{S::CloseSent, E::Gone}, S::Closed},
	};
	size_t applied = 0;
	for (S s : kStates)
		for (E e : kEvents)
		{
			Transition t = session_transition(s, e);
			auto it = applies.find({s, e});
			SCOPED_TRACE(std::string(session_state_name(s)) + " + " + session_event_name(e));
			if (it != applies.end())
			{
				EXPECT_TRUE(t.applied);
				EXPECT_EQ(t.to, it->second);
				applied++;
			}
			else
			{
				EXPECT_FALSE(t.applied);
				EXPECT_EQ(t.to, s);
			}
		}
	EXPECT_EQ(applied, applies.size());
}

TEST(SessionState, Predicates)
{
	for (S s : kStates)
	{
		SCOPED_TRACE(session_state_name(s));
		EXPECT_EQ(session_established(s), s != S::Upgrading && s != S::Closed);
		EXPECT_EQ(session_authenticating(s), s == S::AwaitingAuth || s == S::AuthPending);
		EXPECT_EQ(session_closing(s), s == S::Closing || s == S::CloseSent || s == S::Closed);
		EXPECT_EQ(session_takes_auth_result(s), s == S::AuthPending);
		EXPECT_EQ(session_takes_catchup_page(s), s == S::Open);
		MessageRoute r = session_message_route(s);
		EXPECT_EQ(r, s == S::AwaitingAuth ? MessageRoute::Auth
					 : s == S::Open		  ? MessageRoute::Command
										  : MessageRoute::Ignore);
	}
}

/* The paths a real socket takes. */
TEST(SessionState, Paths)
{
	/* Token in the URL (JWT): established, accepted at once. */
	EXPECT_EQ(run(S::Upgrading, {E::Established, E::AuthAccepted}), S::Open);
	/* SQL auth. */
	EXPECT_EQ(run(S::Upgrading, {E::Established, E::AuthSubmitted, E::AuthAccepted}), S::Open);
	/* Our close, the handshake, then lws frees it. */
	EXPECT_EQ(run(S::Open, {E::CloseRequested, E::CloseFrameSent, E::Gone}), S::Closed);
	/* The peer went first: no close frame of ours. */
	EXPECT_EQ(run(S::Open, {E::Gone}), S::Closed);
	/* The handshake failed after the filter admitted it. */
	EXPECT_EQ(run(S::Upgrading, {E::Gone}), S::Closed);
}

/* Closed while a worker checks the token: the answer finds it closing and changes nothing. */
TEST(SessionState, CloseWhileAuthPendingThenAuthResult)
{
	S s = run(S::Upgrading, {E::Established, E::AuthSubmitted});
	ASSERT_EQ(s, S::AuthPending);
	s = run(s, {E::CloseRequested}); /* auth deadline, or shutdown */
	EXPECT_EQ(s, S::Closing);
	EXPECT_FALSE(session_takes_auth_result(s)); /* drain_inbox drops the answer */
	Transition t = session_transition(s, E::AuthAccepted);
	EXPECT_FALSE(t.applied);
	EXPECT_EQ(t.to, S::Closing);
	/* Also after the close frame went out. */
	EXPECT_FALSE(session_transition(S::CloseSent, E::AuthAccepted).applied);
}

/* The answer arrives after lws freed the socket: nothing to find (and Closed takes nothing). */
TEST(SessionState, AuthResultAfterGone)
{
	S s = run(S::AuthPending, {E::Gone});
	EXPECT_EQ(s, S::Closed);
	EXPECT_FALSE(session_takes_auth_result(s));
	EXPECT_FALSE(session_transition(s, E::AuthAccepted).applied);
	EXPECT_FALSE(session_transition(s, E::Gone).applied); /* CLOSED then WSI_DESTROY */
}

/* A second auth message while the first is checked does not submit another job. */
TEST(SessionState, MessagesWhileAuthPendingAreIgnored)
{
	EXPECT_EQ(session_message_route(S::AuthPending), MessageRoute::Ignore);
	EXPECT_FALSE(session_transition(S::AuthPending, E::AuthSubmitted).applied);
}

/* The first close wins: a slow-client close after the auth timeout's keeps the first reason. */
TEST(SessionState, FirstCloseWins)
{
	S s = run(S::AwaitingAuth, {E::CloseRequested});
	EXPECT_FALSE(session_transition(s, E::CloseRequested).applied);
	s = run(s, {E::CloseFrameSent});
	EXPECT_EQ(s, S::CloseSent);
	/* A later writeable callback must not hand lws a second close (server: on_writeable). */
	EXPECT_FALSE(session_transition(s, E::CloseFrameSent).applied);
	EXPECT_FALSE(session_transition(s, E::CloseRequested).applied);
}

/* A refusal before the 101 is an HTTP status, not a close frame. */
TEST(SessionState, NoCloseBeforeEstablished)
{
	EXPECT_FALSE(session_transition(S::Upgrading, E::CloseRequested).applied);
	EXPECT_FALSE(session_transition(S::Upgrading, E::AuthAccepted).applied);
	EXPECT_FALSE(session_transition(S::AwaitingAuth, E::Established).applied);
}

/* A catch-up page that arrives after the session closed is dropped, not replayed. */
TEST(SessionState, CatchupPageAfterClose)
{
	EXPECT_TRUE(session_takes_catchup_page(S::Open));
	for (S s : {S::Closing, S::CloseSent, S::Closed})
		EXPECT_FALSE(session_takes_catchup_page(s));
}

/* Reader frames are queued only to open sessions; a resume waiting for the reader starts then. */
TEST(SessionState, ReaderReady)
{
	EXPECT_EQ(reader_wait_at_auth(true, true), ReaderWait::None);
	EXPECT_EQ(reader_wait_at_auth(true, false), ReaderWait::None);
	EXPECT_EQ(reader_wait_at_auth(false, true), ReaderWait::Resume);
	EXPECT_EQ(reader_wait_at_auth(false, false), ReaderWait::Resync);

	ReaderWait w = ReaderWait::Resume;
	EXPECT_EQ(on_reader_ready(S::Open, &w), ReaderReadyAction::StartResume);
	EXPECT_EQ(w, ReaderWait::None);
	EXPECT_EQ(on_reader_ready(S::Open, &w), ReaderReadyAction::Nothing); /* only once */

	w = ReaderWait::Resync;
	EXPECT_EQ(on_reader_ready(S::Open, &w), ReaderReadyAction::SendResync);
	EXPECT_EQ(w, ReaderWait::None);

	/* Closed meanwhile: nothing is started or queued, and nothing stays owed. */
	for (S s : {S::Closing, S::CloseSent, S::Closed, S::AwaitingAuth})
	{
		w = ReaderWait::Resume;
		EXPECT_EQ(on_reader_ready(s, &w), ReaderReadyAction::Nothing);
		EXPECT_EQ(w, ReaderWait::None);
	}
}

/* The resume's wait for the reader times out: catchup_failed now, resync epoch later. */
TEST(SessionState, ResumeWaitExpires)
{
	ReaderWait w = ReaderWait::Resume;
	EXPECT_TRUE(on_resume_wait_expired(S::Open, &w));
	EXPECT_EQ(w, ReaderWait::Resync);
	EXPECT_FALSE(on_resume_wait_expired(S::Open, &w)); /* once */
	EXPECT_EQ(on_reader_ready(S::Open, &w), ReaderReadyAction::SendResync);

	/* Closed before the deadline: nothing to send. */
	w = ReaderWait::Resume;
	EXPECT_FALSE(on_resume_wait_expired(S::Closing, &w));
	/* The reader came first: the deadline finds nothing owed. */
	w = ReaderWait::None;
	EXPECT_FALSE(on_resume_wait_expired(S::Open, &w));
}
