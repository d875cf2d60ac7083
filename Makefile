# The project's commands. Each target installs what it needs (scripts/install-deps) first.
SHELL := /bin/bash
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)
RELEASE_DIR := build/release
ASAN_DIR := build/asan
CMAKE_FLAGS ?=

.PHONY: deps deps-test build configure run migrate test test-asan unit e2e clean help

help:
	@echo "make run        build and serve on 127.0.0.1:8000 (SQLite at data/chatbot.db)"
	@echo "make test       build and run every test"
	@echo "make test-asan  the test suite on an ASan+UBSan build"
	@echo "make build      build build/release/chatbot"

deps:
	@scripts/install-deps

deps-test:
	@scripts/install-deps --test

$(RELEASE_DIR)/build.ninja:
	cmake -S . -B $(RELEASE_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS)

configure: deps $(RELEASE_DIR)/build.ninja

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
	ctest --test-dir $(RELEASE_DIR) --output-on-failure --timeout 900

$(ASAN_DIR)/build.ninja:
	cmake -S . -B $(ASAN_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCHAT_SANITIZE=ON

test-asan: deps-test $(ASAN_DIR)/build.ninja
	cmake --build $(ASAN_DIR) -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir $(ASAN_DIR) --output-on-failure --timeout 900

clean:
	rm -rf build
