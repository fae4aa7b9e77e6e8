/*
 * main.cpp: livenotifyd's entry point: configuration, signals, threads.
 *
 * Signals are blocked in every thread and taken by one signal thread with
 * sigwait(), so no code runs in signal context (pgbouncer's rule: handlers
 * only set flags).  SIGTERM/SIGINT stop, SIGHUP reloads, SIGPIPE is ignored
 * (a peer closing mid-write must not kill the daemon).
 */
#include "config.hpp"
#include "log.hpp"
#include "reader.hpp"
#include "server.hpp"
#include "shared.hpp"
#include "worker.hpp"

#include <libwebsockets.h>
#include <systemd/sd-daemon.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <thread>
#include <unistd.h>

#ifndef LIVENOTIFYD_VERSION
#define LIVENOTIFYD_VERSION "0.1.0"
#endif

using namespace livenotify;

namespace
{

void
usage()
{
	printf("livenotifyd %s: delivers livenotify queue entries to WebSocket clients\n\n"
		   "Usage: livenotifyd [options]\n\n"
		   "  -c, --config=FILE           configuration file (key = value lines); env "
		   "LIVENOTIFY_CONFIG\n"
		   "  -t, --check-config          validate the configuration and exit (0 ok, 2 invalid)\n"
		   "  -V, --version               print the version and exit\n"
		   "  -h, --help                  this help\n\n"
		   "Every key below can be set in the file, as --key=value (or --key value) and as\n"
		   "LIVENOTIFY_KEY in the environment; flags win over the environment, which wins over the "
		   "file.\n\n"
		   "%s\n"
		   "Endpoints on the one port: the WebSocket path, GET /healthz, GET /metrics.\n"
		   "Wire protocol: docs/protocol.md.  SIGHUP reloads log level, keys and limits; SIGTERM "
		   "stops.\n",
		   LIVENOTIFYD_VERSION, config_help().c_str());
}

/*
 * The file descriptor limit bounds how many sockets we can hold: raise the
 * soft limit to the hard one and return what we got (core/fd_budget.hpp).
 * At most kMaxNofile: lws sizes two tables by the limit (one pointer and one
 * pollfd per possible descriptor, lib/plat/unix/unix-init.c), so an
 * "unlimited" hard limit must not become gigabytes of tables.
 */
const rlim_t kMaxNofile = rlim_t(1) << 20;

uint64_t
raise_fd_limit()
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 1024;
	rlim_t want = std::min(rl.rlim_max, kMaxNofile);
	if (rl.rlim_cur != want && (rl.rlim_cur < want || rl.rlim_cur > kMaxNofile))
	{
		struct rlimit up = rl;
		up.rlim_cur = want;
		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			rl = up;
	}
	return static_cast<uint64_t>(std::min(rl.rlim_cur, kMaxNofile));
}

struct SignalThreadArgs
{
	sigset_t set;
	Shared *shared;
	ControlFlags *flags;
};

/* Signal thread: the only place signals are received. */
void
signal_loop(SignalThreadArgs args)
{
	for (;;)
	{
		int sig = 0;
		if (sigwait(&args.set, &sig) != 0)
			continue;
		if (sig == SIGHUP)
		{
			LOG_INFO("signal", "signal=SIGHUP action=reload");
			args.flags->reload.store(true);
			if (args.shared->ctx)
				lws_cancel_service(args.shared->ctx);
			continue;
		}
		LOG_INFO("signal", "signal=%s action=stop", sig == SIGTERM ? "SIGTERM" : "SIGINT");
		args.flags->stop.store(true);
		args.shared->stopping.store(true);
		/* Wake the database threads out of poll() (a read() waiting on its latch, a backoff sleep).
		 */
		uint64_t one = 1;
		ssize_t ignored = write(args.shared->stop_fd, &one, sizeof(one));
		(void) ignored;
		args.shared->jobs.wake_all();
		if (args.shared->ctx)
			lws_cancel_service(args.shared->ctx);
		if (sig == SIGTERM || sig == SIGINT)
			return;
	}
}

} // namespace

int
main(int argc, char **argv)
{
	CommandLine cmd;
	Config cfg;
	auto env = [](const char *name) -> const char * {
		return getenv(name);
	};
	try
	{
		cmd = parse_command_line(argc, argv);
		if (cmd.help)
		{
			usage();
			return 0;
		}
		if (cmd.version)
		{
			printf("livenotifyd %s (libwebsockets %s, wire protocol 1)\n", LIVENOTIFYD_VERSION,
				   lws_get_library_version());
			return 0;
		}
		cfg = load_config(cmd, env);
	}
	catch (const ConfigError &e)
	{
		fprintf(stderr, "livenotifyd: %s\n", e.what());
		return 2;
	}
	if (cmd.check_config)
	{
		printf("livenotifyd: configuration ok (listen %s:%d, auth %s)\n",
			   cfg.listen_address.c_str(), cfg.port, auth_mode_name(cfg.auth));
		return 0;
	}
	set_log_level(cfg.log_level);

	signal(SIGPIPE, SIG_IGN);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	/* Block before any thread starts so every thread inherits the mask. */
	pthread_sigmask(SIG_BLOCK, &set, nullptr);
	uint64_t nofile = raise_fd_limit();
	/* The reader and the workers each hold a database connection. */
	FdPlan plan = plan_fds(nofile, cfg.max_sockets, cfg.max_pending_auth, cfg.db_workers + 1);
	if (!plan.ok)
	{
		LOG_ERROR("startup_failed", "error=%s", log_quote(plan.message).c_str());
		return 1;
	}
	if (plan.clamped)
	{
		LOG_WARN("fd_limit", "action=clamp detail=%s", log_quote(plan.message).c_str());
		cfg.max_sockets = plan.max_sockets;
		cfg.max_sockets_per_user = std::min(cfg.max_sockets_per_user, cfg.max_sockets);
	}

	Shared shared;
	shared.cfg = cfg;
	shared.nofile = nofile;
	shared.fd_plan = plan;
	/* Known now: a resume asked for before the reader first connects needs no database for it. */
	shared.set_resume_source(cfg.source);
	shared.stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (shared.stop_fd < 0)
	{
		LOG_ERROR("startup_failed", "error=eventfd");
		return 1;
	}
	ControlFlags flags;

	LOG_INFO("starting", "version=%s auth=%s source=%s", LIVENOTIFYD_VERSION,
			 auth_mode_name(cfg.auth), log_quote(cfg.source).c_str());
	/* Allowed on loopback only (validate_config() refuses it elsewhere); say what it means. */
	if (jwt_unscoped(cfg))
		LOG_WARN("jwt_unscoped", "hint=%s",
				 log_quote("neither jwt_audience nor jwt_issuer is set: any token signed with "
						   "the key is accepted (allowed on loopback only)")
					 .c_str());
	Server *server = server_create(&shared, cmd, &flags);
	if (!server)
		return 1;

	std::thread signals(signal_loop, SignalThreadArgs{set, &shared, &flags});
	signals.detach(); /* it returns after the first stop signal; never joined */
	std::thread reader(run_reader, &shared);
	shared.jobs.configure(static_cast<size_t>(cfg.catchup_queue_max), cfg.db_workers,
						  &shared.counters);
	std::vector<std::thread> workers;
	for (int i = 0; i < cfg.db_workers; i++)
		workers.emplace_back(run_worker, &shared, i);

	server_run(server);

	/* The loop ended (shutdown done or lws failed): make sure the other threads stop too. */
	shared.stopping.store(true);
	uint64_t one = 1;
	ssize_t ignored = write(shared.stop_fd, &one, sizeof(one));
	(void) ignored;
	shared.jobs.wake_all();
	reader.join();
	for (auto &w : workers)
		w.join();
	server_destroy(server);
	close(shared.stop_fd);
	LOG_INFO("stopped", "status=0");
	return 0;
}
