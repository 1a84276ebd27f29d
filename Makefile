# msrp_relay — Kamailio MSRP relay module in Rust.
#   make run    install what is missing, build, install the module, run Kamailio
#               in the foreground with cfg/kamailio.cfg (MSRP relay on 127.0.0.1:2855)
#   make test   install what is missing, build, run unit + integration tests
#   make bench  throughput / message-rate / memory benchmark (msrp-bench)
#   make soak   one hour of mixed load, checked for growth and loss (SOAK_SECONDS)
#   make lint   rustfmt + clippy -D warnings
#   make certs  test CA and certificates for TLS / wss in CERTS_DIR (certs/)
#   make run-tls  like run, with cfg/kamailio-tls.cfg: TLS 127.0.0.1:2856, WSS 127.0.0.1:8443
#   make run-auth like run, with cfg/kamailio-auth.cfg: Digest AUTH against an SQLite
#               subscriber table (AUTH_DB) holding the test user alice / xyz123
#   make demo   run-tls in the background and the browser example (examples/web)
#               on http://127.0.0.1:8080 (DEMO_PORT); prints what to open
#   make fuzz   every fuzz target (fuzz/) for FUZZ_SECONDS each; make fuzz-smoke: a short run
#
# Another Kamailio (5.6 or later) than Debian's: put its sbin first in PATH and
# point KAMAILIO_SRC at its source tree (same version as `kamailio -I`), e.g.
#   PATH=/opt/kamailio-6.0.1/sbin:$PATH KAMAILIO_SRC=/usr/src/kamailio-6.0.1 make build
# Without KAMAILIO_SRC the source of Debian's package is fetched
# (kamailio-headers/fetch.sh) into kamailio-headers/src.

SHELL := /bin/bash
CARGO ?= $(shell command -v cargo 2>/dev/null || echo $(HOME)/.cargo/bin/cargo)
export PATH := $(HOME)/.cargo/bin:$(PATH)

# Debian packages a fresh machine needs: the Kamailio we build against and
# load into (plus app_lua for the KEMI test and example), clang/libclang for
# bindgen, binutils (nm) for the ABI guard, dpkg-dev for `apt-get source`,
# openssl for the test certificates (scripts/make-certs.sh), python3-websockets
# for the tests that drive the relay with a third-party WebSocket client
# (tests/ws_client.py; websockets 10.4 on Debian 12), chromium and nodejs for
# the real-browser tests of examples/web (tests/browser.rs drives Chromium
# headless over the DevTools protocol with tests/browser/driver.mjs; no npm).
# kamailio-sqlite-modules (db_sqlite and its schema) and sqlite3 for
# cfg/kamailio-auth.cfg's credentials database (scripts/msrp-auth-db.sh).
# With KAMAILIO_SRC and a kamailio in PATH, that Kamailio is the operator's own:
# Debian's is not installed next to it.
KAMAILIO_SRC ?=
ifneq ($(KAMAILIO_SRC),)
export KAMAILIO_SRC
OWN_KAMAILIO := $(shell command -v kamailio 2>/dev/null)
endif
DEB_PACKAGES := $(if $(OWN_KAMAILIO),,kamailio kamailio-lua-modules kamailio-sqlite-modules) sqlite3 clang libclang-dev binutils dpkg-dev ca-certificates openssl python3-websockets chromium nodejs
KAMAILIO_MODDIR = $(shell kamailio -I 2>/dev/null | sed -n 's/^ *Default paths to modules: *//p')
RUN_DIR ?= /run/kamailio
# cargo's target directory (CARGO_TARGET_DIR is honoured, e.g. one per Kamailio version)
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
MODULE_SO = $(TARGET_DIR)/release/libmsrp_relay.so

.PHONY: all deps certs headers build build-debug install run run-tls run-auth demo test script-tests unit integration bench soak soak-smoke lint deb deb-test clean fuzz fuzz-smoke fuzz-deps fuzz-build fuzz-run

all: build

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install the Rust toolchain (rustup)"; exit 1; }

# Test CA and certificates for TLS / secure WebSocket (scripts/make-certs.sh;
# kept when CERTS_DIR/ca.pem exists).
CERTS_DIR ?= certs
certs: deps
	scripts/make-certs.sh $(CERTS_DIR)

headers: deps
ifneq ($(KAMAILIO_SRC),)
	kamailio-headers/check-src.sh "$(KAMAILIO_SRC)"
else
	kamailio-headers/fetch.sh
endif

build: headers
	$(CARGO) build --release -p msrp_relay

build-debug: headers
	$(CARGO) build -p msrp_relay

install: build
	@[ -n "$(KAMAILIO_MODDIR)" ] || { echo "cannot find Kamailio's module directory (kamailio -I)"; exit 1; }
	install -m 0644 $(MODULE_SO) $(KAMAILIO_MODDIR)/msrp_relay.so
	@echo "installed $(KAMAILIO_MODDIR)/msrp_relay.so"

run: install
	mkdir -p $(RUN_DIR)
	kamailio -f cfg/kamailio.cfg -DD -E -m 64 -M 16

# cfg/kamailio-tls.cfg (TLS on 127.0.0.1:2856, WSS on 127.0.0.1:8443, Digest
# AUTH) with the test certificates of `make certs` (CERTS_DIR).
run-tls: install certs
	mkdir -p $(RUN_DIR)
	sed 's!/etc/kamailio/msrp-certs!$(abspath $(CERTS_DIR))!' cfg/kamailio-tls.cfg > $(RUN_DIR)/kamailio-tls.cfg
	kamailio -f $(RUN_DIR)/kamailio-tls.cfg -DD -E -m 64 -M 16

# cfg/kamailio-auth.cfg with its credentials in AUTH_DB (created when missing,
# Kamailio's subscriber schema) and the test user alice / xyz123 (realm myrealm).
AUTH_DB ?= $(RUN_DIR)/msrp-auth.sqlite
run-auth: install
	mkdir -p $(RUN_DIR)
	[ -f $(AUTH_DB) ] || scripts/msrp-auth-db.sh create $(AUTH_DB)
	scripts/msrp-auth-db.sh add $(AUTH_DB) alice xyz123
	sed 's!sqlite:////etc/kamailio/msrp-auth.sqlite!sqlite:///$(abspath $(AUTH_DB))!' cfg/kamailio-auth.cfg > $(RUN_DIR)/kamailio-auth.cfg
	kamailio -f $(RUN_DIR)/kamailio-auth.cfg -DD -E -m 64 -M 16

# The browser example against cfg/kamailio-tls.cfg: the relay runs in the
# background (stopped with the page server, Ctrl-C), the page is served by
# python3's http.server on 127.0.0.1:DEMO_PORT.
DEMO_PORT ?= 8080
demo: install certs
	mkdir -p $(RUN_DIR)
	sed 's!/etc/kamailio/msrp-certs!$(abspath $(CERTS_DIR))!' cfg/kamailio-tls.cfg > $(RUN_DIR)/kamailio-tls.cfg
	@pin=$$(openssl x509 -in $(CERTS_DIR)/relay.pem -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64); \
	kamailio -f $(RUN_DIR)/kamailio-tls.cfg -DD -E -m 64 -M 16 2> $(RUN_DIR)/kamailio-demo.log & relay=$$!; \
	trap 'kill $$relay 2>/dev/null' EXIT INT TERM; \
	sleep 1; kill -0 $$relay 2>/dev/null || { echo "the relay did not start:"; tail -5 $(RUN_DIR)/kamailio-demo.log; exit 1; }; \
	echo; \
	echo "relay: wss://127.0.0.1:8443 (cfg/kamailio-tls.cfg; log in $(RUN_DIR)/kamailio-demo.log)"; \
	echo "page:  http://127.0.0.1:$(DEMO_PORT)/  - open it in two tabs, Connect in each"; \
	echo "       (password xyz123), paste one tab's address into the other's Peer field,"; \
	echo "       Open chat, then send text and files both ways."; \
	echo "The browser must trust the test CA $(abspath $(CERTS_DIR))/ca.pem (README: TLS and"; \
	echo "WebSocket), or for a quick try start a throw-away Chromium that trusts only this key:"; \
	echo "  chromium --user-data-dir=\$$(mktemp -d) --ignore-certificate-errors-spki-list=$$pin http://127.0.0.1:$(DEMO_PORT)/"; \
	echo; \
	python3 -m http.server $(DEMO_PORT) --bind 127.0.0.1 --directory examples/web

# Integration tests load target/release/libmsrp_relay.so into a real Kamailio.
test: headers script-tests
	$(CARGO) build --release --workspace
	MSRP_RELAY_SO=$(MODULE_SO) $(CARGO) test --release --workspace

# Tests of the shell scripts (no build needed).
script-tests:
	tests/scripts/check-src.sh
	tests/scripts/make-certs.sh
	tests/scripts/msrp-auth-db.sh

# BENCH_ARGS: more msrp-bench options (e.g. BENCH_ARGS=--quick); by default
# A also reaches the relay over TLS and WSS, so the one summary table holds
# TLS/WSS against plain TCP beside relay against the TCP proxy.
BENCH_ARGS ?=
bench: headers
	$(CARGO) build --release --workspace
	MSRP_RELAY_SO=$(MODULE_SO) $(CARGO) run --release -p msrp-tools --bin msrp-bench -- --spawn-relay --transport tls,wss $(BENCH_ARGS)

# Soak: mixed load against a spawned Kamailio for SOAK_SECONDS (default one
# hour); fails when memory, descriptors, connections or the transaction
# table grow, or a message or REPORT is lost, corrupted or duplicated.
# soak-smoke is the 60-second version .ci/run runs.
SOAK_SECONDS ?= 3600
soak: headers
	$(CARGO) build --release --workspace
	MSRP_RELAY_SO=$(MODULE_SO) $(CARGO) run --release -p msrp-tools --bin msrp-bench -- soak --duration $(SOAK_SECONDS)

soak-smoke:
	$(MAKE) soak SOAK_SECONDS=60

# Debian package for the installed Debian kamailio: target/debian/*.deb
# (pkg/build-deb.sh: dpkg-deb from a staging directory).
deb: build
	pkg/build-deb.sh $(MODULE_SO) $(TARGET_DIR)/debian

# Installs that package, relays one SEND through the installed example
# config, removes it again (pkg/deb-test.sh; root).
deb-test: deb
	$(CARGO) build --release -p msrp-tools --bin msrp-ping
	pkg/deb-test.sh "$$(ls -t $(TARGET_DIR)/debian/kamailio-msrp-relay-module_*.deb | head -n1)" $(TARGET_DIR)/release/msrp-ping

lint: headers
	$(CARGO) fmt --all -- --check
	cd fuzz && $(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --workspace -- -D warnings -D clippy::too_many_lines
	tests/scripts/check-sizes.sh
	tests/scripts/check-circles.py msrp-core/src msrp-engine/src src/kamailio=kamailio msrp-tools/src

# Fuzzing (see README "Fuzzing"): cargo-fuzz / libFuzzer on the stable
# toolchain, which accepts the -Z flags cargo-fuzz passes (sanitizer,
# coverage) with RUSTC_BOOTSTRAP=1; libfuzzer-sys builds libFuzzer with g++.
# Each target runs on a scratch copy of its committed seeds
# (fuzz/corpus/<target>), so a run never changes the repository; what it
# finds is in fuzz/artifacts/<target>/ and the run fails.
FUZZ_TARGETS := parser head uri byte_range chunker tracker sched ws txtable relay
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 15
FUZZ_FLAGS ?= -timeout=10 -rss_limit_mb=2048
FUZZ_WORK := fuzz/target/corpus-run
CARGO_FUZZ = RUSTC_BOOTSTRAP=1 $(CARGO) fuzz

fuzz-deps:
	@dpkg-query -W -f='$${Status}' g++ 2>/dev/null | grep -q "install ok installed" || { \
	  echo "installing Debian packages: g++"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++; }
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install the Rust toolchain (rustup)"; exit 1; }
	@$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install --locked cargo-fuzz

fuzz-build: fuzz-deps
	cd fuzz && $(CARGO_FUZZ) build

fuzz: fuzz-build
	@$(MAKE) --no-print-directory fuzz-run SECONDS=$(FUZZ_SECONDS)

fuzz-smoke: fuzz-build
	@$(MAKE) --no-print-directory fuzz-run SECONDS=$(FUZZ_SMOKE_SECONDS)

# One target at a time; prints the executions of each at the end.
fuzz-run:
	@rm -rf $(FUZZ_WORK); : > fuzz/target/fuzz-stats.txt
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_WORK)/$$t; \
	  echo "fuzz: $$t for $(SECONDS) s"; \
	  (cd fuzz && $(CARGO_FUZZ) run $$t ../$(FUZZ_WORK)/$$t corpus/$$t -- \
	    -max_total_time=$(SECONDS) -print_final_stats=1 $(FUZZ_FLAGS)) > $(FUZZ_WORK)/$$t.log 2>&1 \
	    || { tail -n 60 $(FUZZ_WORK)/$$t.log; echo "fuzz: $$t FAILED (input in fuzz/artifacts/$$t/)"; exit 1; }; \
	  echo "$$t $$(sed -n 's/^stat::number_of_executed_units: *//p' $(FUZZ_WORK)/$$t.log) executions in $(SECONDS) s" \
	    | tee -a fuzz/target/fuzz-stats.txt; \
	done

clean:
	$(CARGO) clean
	rm -rf kamailio-headers/src
