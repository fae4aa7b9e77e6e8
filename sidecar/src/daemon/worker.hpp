/*
 * worker.hpp: database work for new sockets, off the service thread.
 *
 * Each worker thread owns one libpq connection and takes Jobs: SQL-mode
 * authentication (the configured query maps a token to a user key) and
 * resume catch-up (livenotify.catchup()).  Results go back through the Inbox.
 *
 * Thread: runs on its own thread; touches no wsi.
 */
#pragma once

#include "shared.hpp"

namespace livenotify
{

void run_worker(Shared *shared, int index);

/* Load livenotify.sources into cache (any database thread, with its own connection). */
class PgConn;
bool load_sources(PgConn &conn, std::unordered_map<std::string, SourceInfo> *cache,
				  std::string *err);

} // namespace livenotify
