/*
 * session_state.hpp: the lifecycle of one WebSocket session, as an explicit
 * state machine with no sockets in it.
 *
 * Every session of livenotifyd is in exactly one SessionState; it changes
 * only through session_transition(), and the daemon asks the state (or the
 * predicates below) instead of combining flags.  The model is Centrifugo's
 * client.go (centrifugal/centrifuge): one status enum, every transition in
 * one place.  The daemon runs all of this on the lws service thread, so no
 * lock is needed; events from other threads (an SQL auth answer, a catch-up
 * page) are applied there when the inbox is drained, and may find the
 * session in a later state than the one that asked: those races are decided
 * here (a transition that does not apply leaves the state as it is).
 *
 *   Upgrading ──Established──> AwaitingAuth ──AuthSubmitted──> AuthPending
 *                                  │  AuthAccepted                │ AuthAccepted
 *                                  └──────────────> Open <────────┘
 *   AwaitingAuth, AuthPending, Open ──CloseRequested──> Closing ──CloseFrameSent──> CloseSent
 *   any ──Gone──> Closed
 *
 * Two facts are orthogonal to the lifecycle and kept beside it: which limit
 * slot the session holds (SessionSlot) and whether it waits for the reader's
 * first position (ReaderWait).
 */
#pragma once

#include <cstdint>

namespace livenotify
{

enum class SessionState : uint8_t
{
	Upgrading,	  /* admitted by the upgrade filter; no 101 yet */
	AwaitingAuth, /* 101 sent; credentials expected in a first message (auth deadline runs) */
	AuthPending,  /* an SQL auth job is in flight; client messages wait for its answer */
	Open,		  /* authenticated and in its user's group: frames are queued and sent */
	Closing,	  /* our close (code, reason) is decided; nothing more is queued */
	CloseSent,	  /* lws has our close frame and waits for the peer's (RFC 6455 5.5.1) */
	Closed,		  /* lws closed the connection; the session is being freed */
};

enum class SessionEvent : uint8_t
{
	Established,	/* LWS_CALLBACK_ESTABLISHED */
	AuthSubmitted,	/* an SQL auth job was queued for the session's token */
	AuthAccepted,	/* credentials checked, user key acceptable, admitted by the limits */
	CloseRequested, /* we close: refusal, timeout, slow client, shutdown, ... */
	CloseFrameSent, /* the close frame went to lws (first SERVER_WRITEABLE after Closing) */
	Gone,			/* LWS_CALLBACK_CLOSED or LWS_CALLBACK_WSI_DESTROY */
};

struct Transition
{
	SessionState to;
	bool applied; /* false: the event does not apply in that state; `to` is the old state */
};

/* The one transition function.  Pure: no side effects, every (state, event) pair defined. */
Transition session_transition(SessionState from, SessionEvent ev);

const char *session_state_name(SessionState s);
const char *session_event_name(SessionEvent e);

/* The 101 was sent and lws has not closed the socket yet (it owns a wsi we may write to). */
inline bool
session_established(SessionState s)
{
	return s != SessionState::Upgrading && s != SessionState::Closed;
}

/* Credentials not decided yet, and no close decided either. */
inline bool
session_authenticating(SessionState s)
{
	return s == SessionState::AwaitingAuth || s == SessionState::AuthPending;
}

/* Our close is decided (or done): nothing is queued, received or started any more. */
inline bool
session_closing(SessionState s)
{
	return s == SessionState::Closing || s == SessionState::CloseSent || s == SessionState::Closed;
}

/*
 * What a complete client message means in a state (docs/protocol.md): before
 * authentication it must be the auth (or resume) message; while SQL checks a
 * token it waits; once open only ping means anything; after our close
 * nothing is read.
 */
enum class MessageRoute : uint8_t
{
	Ignore,
	Auth,
	Command,
};
MessageRoute session_message_route(SessionState s);

/* Which total-limit slot the session holds, released when it is freed. */
enum class SessionSlot : uint8_t
{
	None,	  /* none (yet): a user known at the upgrade is only checked against the limits */
	Reserved, /* a reservation while authenticating (the user is unknown) */
	Member,	  /* a socket in its user's group */
};

/*
 * A socket authenticated before the reader's first position has no live
 * stream for the rows committed until then (server: authenticated()).
 */
enum class ReaderWait : uint8_t
{
	None,	/* nothing owed */
	Resume, /* its resume starts at ReaderReady (bounded by a deadline) */
	Resync, /* it gets resync `epoch` at ReaderReady */
};

/* At authentication. */
inline ReaderWait
reader_wait_at_auth(bool reader_positioned, bool resume_asked)
{
	if (reader_positioned)
		return ReaderWait::None;
	return resume_asked ? ReaderWait::Resume : ReaderWait::Resync;
}

enum class ReaderReadyAction : uint8_t
{
	Nothing,
	StartResume,
	SendResync,
};

/* ReaderReady for a session: what it is owed now; *wait becomes None. */
ReaderReadyAction on_reader_ready(SessionState s, ReaderWait *wait);

/*
 * The resume's wait for the reader timed out: true if the session is to get
 * resync `catchup_failed` now; it still gets resync `epoch` at ReaderReady
 * (rows committed between its refetch and that position are in neither).
 */
bool on_resume_wait_expired(SessionState s, ReaderWait *wait);

/* A result of a worker job (SQL auth answer, catch-up page) for a session in state s. */
inline bool
session_takes_auth_result(SessionState s)
{
	return s == SessionState::AuthPending;
}
inline bool
session_takes_catchup_page(SessionState s)
{
	return s == SessionState::Open;
}

} // namespace livenotify
