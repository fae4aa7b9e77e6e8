/*
 * session_state.cpp: the session lifecycle's transition function
 * (session_state.hpp has the diagram).
 */
#include "session_state.hpp"

namespace livenotify
{

Transition
session_transition(SessionState from, SessionEvent ev)
{
	using S = SessionState;
	using E = SessionEvent;
	auto to = [](S s) {
		return Transition{s, true};
	};
	const Transition stay{from, false};

	/* Gone wins from anywhere: lws freed the connection, whatever we were doing. */
	if (ev == E::Gone)
		return from == S::Closed ? stay : to(S::Closed);

	switch (from)
	{
		case S::Upgrading:
			/*
			 * Before the 101 there is no wsi to write a close frame on: a
			 * refusal is an HTTP status from the filter, so CloseRequested
			 * does not apply here.
			 */
			return ev == E::Established ? to(S::AwaitingAuth) : stay;
		case S::AwaitingAuth:
			if (ev == E::AuthSubmitted)
				return to(S::AuthPending);
			if (ev == E::AuthAccepted)
				return to(S::Open);
			if (ev == E::CloseRequested)
				return to(S::Closing);
			return stay;
		case S::AuthPending:
			/* A second auth message while the first is checked is ignored (no AuthSubmitted). */
			if (ev == E::AuthAccepted)
				return to(S::Open);
			if (ev == E::CloseRequested)
				return to(S::Closing);
			return stay;
		case S::Open:
			return ev == E::CloseRequested ? to(S::Closing) : stay;
		case S::Closing:
			/* The first close wins; an auth answer arriving now is dropped. */
			return ev == E::CloseFrameSent ? to(S::CloseSent) : stay;
		case S::CloseSent:
		case S::Closed:
			return stay;
	}
	return stay;
}

MessageRoute
session_message_route(SessionState s)
{
	switch (s)
	{
		case SessionState::AwaitingAuth:
			return MessageRoute::Auth;
		case SessionState::Open:
			return MessageRoute::Command;
		default:
			return MessageRoute::Ignore;
	}
}

ReaderReadyAction
on_reader_ready(SessionState s, ReaderWait *wait)
{
	ReaderWait w = *wait;
	*wait = ReaderWait::None;
	if (s != SessionState::Open)
		return ReaderReadyAction::Nothing;
	switch (w)
	{
		case ReaderWait::Resume:
			return ReaderReadyAction::StartResume;
		case ReaderWait::Resync:
			return ReaderReadyAction::SendResync;
		case ReaderWait::None:
			break;
	}
	return ReaderReadyAction::Nothing;
}

bool
on_resume_wait_expired(SessionState s, ReaderWait *wait)
{
	if (*wait != ReaderWait::Resume || s != SessionState::Open)
		return false;
	*wait = ReaderWait::Resync;
	return true;
}

const char *
session_state_name(SessionState s)
{
	switch (s)
	{
		case SessionState::Upgrading:
			return "upgrading";
		case SessionState::AwaitingAuth:
			return "awaiting_auth";
		case SessionState::AuthPending:
			return "auth_pending";
		case SessionState::Open:
			return "open";
		case SessionState::Closing:
			return "closing";
		case SessionState::CloseSent:
			return "close_sent";
		case SessionState::Closed:
			return "closed";
	}
	return "?";
}

const char *
session_event_name(SessionEvent e)
{
	switch (e)
	{
		case SessionEvent::Established:
			return "established";
		case SessionEvent::AuthSubmitted:
			return "auth_submitted";
		case SessionEvent::AuthAccepted:
			return "auth_accepted";
		case SessionEvent::CloseRequested:
			return "close_requested";
		case SessionEvent::CloseFrameSent:
			return "close_frame_sent";
		case SessionEvent::Gone:
			return "gone";
	}
	return "?";
}

} // namespace livenotify
