/*
 * handshake_check.hpp: the RFC 6455 opening-handshake checks lws 4.1 does not
 * make itself (issue 12, finding 8).
 *
 * lws 4.1.6 answers 101 to an upgrade with no or an unknown
 * Sec-WebSocket-Version (lib/roles/ws/server-ws.c, lws_process_ws_upgrade2:
 * "Unknown client spec version" then falls through to version 13), to a
 * Sec-WebSocket-Key that is not a 16-byte nonce (handshake_0405 only checks it
 * is present and short), to HTTP/1.0, and it switches to HTTP/2 on
 * "Upgrade: h2c" (lib/roles/http/server/server.c, lws_handshake_server).
 * The daemon runs these checks in LWS_CALLBACK_HTTP_CONFIRM_UPGRADE, which
 * lws calls for every Upgrade request before it acts on it.
 *
 * Pure functions on header values: no lws here, so they are unit-tested.
 */
#pragma once

#include <string_view>

namespace livenotify
{

struct UpgradeHeaders
{
	std::string_view http_version; /* the request line's version, e.g. "HTTP/1.1" */
	std::string_view upgrade;	   /* the Upgrade header */
	bool has_version = false;	   /* Sec-WebSocket-Version present */
	std::string_view version;	   /* its value */
	bool has_key = false;		   /* Sec-WebSocket-Key present */
	std::string_view key;		   /* its value */
};

struct UpgradeVerdict
{
	int status = 0;			   /* 0: acceptable; else the HTTP status to answer */
	const char *reason = "";   /* short machine-friendly reason (log and body) */
	bool want_version = false; /* answer with Sec-WebSocket-Version: 13 (RFC 6455 4.4) */
};

/*
 * RFC 6455 4.1/4.2.1: HTTP/1.1 or later (we speak 1.1 only), Upgrade
 * "websocket" (case-insensitive; h2c and anything else refused),
 * Sec-WebSocket-Version exactly 13 (else 426 with the version we speak),
 * Sec-WebSocket-Key the base64 of 16 bytes.
 */
UpgradeVerdict check_upgrade(const UpgradeHeaders &h);

/* Whether text is the canonical base64 encoding of exactly 16 bytes (24 characters). */
bool is_websocket_key(std::string_view text);

} // namespace livenotify
