# The project's commands. Each target installs what it needs (scripts/install-deps) first.
SHELL := /bin/bash
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)
RELEASE_DIR := build/release
ASAN_DIR := build/asan
TSAN_DIR := build/tsan
FUZZ_DIR := build/fuzz
# make fuzz: seconds per target; the short run in make test: FUZZ_SMOKE_SECONDS per target.
FUZZ_SECONDS ?= 600
FUZZ_SMOKE_SECONDS ?= 20
CMAKE_FLAGS ?=
# ctest -j: most tests wait on sockets, time-outs and child processes rather than on a CPU, so
# more of them than cores run at once (make test: ~2 min instead of ~6 on two cores).
CTEST_JOBS ?= 4
# The sanitizer builds: -O1 (what ASan's and TSan's manuals advise) and line tables only (-g1:
# reports still name file and line): half the compile time of -O2 -g.
SANITIZER_FLAGS := "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG"

.PHONY: deps deps-test node-deps build configure run migrate test test-asan test-tsan asan-build tsan-build fuzz fuzz-build fuzz-smoke unit e2e clean help

help:
	@echo "make run        build and serve on 127.0.0.1:8000 (SQLite at data/chatbot.db)"
	@echo "make test       build and run every test"
	@echo "make test-asan  the test suite on an ASan+UBSan build"
	@echo "make test-tsan  the test suite (but browser, abuse and outage drills) on a ThreadSanitizer build"
	@echo "make fuzz       each libFuzzer target for FUZZ_SECONDS (default 600) s: fuzz/README.md"
	@echo "make build      build build/release/chatbot"
	@echo "make up         the seed's stack on http://localhost:8000 (API + PostgreSQL); make down, make psql"
	@echo "make test-compose  that stack for real (podman or docker), the seed README's steps 1-8"
	@echo "make torture   100 kill -9 / restart cycles under load, SQLite and PostgreSQL; 1,000 + 10,000 abusive clients"
	@echo "make bench      the benchmark (~10 min; PEER=http://127.0.0.1:8001 adds a peer): bench/README.md"
	@echo "make bench-db   the event log alone: group commit vs one transaction per event (~1 min)"
	@echo "make bench-openai  the openai engine's overhead per chunk against the direct stream (~1 min)"

deps:
	@scripts/install-deps

deps-test:
	@scripts/install-deps --test

# The pinned npm packages (package-lock.json): Swagger UI, embedded into the binary at build time,
# and playwright-core for the browser tests. Re-installed when the lockfile is newer.
NODE_STAMP := node_modules/.package-lock.json
$(NODE_STAMP): package.json package-lock.json | deps
	npm ci --no-audit --no-fund --ignore-scripts
	@touch $@

node-deps: $(NODE_STAMP)

$(RELEASE_DIR)/build.ninja: | $(NODE_STAMP)
	cmake -S . -B $(RELEASE_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS)

configure: deps node-deps $(RELEASE_DIR)/build.ninja

build: configure
	cmake --build $(RELEASE_DIR) -j $(JOBS)

run: build
	@mkdir -p data
	exec $(RELEASE_DIR)/chatbot serve

migrate: build
	@mkdir -p data
	$(RELEASE_DIR)/chatbot migrate

test: deps-test configure
	cmake --build $(RELEASE_DIR) -j $(JOBS)
	ctest --test-dir $(RELEASE_DIR) --output-on-failure --timeout 900 -j $(CTEST_JOBS)
	$(MAKE) --no-print-directory fuzz-smoke

# The fuzz targets (fuzz/README.md): clang, ASan + UBSan, only they and the libraries they need.
$(FUZZ_DIR)/build.ninja: | $(NODE_STAMP)
	CC=clang CXX=clang++ cmake -S . -B $(FUZZ_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g" -DCHAT_FUZZ=ON -DCHAT_BUILD_TESTS=OFF -DCHAT_BUILD_BENCH=OFF

fuzz-build: deps-test node-deps $(FUZZ_DIR)/build.ninja
	cmake --build $(FUZZ_DIR) -j $(JOBS) --target fuzz_all

# Replays every corpus and regression input, then FUZZ_SMOKE_SECONDS of fuzzing per target.
fuzz-smoke: fuzz-build
	FUZZ_SEED=$${FUZZ_SEED:-20261124} fuzz/run $(FUZZ_DIR) $(FUZZ_SMOKE_SECONDS)

# The long run: FUZZ_SECONDS per target; new inputs go to build/fuzz/corpus/<target>.
fuzz: fuzz-build
	fuzz/run $(FUZZ_DIR) $(FUZZ_SECONDS)

# ThreadSanitizer (GCC), in CI too (tsan.supp: the suppressions, each with its reason): the
# whole suite but the browser tests (they test the pages' scripts; the server paths they use
# are the end-to-end suite's), abuse_smoke and postgres_outage (load and outage drills whose
# server paths the end-to-end suite, test_scaleout's database restart and postgres_unit cover).
$(TSAN_DIR)/build.ninja: | $(NODE_STAMP)
	cmake -S . -B $(TSAN_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(SANITIZER_FLAGS) -DCHAT_TSAN=ON \
	  -DCHAT_BUILD_BENCH=OFF

tsan-build: deps-test node-deps $(TSAN_DIR)/build.ninja
	cmake --build $(TSAN_DIR) -j $(JOBS) --target chatbot chat_unit_tests fake_openai

test-tsan: tsan-build
	TSAN_OPTIONS="suppressions=$(CURDIR)/tsan.supp halt_on_error=1 second_deadlock_stack=1" \
	  ctest --test-dir $(TSAN_DIR) --output-on-failure --timeout 1200 -j $(CTEST_JOBS) \
	  -E '^(browser[.].*|abuse_smoke|postgres_outage)$$'

$(ASAN_DIR)/build.ninja: | $(NODE_STAMP)
	cmake -S . -B $(ASAN_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo $(SANITIZER_FLAGS) -DCHAT_SANITIZE=ON

asan-build: deps-test node-deps $(ASAN_DIR)/build.ninja
	cmake --build $(ASAN_DIR) -j $(JOBS)

test-asan: asan-build
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir $(ASAN_DIR) --output-on-failure --timeout 900 -j $(CTEST_JOBS)

# The benchmark (bench/README.md): not part of `make test` nor CI (it takes ~10 minutes).
# PEER=URL runs the same scenarios against another server of the API and prints ratios;
# PEER_DIR (default ../shared/peers/seed_fastapi) lets the driver start that peer itself.
PEER ?=
PEER_DIR ?=
BENCH_ARGS ?=
.PHONY: bench
bench: deps-test configure
	cmake --build $(RELEASE_DIR) -j $(JOBS) --target chatbot chatbot_loadgen chatbot_db_bench
	python3 scripts/bench.py --build-dir $(RELEASE_DIR) $(if $(PEER),--peer $(PEER)) \
	  $(if $(PEER_DIR),--peer-dir $(PEER_DIR)) $(BENCH_ARGS)
	python3 scripts/db-bench.py --build-dir $(RELEASE_DIR) $(DB_BENCH_ARGS)
	$(MAKE) --no-print-directory bench-openai

# The openai engine's overhead per chunk (issue 5's target: p99 added latency <= 0.5 ms), ~1 min:
# the fake upstream flat out (10,000 chunks) and at 1,000 chunks/s, each with SQLite's `full`
# (the default) and `normal`; every run measures the direct path and a byte relay beside the
# service (tests/fake_openai/measure_overhead.py, bench/README.md).
OVERHEAD := CHATBOT_BIN=$(RELEASE_DIR)/chatbot FAKE_OPENAI_BIN=$(RELEASE_DIR)/fake_openai \
  python3 tests/fake_openai/measure_overhead.py
.PHONY: bench-openai
bench-openai: deps-test configure
	cmake --build $(RELEASE_DIR) -j $(JOBS) --target chatbot fake_openai stamp_reader byte_relay
	$(OVERHEAD) 10000 --runs 3
	$(OVERHEAD) 10000 --runs 3 --sqlite-synchronous normal
	$(OVERHEAD) 5000 --rate 1000 --runs 2
	$(OVERHEAD) 5000 --rate 1000 --runs 2 --sqlite-synchronous normal

# The event log alone (~1 min): events persisted/s through the Database port, group commit
# against one transaction per event, SQLite (FULL, NORMAL) and PostgreSQL (bench/README.md).
DB_BENCH_ARGS ?=
.PHONY: bench-db
bench-db: deps-test configure
	cmake --build $(RELEASE_DIR) -j $(JOBS) --target chatbot_db_bench
	python3 scripts/db-bench.py --build-dir $(RELEASE_DIR) $(DB_BENCH_ARGS)

# The Google Benchmark micro-suite of the hot pieces (frame encoding, hub publish, JSON parse).
.PHONY: bench-micro
bench-micro: deps-test configure
	cmake --build $(RELEASE_DIR) -j $(JOBS) --target chatbot_micro_bench
	$(RELEASE_DIR)/chatbot_micro_bench --benchmark_min_time=0.5

# The seed's stack (compose.yaml: PostgreSQL, migrations, the API on http://localhost:8000) with
# `docker compose`, else `podman-compose`, else a local PostgreSQL and the binary: scripts/compose.
.PHONY: up down psql test-compose
up:
	@scripts/compose up

down:
	@scripts/compose down

psql:
	@scripts/compose psql

# The stack for real: images, up, the seed README's steps 1-8, down; then the no-engine fallback.
test-compose:
	tests/compose/run.sh

# The crash cycles of tests/e2e/test_crash_cycles.py, 100 of them (make test runs 20), on SQLite
# and on a throwaway PostgreSQL cluster.
TORTURE_CYCLES ?= 100
TORTURE_PG := build/torture-pg
.PHONY: torture
torture: deps-test configure
	cmake --build $(RELEASE_DIR) -j $(JOBS) --target chatbot
	CHATBOT_CRASH_CYCLES=$(TORTURE_CYCLES) CHATBOT_BIN=$(RELEASE_DIR)/chatbot \
	  python3 -m unittest tests.e2e.test_crash_cycles -v
	scripts/pg-test-cluster start $(TORTURE_PG) >/dev/null
	CHATBOT_CRASH_CYCLES=$(TORTURE_CYCLES) CHATBOT_BIN=$(RELEASE_DIR)/chatbot \
	  scripts/pg-test-cluster exec $(TORTURE_PG) python3 -m unittest tests.e2e.test_crash_cycles -v; \
	  rc=$$?; scripts/pg-test-cluster stop $(TORTURE_PG); [ $$rc -eq 0 ] || exit $$rc
	scripts/abuse-test $(RELEASE_DIR)/chatbot --slowloris 10000 --subscribers 1000 --hold 30 --rounds 2

clean:
	rm -rf build
