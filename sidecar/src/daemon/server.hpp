/*
 * server.hpp: the lws side of livenotifyd.
 *
 * One lws context, two vhosts: the public listener with one protocol
 * ("livenotify.v1") for the WebSocket endpoint and /healthz, and the metrics
 * listener (/metrics, /healthz; loopback by default).  Everything here runs on the lws service
 * thread, which owns every socket.
 */
#pragma once

#include "config.hpp"
#include "shared.hpp"

#include <atomic>

namespace livenotify
{

/* Set by the signal thread, acted on by the service thread after lws_cancel_service(). */
struct ControlFlags
{
	std::atomic<bool> reload{false};
	std::atomic<bool> stop{false};
};

class Server;

/* Main thread: create the context and listen; nullptr (and a log line) on failure. */
Server *server_create(Shared *shared, const CommandLine &cmd, ControlFlags *flags);

/* Main thread, which becomes the service thread: runs until shutdown completes. */
void server_run(Server *server);

/* Main thread, after server_run() returned and the other threads were joined. */
void server_destroy(Server *server);

} // namespace livenotify
