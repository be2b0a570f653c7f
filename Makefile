# mxtier — build, test and demo entry points.
#   make          build build/mxtierd and build/mxtierctl
#   make deps     install the Debian packages for build, tests and demo (idempotent)
#   make check    unit tests (cmocka) + integration tests (real daemon, real peers)
#   make demo     deps + build + a demo appliance on 127.0.0.10/11/12:2525
#   make bench    benchmark figures (not a test)

CC       ?= cc
PKGS     := libevent libevent_openssl libnftnl libmnl libpq openssl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 -Wall -Wextra -Wshadow -Wno-unused-parameter -D_GNU_SOURCE -Iproxy -Ikernel-rules -Idb $(PKG_CFLAGS)
LDLIBS   += $(PKG_LIBS)

# SANITIZE=1 builds with ASan + UBSan into build-san/ (so a sanitizer run
# never mixes objects with the normal build); every UBSan finding aborts.
ifeq ($(SANITIZE),1)
CFLAGS  += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
LDFLAGS += -fsanitize=address,undefined
BUILD   ?= build-san
else
BUILD   ?= build
endif
# Modules shared by the daemon, mxtierctl and the unit tests.
CORE_SRC := proxy/log.c proxy/netaddr.c proxy/config.c proxy/smtp_parse.c \
            proxy/data_reader.c proxy/reply_parser.c proxy/client_info.c proxy/dnsbl_site.c \
            kernel-rules/ruleset.c
DAEMON_SRC := proxy/daemon.c proxy/listener.c proxy/session.c proxy/session_cmd.c \
            proxy/session_data.c proxy/outq.c proxy/client_table.c proxy/relay.c proxy/health.c \
            proxy/verdict.c proxy/stats.c proxy/dns.c proxy/client_dns.c \
            proxy/history.c proxy/shed.c proxy/control.c proxy/kernel.c kernel-rules/nftset.c db/db.c $(wildcard proxy/checks/*.c)
MAIN_SRC := proxy/main.c
CTL_SRC  := proxy/mxtierctl.c

CORE_OBJ   := $(CORE_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/migrations.o
DAEMON_OBJ := $(DAEMON_SRC:%.c=$(BUILD)/%.o)
MAIN_OBJ   := $(MAIN_SRC:%.c=$(BUILD)/%.o)
CTL_OBJ    := $(CTL_SRC:%.c=$(BUILD)/%.o)

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps check unit integration demo bench clean

all: $(BUILD)/mxtierd $(BUILD)/mxtierctl

$(BUILD)/%.o: %.c $(wildcard proxy/*.h proxy/checks/*.h kernel-rules/*.h db/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# The migrations are compiled in: the daemon knows the schema version it needs.
$(BUILD)/gen/migrations.c: db/embed-migrations $(sort $(wildcard db/migrations/*.sql))
	@mkdir -p $(dir $@)
	db/embed-migrations $(sort $(wildcard db/migrations/*.sql)) > $@

$(BUILD)/gen/migrations.o: $(BUILD)/gen/migrations.c db/migrations.h
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/mxtierd: $(CORE_OBJ) $(DAEMON_OBJ) $(MAIN_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/mxtierctl: $(CORE_OBJ) $(CTL_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Unit tests link every module but main.c, so they can drive sessions too.
$(BUILD)/tests/%: tests/unit/%.c tests/unit/unit.h $(CORE_OBJ) $(DAEMON_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(filter %.c %.o,$^) $(LDLIBS) -lcmocka

deps:
	./packaging/install-deps

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

integration: all
	MXTIER_BUILD=$(abspath $(BUILD)) /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration

check: all unit integration

demo: deps all
	./tests/demo/run-demo

bench: all
	./tests/bench/run-bench
	-./tests/bench/nftset-bench

clean:
	rm -rf build build-san build-fuzz
