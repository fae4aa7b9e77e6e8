# livenotify: PostgreSQL extension (PGXS) + the livenotifyd sidecar.
#
#   make            build the extension and the sidecar
#   make install    install the extension into the server found by PG_CONFIG
#   make test       install what is missing, build, and run every test suite
#   make demo       run the demo (cluster + sidecar + page)
#   make check-fresh  both README commands in a new debootstrap'd Debian 12 (as root, ~30 min)
#   make soak       long reliability runs and fuzzing (docs/reliability.md), ~15 min
#   make bench      benchmarks (minutes; not in CI); make bench-peers: against the alternatives

EXTENSION = livenotify
MODULE_big = livenotify
OBJS = \
	extension/livenotify.o \
	extension/guc.o \
	extension/ring.o \
	extension/inflight.o \
	extension/pending.o \
	extension/rules.o \
	extension/sources.o \
	extension/moves.o \
	extension/serialize.o \
	extension/trigger.o \
	extension/functions.o \
	extension/horizon.o
DATA = extension/livenotify--0.1.sql extension/livenotify--0.2.sql extension/livenotify--0.1--0.2.sql
PGFILEDESC = "livenotify - commit-time notifications in shared memory"

REGRESS_OPTS = --inputdir=. --temp-config=test/livenotify.conf
# setup (CREATE EXTENSION, the shared Django-shaped table) runs first, then the rest by name.
REGRESS = setup $(filter-out setup,$(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql))))
ISOLATION_OPTS = --inputdir=test/isolation --outputdir=output_iso
ISOLATION = $(patsubst test/isolation/specs/%.spec,%,$(sort $(wildcard test/isolation/specs/*.spec)))

# Debian's /usr/bin/pg_config is a wrapper that may pick another major version.
PG_CONFIG ?= $(firstword $(wildcard /usr/lib/postgresql/15/bin/pg_config) pg_config)

PG_CXXFLAGS = -std=c++17 -fno-strict-aliasing -Wall -Wextra -Wno-unused-parameter -Wno-register -Wno-missing-field-initializers
# PGXS links with the C compiler: without libstdc++ the module only loads by accident.
SHLIB_LINK = -lstdc++

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS compiles C++ to LLVM bitcode (for JIT inlining) with clang using these flags, not
# PG_CXXFLAGS; Makefile.global sets them, so add ours after the include.
BITCODE_CXXFLAGS += -std=c++17 -Wno-register -Wno-deprecated-register

# Every object depends on the headers (PGXS tracks no header dependencies).
$(OBJS): $(wildcard extension/*.hpp)

.PHONY: sidecar test demo check-fresh format check-format bench soak bench-write bench-write-cpu bench-e2e bench-peers bench-bulk

all: sidecar

# SKIP_SIDECAR=1 builds the extension alone (e.g. onto a server host).
sidecar:
	@if [ -z "$(SKIP_SIDECAR)" ] && [ -f sidecar/CMakeLists.txt ]; then \
		cmake -S sidecar -B build/sidecar -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null && \
		cmake --build build/sidecar -j2; \
	fi

test:
	bash test/run-all.sh

demo:
	bash test/demo.sh

check-fresh:
	bash test/fresh/check-fresh.sh

# Long variants of the reliability suite and the fuzz targets.  Under the benchmark lock:
# on a 2-core machine it would distort any timing run beside it.
soak:
	flock /tmp/livenotify-bench.lock bash test/reliability/soak.sh

# Benchmarks take minutes and are never part of `make test`.  bench-peers alone: livenotify
# against the Django Channels seed stack and a LISTEN/NOTIFY bridge (bench/peers/run.sh).
bench: bench-write bench-write-cpu bench-bulk bench-e2e bench-peers

bench-write:
	bash bench/write-path.sh

# The trigger's cost in instructions (callgrind): no drift, so small regressions show.
bench-write-cpu:
	bash bench/write-cpu.sh

bench-e2e:
	bash bench/e2e/run.sh

# Backend memory and COMMIT duration of 1M-row loads (BULK_ROWS="1000000 10000000" adds 10M).
bench-bulk:
	bash bench/bulk-load.sh

bench-peers:
	bash bench/peers/run.sh

format:
	clang-format -i $$(git ls-files '*.cpp' '*.hpp' '*.h' '*.cc')

check-format:
	clang-format --dry-run --Werror $$(git ls-files '*.cpp' '*.hpp' '*.h' '*.cc')
