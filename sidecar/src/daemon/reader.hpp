/*
 * reader.hpp: the queue reader thread.
 *
 * Owns one libpq session that loops on livenotify.read() (docs/sql-api.md):
 * the call blocks inside the server on its latch until entries commit, so
 * there is no polling and no LISTEN.  Per batch: keep the entries of users
 * with a socket here, ONE livenotify.unread_counts() call per source for
 * those users, build the frames by splicing, and hand them to the service
 * thread through the Inbox.
 *
 * Thread: runs on its own thread; touches no wsi.
 */
#pragma once

#include "shared.hpp"

namespace livenotify
{

void run_reader(Shared *shared);

} // namespace livenotify
