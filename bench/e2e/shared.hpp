/*
 * shared.hpp: the record the three benchmark programs share through one file
 * in /dev/shm (e2e-insert writes send and commit times, e2e-client writes
 * receive times, e2e-report reads both).
 *
 * Every row the inserter writes has a benchmark number k (0, 1, 2, ...) in
 * its title as "k:send_ns"; k indexes the arrays below.  Keeping the raw
 * times per row and per tab, instead of histograms in each process, lets the
 * report join the commit acknowledgement (known only to the inserter) with the
 * receive time (known only to the client) after the fact: a frame may well
 * reach the client before the inserter has read its COMMIT reply.
 *
 * All times are CLOCK_REALTIME nanoseconds on this one machine, so the two
 * processes' clocks are the same clock.
 */
#pragma once

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

namespace e2e
{

static const uint64_t kMagic = 0x6c6e6532652d3031ULL; /* "lne2e-01" */

inline int64_t
now_ns()
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

/* Counters only the client writes (one thread); the report reads them. */
struct ClientCounters
{
	std::atomic<uint64_t> sockets_wanted;
	std::atomic<uint64_t> sockets_open;	  /* hello received and not closed */
	std::atomic<uint64_t> connect_errors; /* refused upgrades, TCP errors */
	std::atomic<uint64_t> closes;		  /* sockets the daemon closed after hello */
	std::atomic<uint64_t> frames;		  /* every text frame */
	std::atomic<uint64_t> notifications;  /* notification frames of benchmark rows */
	std::atomic<uint64_t> duplicates;	  /* a row seen twice on one socket */
	std::atomic<uint64_t> wrong_user;	  /* a row for another user: must stay 0 */
	std::atomic<uint64_t> out_of_range;	  /* k beyond the arrays or unparsable title */
	std::atomic<uint64_t> no_count;		  /* notification without unread_count */
	std::atomic<uint64_t> resyncs;
	std::atomic<uint64_t> other_frames; /* hello, unread_count, ephemeral kinds */
};

struct Header
{
	uint64_t magic;
	uint64_t capacity; /* rows (k values) */
	uint64_t tabs;	   /* sockets per user: recv has capacity * tabs slots */
	uint64_t users;
	ClientCounters c;
};

/*
 * Layout: Header, then send_ns[capacity], ack_ns[capacity],
 * recv_ns[capacity * tabs], seen[capacity * tabs] (receipts per slot, to count
 * duplicates per range).  0 means "not yet".
 */
struct Shared
{
	Header *h = nullptr;
	int64_t *send_ns = nullptr;
	int64_t *ack_ns = nullptr;
	int64_t *recv_ns = nullptr;
	uint8_t *seen = nullptr;
	size_t bytes = 0;

	static size_t size_for(uint64_t capacity, uint64_t tabs)
	{
		return sizeof(Header) + capacity * 16 + capacity * tabs * 9;
	}

	/* create: make (or reset) the file with this geometry; otherwise map an existing one. */
	bool open(const char *path, bool create, uint64_t capacity = 0, uint64_t tabs = 0)
	{
		int fd = ::open(path, create ? (O_RDWR | O_CREAT | O_TRUNC) : O_RDWR, 0600);
		if (fd < 0)
		{
			fprintf(stderr, "e2e: open %s: %s\n", path, strerror(errno));
			return false;
		}
		if (create)
		{
			bytes = size_for(capacity, tabs);
			if (ftruncate(fd, static_cast<off_t>(bytes)) != 0)
			{
				fprintf(stderr, "e2e: ftruncate %s: %s\n", path, strerror(errno));
				::close(fd);
				return false;
			}
		}
		else
		{
			struct stat st;
			if (fstat(fd, &st) != 0 || static_cast<size_t>(st.st_size) < sizeof(Header))
			{
				fprintf(stderr, "e2e: %s is not a benchmark file\n", path);
				::close(fd);
				return false;
			}
			bytes = static_cast<size_t>(st.st_size);
		}
		void *p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		::close(fd);
		if (p == MAP_FAILED)
		{
			fprintf(stderr, "e2e: mmap %s: %s\n", path, strerror(errno));
			return false;
		}
		h = static_cast<Header *>(p);
		if (create)
		{
			/* The file is fresh (zero-filled by ftruncate): only the geometry to set. */
			h->magic = kMagic;
			h->capacity = capacity;
			h->tabs = tabs;
		}
		else if (h->magic != kMagic || bytes < size_for(h->capacity, h->tabs))
		{
			fprintf(stderr, "e2e: %s has the wrong layout\n", path);
			return false;
		}
		char *base = static_cast<char *>(p) + sizeof(Header);
		send_ns = reinterpret_cast<int64_t *>(base);
		ack_ns = send_ns + h->capacity;
		recv_ns = ack_ns + h->capacity;
		seen = reinterpret_cast<uint8_t *>(recv_ns + h->capacity * h->tabs);
		return true;
	}
};

/* The user a row goes to: consecutive rows go to different users, each user gets the same share. */
inline uint64_t
user_of(uint64_t k, uint64_t users)
{
	return k % users + 1;
}

} // namespace e2e
