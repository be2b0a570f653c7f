# mxtier — build, test and demo entry points.
#   make          build build/mxtierd and build/mxtierctl (installs nothing)
#   make deps     install the Debian packages for build, tests and demo (idempotent)
#   make check    deps, then unit tests (cmocka) + integration tests (real daemon,
#                 real peers) + fuzz-smoke
#   make demo     deps + build + a demo appliance on 127.0.0.10/11/12:2525
#   make bench    benchmark figures (not a test), the dashboard's cost
#                 (tests/bench/dashboard-bench) and the database writer's
#                 included; make bench-partitions: retention and query plans
#                 on 10 million session rows (slow)
#   make deb      the Debian package build/mxtier_VERSION_amd64.deb (packaging/debian)
#   make lint-deb make deb, then lintian on it: any error or warning fails
#   make image    make deb, then the appliance disk image build/image/mxtier.qcow2 + .raw
#                 (packaging/image; IMAGE_REUSE_DEB=1 takes the .deb already in build/)
#   make image-test  boot it under qemu and prove it end to end (tests/image)
#   make image-deps  install what those two need (packaging/install-image-deps)
#   make fuzz     libFuzzer harnesses, FUZZ_TIME seconds each (default 300);
#                 make fuzz-smoke is the short run that make check includes

CC         ?= cc
PKG_CONFIG ?= pkg-config
PKGS       := libevent libevent_openssl libnftnl libmnl libpq openssl libsystemd libxcrypt

# The Debian 12 package that ships each pkg-config module (packaging/install-deps
# installs them all).
DEB_libevent         := libevent-dev
DEB_libevent_openssl := libevent-dev
DEB_libnftnl         := libnftnl-dev
DEB_libmnl           := libmnl-dev
DEB_libpq            := libpq-dev
DEB_openssl          := libssl-dev
DEB_libsystemd       := libsystemd-dev
DEB_libxcrypt        := libcrypt-dev
DEB_cmocka           := libcmocka-dev

# pkg_query OPTION,MODULES - `pkg-config OPTION MODULES`, or stop with a message
# that names each missing library and the package that installs it. Only
# evaluated when something is compiled or linked (see PKG_CFLAGS), never
# when the Makefile is parsed: `make deps`, `make check` and `make demo`
# install the packages first and only then build, in a sub-make.
pkg_missing = $(shell for m in $(1); do $(PKG_CONFIG) --exists $$m || echo $$m; done)
pkg_debs    = $(sort $(foreach m,$(1),$(or $(DEB_$(m)),$(m)-dev)))
pkg_fail    = $(error missing librar$(if $(word 2,$(1)),ies,y) for the build (pkg-config \
              does not know $(1)): install the Debian package$(if $(word 2,$(call pkg_debs,$(1))),s) \
              $(call pkg_debs,$(1)) with 'sudo apt-get install $(call pkg_debs,$(1))', or run \
              'make deps' (packaging/install-deps), which installs everything the build, \
              the tests and the demo need)
pkg_query   = $(if $(shell command -v $(PKG_CONFIG) || true),,$(error $(PKG_CONFIG) not found: \
              the build asks it for the flags of $(2). Install with: sudo apt-get install \
              pkg-config $(call pkg_debs,$(2)) -- or run 'make deps' (packaging/install-deps))) \
              $(if $(call pkg_missing,$(2)),$(call pkg_fail,$(call pkg_missing,$(2))))$(strip \
              $(shell $(PKG_CONFIG) $(1) $(2)))
# Deferred and memoised: pkg-config runs once per make, at the first use.
PKG_CFLAGS    = $(eval PKG_CFLAGS := $(call pkg_query,--cflags,$(PKGS)))$(PKG_CFLAGS)
PKG_LIBS      = $(eval PKG_LIBS := $(call pkg_query,--libs,$(PKGS)))$(PKG_LIBS)
CMOCKA_CFLAGS = $(eval CMOCKA_CFLAGS := $(call pkg_query,--cflags,cmocka))$(CMOCKA_CFLAGS)
CMOCKA_LIBS   = $(eval CMOCKA_LIBS := $(call pkg_query,--libs,cmocka))$(CMOCKA_LIBS)

# CFLAGS, CPPFLAGS, LDFLAGS and LDLIBS are the user's (environment or command
# line, e.g. `make CFLAGS=-O0`, or dpkg-buildflags' hardening flags in the
# package build); the project's own flags are added in MX_*, so neither a
# user's CFLAGS nor a sub-make drops or doubles them.
CFLAGS    ?= -O2 -g
MX_CFLAGS  = -std=gnu11 -Wall -Wextra -Wshadow -Wno-unused-parameter -D_GNU_SOURCE \
             $(INCLUDES) $(SAN_FLAGS) $(CPPFLAGS) $(CFLAGS) $(PKG_CFLAGS)
MX_LDFLAGS = $(SAN_FLAGS) $(LDFLAGS)
MX_LDLIBS  = $(PKG_LIBS) $(LDLIBS)

# SANITIZE=1 builds with ASan + UBSan into build-san/ (so a sanitizer run
# never mixes objects with the normal build); every UBSan finding aborts.
ifeq ($(SANITIZE),1)
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
BUILD     ?= build-san
else
SAN_FLAGS :=
BUILD     ?= build
endif
# The source folders, lowest layer first (tools/check-layers: a file includes
# only its own layer and those below). Every one is on the include path.
SRC_DIRS := proxy/base proxy/wire proxy/config proxy/core proxy/policy proxy/adapters \
            proxy/privsep proxy/engine proxy/http db kernel-rules ctl
INCLUDES := $(SRC_DIRS:%=-I%)

# Modules shared by the daemon, mxtierctl and the unit tests.
BASE_SRC   := proxy/base/log.c proxy/base/netaddr.c proxy/base/reason.c proxy/base/sockets.c \
              proxy/base/service.c
WIRE_SRC   := proxy/wire/smtp_parse.c proxy/wire/data_reader.c proxy/wire/reply_parser.c \
              proxy/wire/client_info.c proxy/wire/dnsbl_site.c
CONFIG_SRC := proxy/config/config.c proxy/config/tls.c kernel-rules/ruleset.c
CORE_SRC   := $(BASE_SRC) $(WIRE_SRC) $(CONFIG_SRC)
POLICY_SRC := proxy/policy/verdict.c $(wildcard proxy/policy/checks/*.c)
# The daemon: what both processes share, the engine's and the parent's.
DAEMON_SRC := $(wildcard proxy/core/*.c) $(POLICY_SRC) $(wildcard proxy/adapters/*.c) \
              $(wildcard proxy/privsep/*.c) $(wildcard proxy/http/*.c) $(filter-out proxy/engine/main.c,$(wildcard proxy/engine/*.c)) \
              $(wildcard db/*.c) $(filter-out kernel-rules/ruleset.c,$(wildcard kernel-rules/*.c))
MAIN_SRC := proxy/engine/main.c
CTL_SRC  := $(wildcard ctl/*.c)

CORE_OBJ   := $(CORE_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/migrations.o
DAEMON_OBJ := $(DAEMON_SRC:%.c=$(BUILD)/%.o)
MAIN_OBJ   := $(MAIN_SRC:%.c=$(BUILD)/%.o)
CTL_OBJ    := $(CTL_SRC:%.c=$(BUILD)/%.o)
ALL_OBJ    := $(CORE_OBJ) $(DAEMON_OBJ) $(MAIN_OBJ) $(CTL_OBJ)

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps check check-run check-layers unit integration demo bench bench-tools bench-partitions clean fuzz fuzz-build \
        fuzz-smoke fuzz-merge deb lint-deb check-packaging image image-test image-deps

all: $(BUILD)/mxtierd $(BUILD)/mxtierctl

# Each object's header dependencies come from the compiler (-MMD -MP), not a
# blanket "every object depends on every header".
$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(MX_CFLAGS) -MMD -MP -c -o $@ $<

-include $(ALL_OBJ:.o=.d) $(UNIT_BIN:=.d)

# The migrations are compiled in: the daemon knows the schema version it needs.
$(BUILD)/gen/migrations.c: db/embed-migrations $(sort $(wildcard db/migrations/*.sql))
	@mkdir -p $(dir $@)
	db/embed-migrations $(sort $(wildcard db/migrations/*.sql)) > $@

$(BUILD)/gen/migrations.o: $(BUILD)/gen/migrations.c db/migrations.h
	$(CC) $(MX_CFLAGS) -c -o $@ $<

$(BUILD)/mxtierd: $(CORE_OBJ) $(DAEMON_OBJ) $(MAIN_OBJ)
	$(CC) $(MX_LDFLAGS) -o $@ $^ $(MX_LDLIBS)

# mxtierctl's dns-check asks for MX records: libresolv (glibc) builds and parses them.
$(BUILD)/mxtierctl: $(CORE_OBJ) $(CTL_OBJ)
	$(CC) $(MX_LDFLAGS) -o $@ $^ $(MX_LDLIBS) -lresolv

# Unit tests link only the modules they test where the layers allow it
# (UNIT_OBJ_name); the ones that drive sessions or the split link the daemon.
obj = $(patsubst %.c,$(BUILD)/%.o,$(1))
UNIT_OBJ_test_smtp_parse     = $(call obj,proxy/wire/smtp_parse.c)
UNIT_OBJ_test_data_reader    = $(call obj,proxy/wire/data_reader.c proxy/wire/smtp_parse.c)
UNIT_OBJ_test_reply_parser   = $(call obj,proxy/wire/reply_parser.c)
UNIT_OBJ_test_client_info    = $(call obj,proxy/wire/client_info.c proxy/base/netaddr.c)
UNIT_OBJ_test_netaddr        = $(call obj,proxy/base/netaddr.c)
UNIT_OBJ_test_config         = $(call obj,$(BASE_SRC) $(CONFIG_SRC) proxy/wire/dnsbl_site.c)
UNIT_OBJ_test_verdict        = $(call obj,$(POLICY_SRC) $(BASE_SRC) $(CONFIG_SRC) proxy/wire/dnsbl_site.c)
UNIT_OBJ_test_session_record = $(call obj,proxy/core/session_record.c $(BASE_SRC) $(WIRE_SRC) $(CONFIG_SRC))
UNIT_OBJ_test_http           = $(call obj,proxy/http/http_request.c proxy/http/http_json.c proxy/http/http_metrics.c \
                               $(BASE_SRC) $(CONFIG_SRC) proxy/wire/dnsbl_site.c)
UNIT_OBJ_test_nftset         = $(call obj,$(wildcard kernel-rules/nftset*.c) proxy/base/log.c proxy/base/netaddr.c)
UNIT_OBJ_test_db_batch       = $(call obj,db/db_batch.c db/db_rows.c proxy/privsep/priv_codec.c $(BASE_SRC) $(CONFIG_SRC) proxy/wire/dnsbl_site.c)
unit_objects = $(or $(UNIT_OBJ_$(1)),$(CORE_OBJ) $(DAEMON_OBJ))

.SECONDEXPANSION:
$(BUILD)/tests/%: tests/unit/%.c tests/unit/unit.h $$(call unit_objects,$$*)
	@mkdir -p $(dir $@)
	$(CC) $(MX_CFLAGS) $(CMOCKA_CFLAGS) -MMD -MP -MF $@.d $(MX_LDFLAGS) -o $@ $(filter %.c %.o,$^) $(MX_LDLIBS) $(CMOCKA_LIBS)

# check-layers - no file includes a header of a higher layer; no function
# cycle between files outside the session engine.
check-layers: all
	/usr/bin/python3 tools/check-layers
	/usr/bin/python3 tools/symbol-cycles --allow proxy/engine/ $(BUILD) $(DAEMON_OBJ)

deps:
	./packaging/install-deps

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

integration: all
	MXTIER_BUILD=$(abspath $(BUILD)) /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration

# check and demo install the packages first, then build in a sub-make: its
# pkg-config flags are computed after the install (a fresh machine has no
# libpq-fe.h before `make deps`). Command-line variables (SANITIZE=1,
# BUILD=...) reach the sub-make through MAKEFLAGS.
check: deps
	$(MAKE) check-run

check-run: all unit integration check-packaging fuzz-smoke

demo: deps
	$(MAKE) all
	MXTIERD=$(abspath $(BUILD))/mxtierd ./tests/demo/run-demo

# The benchmarks' C tools: the flood client and the writer on its own loop.
BENCH_BIN := $(BUILD)/bench/smtp_flood $(BUILD)/bench/db_writer_bench

$(BUILD)/bench/smtp_flood: tests/bench/smtp_flood.c
	@mkdir -p $(dir $@)
	$(CC) $(MX_CFLAGS) $(MX_LDFLAGS) -o $@ $<

$(BUILD)/bench/db_writer_bench: tests/bench/db_writer_bench.c $(CORE_OBJ) $(DAEMON_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(MX_CFLAGS) $(MX_LDFLAGS) -o $@ $(filter %.c %.o,$^) $(MX_LDLIBS)

bench-tools: $(BENCH_BIN)

bench: all bench-tools
	./tests/bench/run-bench
	./tests/bench/dashboard-bench
	MXTIER_BUILD=$(abspath $(BUILD)) ./tests/bench/db-writer-bench
	-./tests/bench/nftset-bench
	./tests/bench/behaviour-sim

# bench-partitions - retention and the dashboards' query plans on 10 million
# session rows: slow (minutes), so not part of make bench.
bench-partitions: all
	MXTIER_BUILD=$(abspath $(BUILD)) ./tests/bench/db-partitions-bench

clean:
	rm -rf build build-san build-fuzz

# ---- the Debian package (packaging/debian) and the systemd unit (packaging/systemd) ----
# make deb: dpkg-buildpackage wants debian/ at the top of the source tree, so
# the files git knows (tracked and new, not ignored) are copied into a
# staging tree under build/deb/ with packaging/debian as its debian/, and
# built there; the repository itself is never touched. The package's build
# calls this Makefile (`make all`) with dpkg-buildflags' flags.
DEB_STAGE   := build/deb
DEB_VERSION  = $(shell dpkg-parsechangelog -l packaging/debian/changelog -S Version)
DEB_ARCH     = $(shell dpkg-architecture -qDEB_HOST_ARCH)
DEB_FILE     = build/mxtier_$(DEB_VERSION)_$(DEB_ARCH).deb

deb:
	@for t in dpkg-buildpackage dh lintian; do command -v $$t >/dev/null || { echo "make deb: $$t not found:" \
	    "run 'make deps' (packaging/install-deps installs debhelper, lintian, dpkg-dev)" >&2; exit 1; }; done
	rm -rf $(DEB_STAGE)
	mkdir -p $(DEB_STAGE)/mxtier
	{ git ls-files -z -co --exclude-standard 2>/dev/null || find . -path ./build\* -prune -o -path ./.git -prune \
	    -o -type f -print0; } | grep -zv '^packaging/debian/' | \
	    tar --null -T - --no-recursion --ignore-failed-read -cf - | tar -xf - -C $(DEB_STAGE)/mxtier
	cp -r packaging/debian $(DEB_STAGE)/mxtier/debian
	cd $(DEB_STAGE)/mxtier && dpkg-buildpackage -us -uc -b
	mv $(DEB_STAGE)/mxtier_$(DEB_VERSION)_* $(DEB_STAGE)/mxtier-dbgsym_$(DEB_VERSION)_* build/
	@echo "built $(DEB_FILE)"

# lint-deb: lintian on the package and its .changes/.buildinfo; any error or
# warning fails (overrides, each with its reason, are in packaging/debian).
lint-deb: deb
	lintian --fail-on error,warning --display-info build/mxtier_$(DEB_VERSION)_$(DEB_ARCH).changes

# check-packaging: the packaged config and mxtier.conf(5) against the config
# table, the journal priority prefixes, the unit's hardening (systemd-analyze
# security, offline) and `mxtierctl db setup` against a harness PostgreSQL.
check-packaging: all
	MXTIER_BUILD=$(abspath $(BUILD)) /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/packaging

# ---- the appliance image (packaging/image, tests/image) ----
# make image: Debian 12 debootstrapped (the base cached in build/image/cache,
# so a rebuild takes about a minute), the package installed, the disk made
# without loop mounts. The package is built first unless IMAGE_REUSE_DEB=1
# and build/ already has this version's .deb (CI builds it just before).
image:
	@if [ "$(IMAGE_REUSE_DEB)" = 1 ] && [ -f $(DEB_FILE) ]; then echo "image: reusing $(DEB_FILE)"; \
	    else $(MAKE) deb; fi
	./packaging/image/build-image $(DEB_FILE)

# make image-test: qemu (TCG), the VM's network only in a namespace the test creates.
image-test:
	./tests/image/run-image-test build/image/mxtier.qcow2 $(DEB_FILE)

image-deps:
	./packaging/install-image-deps

# Fuzzing: libFuzzer harnesses (fuzz/fuzz_NAME.c) built with clang, ASan and
# UBSan into build-fuzz/, each linked with only the module it drives. The
# runs work on a temporary copy of fuzz/corpus/NAME; fuzz-merge adds what a
# run found new to the repository's corpus. Findings land in
# build-fuzz/artifacts/NAME/ and fail the target.
FUZZ_CC         ?= clang
FUZZ_BUILD      := build-fuzz
FUZZ_TIME       ?= 300
FUZZ_SMOKE_TIME ?= 15
FUZZ_WARN       := -g -O1 -std=gnu11 -Wall -Wextra -Wshadow -Wno-unused-parameter -D_GNU_SOURCE \
                   -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS      = $(FUZZ_WARN) -fsanitize=fuzzer,address,undefined $(INCLUDES) -Ifuzz $(PKG_CFLAGS)
FUZZ_OBJ_CFLAGS  = $(FUZZ_WARN) -fsanitize=fuzzer-no-link,address,undefined $(INCLUDES) $(PKG_CFLAGS)
FUZZ_NAMES      := smtp_parse data_reader reply_parser client_info session http_request
FUZZ_BIN        := $(FUZZ_NAMES:%=$(FUZZ_BUILD)/fuzz_%)
# The modules each harness links: the parser under test, or for the
# whole-session harness every module of the daemon but main.c.
FUZZ_OBJ_smtp_parse   := $(FUZZ_BUILD)/obj/proxy/wire/smtp_parse.o
FUZZ_OBJ_data_reader  := $(FUZZ_BUILD)/obj/proxy/wire/data_reader.o
FUZZ_OBJ_reply_parser := $(FUZZ_BUILD)/obj/proxy/wire/reply_parser.o
FUZZ_OBJ_client_info  := $(FUZZ_BUILD)/obj/proxy/wire/client_info.o $(FUZZ_BUILD)/obj/proxy/base/netaddr.o
FUZZ_OBJ_session      := $(CORE_SRC:%.c=$(FUZZ_BUILD)/obj/%.o) $(DAEMON_SRC:%.c=$(FUZZ_BUILD)/obj/%.o) \
                         $(FUZZ_BUILD)/obj/gen/migrations.o
FUZZ_LIBS_session      = $(PKG_LIBS)
FUZZ_OBJ_http_request := $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,proxy/http/http_request.c proxy/http/http_json.c \
                         $(BASE_SRC) $(CONFIG_SRC) proxy/wire/dnsbl_site.c)
FUZZ_LIBS_http_request = $(PKG_LIBS)

$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_OBJ_CFLAGS) -MMD -MP -c -o $@ $<

-include $(wildcard $(FUZZ_BUILD)/obj/*/*.d $(FUZZ_BUILD)/obj/*/*/*.d $(FUZZ_BUILD)/obj/*/*/*/*.d)

$(FUZZ_BUILD)/obj/gen/migrations.o: $(FUZZ_BUILD)/gen/migrations.c db/migrations.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_OBJ_CFLAGS) -c -o $@ $<

$(FUZZ_BUILD)/gen/migrations.c: db/embed-migrations $(sort $(wildcard db/migrations/*.sql))
	@mkdir -p $(dir $@)
	db/embed-migrations $(sort $(wildcard db/migrations/*.sql)) > $@

# Reached only through the harness rule below: keep them, so a rebuild is incremental.
.PRECIOUS: $(FUZZ_BUILD)/obj/%.o $(FUZZ_BUILD)/gen/migrations.c

$(FUZZ_BUILD)/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz.h $$(FUZZ_OBJ_$$*)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_OBJ_$*) $(FUZZ_LIBS_$*)

fuzz-build: $(FUZZ_BIN)

fuzz: fuzz-build
	fuzz/run-fuzz run $(FUZZ_TIME) $(FUZZ_BUILD) $(FUZZ_NAMES)

fuzz-smoke: fuzz-build
	fuzz/run-fuzz smoke $(FUZZ_SMOKE_TIME) $(FUZZ_BUILD) $(FUZZ_NAMES)

fuzz-merge: fuzz-build
	fuzz/run-fuzz merge $(FUZZ_TIME) $(FUZZ_BUILD) $(FUZZ_NAMES)
