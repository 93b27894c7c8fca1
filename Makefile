# mxfb - fallback mail exchanger.  See README.
#
#   make            build ./mxfb
#   make check      the include rule, function lengths, unit tests
#                   (cmocka) and integration tests (pytest)
#   make layers     the include rule alone (HACKING)
#   make funclen    no function in cmd/ core/ spool/ over 120 lines
#   make asan       the same tests against an ASan+UBSan build
#   make fuzz       short libFuzzer runs of the parsers (clang)
#   make STATIC=1   ldns/LMDB/OpenSSL/libsodium/libbsd linked statically
#                   (default: the system's shared libraries, so that
#                   security updates reach mxfb); STATIC=full: all
#                   static, not PIE: fastest start, see below
#   make install    PREFIX, DESTDIR, SYSCONFDIR, MANDIR honoured
#   make deps       install the Debian packages the build and tests need

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/site-functions
DESTDIR    ?=

CC      ?= cc
O       ?= build
BIN     ?= mxfb
PYTHON  ?= /usr/bin/python3
PKGS     = libbsd-overlay ldns libsodium lmdb
VERSION  = 0.1

# A fresh Debian machine: the first `make` (or `make check`) installs what
# is missing through `make deps` when run as root, else stops with the
# exact apt-get line.
# Plain `make` needs the build's libraries only; cmocka only the goals
# that build the unit tests.
NODEPS_GOALS = deps clean
TEST_GOALS   = check unit asan
NEED_PKGS    = $(PKGS) $(if $(filter $(TEST_GOALS),$(MAKECMDGOALS)),cmocka)
ifeq ($(filter $(NODEPS_GOALS),$(MAKECMDGOALS)),)
ifneq ($(shell pkg-config --exists $(NEED_PKGS) 2>/dev/null && echo ok),ok)
$(info mxfb: build dependencies missing; running make deps)
ifneq ($(shell $(MAKE) --no-print-directory -s deps 1>&2 && echo ok),ok)
$(error mxfb: install the packages above, then run make again)
endif
endif
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN     = -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
	   -Wmissing-prototypes -Wno-unused-parameter
CFLAGS  ?= -O2 -g
ALL_CFLAGS = -std=gnu11 $(WARN) $(CFLAGS) $(PKG_CFLAGS) -DLIBBSD_OPENBSD_VIS \
	   -D_GNU_SOURCE -I. -DMXFB_VERSION='"$(VERSION)"' \
	   -DMXFB_SYSCONFDIR='"$(SYSCONFDIR)"'
DYN_LIBS = $(PKG_LIBS) -lssl -lcrypto
# Default: OpenSSL, ldns, libsodium and libbsd are the system's shared
# libraries, as every distribution package links them, so that a security
# update of OpenSSL (apt upgrade) reaches mxfb without a rebuild.  A
# static copy would stay vulnerable until someone rebuilt it.
# STATIC=1: ldns, OpenSSL, libsodium and libbsd linked statically (libc
# stays shared, the binary stays PIE): far fewer relocations and page
# faults when a process starts, most of what an inetd-started `receive`
# costs; the site then rebuilds mxfb after every security update of
# those libraries.  STATIC=full: everything static and not PIE, the
# cheapest start (no dynamic loader, no relocations), at the price of
# ASLR for the binary's own code, of glibc's security updates too, and of
# glibc's NSS (getaddrinfo of a host *name* in `receive -l`) needing the
# same glibc at run time.  Both need the seven archives (Debian's -dev
# packages ship them).  Sanitizer and fuzz builds are always dynamic.
STATIC_ARCHIVES = $(foreach l,ldns lmdb ssl crypto sodium bsd md,$(firstword \
	   $(wildcard /usr/lib/$(shell $(CC) -dumpmachine 2>/dev/null)/lib$(l).a \
	   /usr/lib/lib$(l).a /usr/local/lib/lib$(l).a)))
HAVE_STATIC = $(if $(word 7,$(STATIC_ARCHIVES)),1,)
STATIC  ?=
STATIC_DEPS = -lldns -lssl -lcrypto -lsodium -lbsd -lmd
# LMDB (the recipient database) is linked statically as the others are;
# it needs only libpthread, which stays shared.
STATIC_LMDB = -Wl,-Bstatic -llmdb -Wl,-Bdynamic
ifneq ($(filter 1 full,$(STATIC)),)
ifeq ($(HAVE_STATIC),)
$(error STATIC=$(STATIC) needs libldns.a, liblmdb.a, libssl.a, libcrypto.a, libsodium.a, libbsd.a and libmd.a (Debian: the -dev packages))
endif
endif
ifeq ($(STATIC),1)
LIBS     = $(STATIC_LMDB) -Wl,-Bstatic $(STATIC_DEPS) -Wl,-Bdynamic \
	   -lpthread -ldl
else ifeq ($(STATIC),full)
LIBS     = -static -no-pie -llmdb $(STATIC_DEPS) -lpthread -ldl
else
LIBS     = $(DYN_LIBS)
endif

CORE_SRC  = $(wildcard core/*.c core/mail/*.c)
SPOOL_SRC = $(wildcard spool/*.c)
CMD_SRC   = $(wildcard cmd/*.c)
LIB_OBJ   = $(patsubst %.c,$(O)/%.o,$(CORE_SRC) $(SPOOL_SRC))
CMD_OBJ   = $(patsubst %.c,$(O)/%.o,$(CMD_SRC))
UNIT_SRC  = $(wildcard tests/unit/test_*.c)
UNIT_BIN  = $(patsubst tests/unit/%.c,$(O)/tests/%,$(UNIT_SRC))
FUZZ_SRC  = $(wildcard tests/fuzz/fuzz_*.c)
COMMANDS  = receive probe flush bounce status inject hold release delete verify \
	    passwd check

all: $(BIN)

$(BIN): $(CMD_OBJ) $(O)/libmxfb.a $(O)/link-libs
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $(CMD_OBJ) $(O)/libmxfb.a $(LIBS)

# The link line's libraries, rewritten only when they change: `make
# STATIC=1` after `make` relinks instead of keeping the other binary.
$(O)/link-libs: FORCE
	@mkdir -p $(dir $@)
	@echo '$(LIBS)' | cmp -s - $@ || echo '$(LIBS)' >$@

$(O)/libmxfb.a: $(LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $(LIB_OBJ)

$(O)/%.o: %.c $(wildcard core/*.h core/mail/*.h spool/*.h \
	    cmd/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# Unit tests reach cmd/'s pure policy too (flush_select.c): the command
# objects but main.o, as an archive, so each test links only what it calls.
$(O)/libmxfbcmd.a: $(filter-out $(O)/cmd/main.o,$(CMD_OBJ))
	rm -f $@
	$(AR) rcs $@ $^

$(O)/tests/%: tests/unit/%.c $(O)/libmxfbcmd.a $(O)/libmxfb.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes $(LDFLAGS) -o $@ $< \
	    $(O)/libmxfbcmd.a $(O)/libmxfb.a $(DYN_LIBS) \
	    $$(pkg-config --libs cmocka)

# A test helper, never installed: signs a message with core/dkim.c for
# tests/integration/test_dkim.py (no test-only switch in the binary).
$(O)/tests/dkim_sign: tests/tools/dkim_sign.c $(O)/libmxfb.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(O)/libmxfb.a $(DYN_LIBS)

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

integration: $(BIN) $(O)/tests/dkim_sign
	MXFB_BIN=$(abspath $(BIN)) MXFB_BUILD_STATIC=$(STATIC) \
	    MXFB_DKIM_SIGN=$(abspath $(O)/tests/dkim_sign) \
	    $(PYTHON) -m pytest -q tests/integration $(PYTEST_ARGS)

# The include rule between layers (HACKING): violations as file:line.
layers:
	sh tests/layers.sh

# A function that long is two functions (tests/funclen.sh).
FUNCLEN_MAX ?= 120
funclen:
	sh tests/funclen.sh -m $(FUNCLEN_MAX) $(CORE_SRC) $(SPOOL_SRC) $(CMD_SRC)

check: all layers funclen unit integration

# The life of a backup MX on loopback, in one command (README's first).
demo: $(BIN)
	$(PYTHON) tests/demo/demo.py $(abspath $(BIN))

# The same tests against an AddressSanitizer + UndefinedBehaviorSanitizer build.
ASAN_FLAGS = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
	     -fno-sanitize-recover=undefined
asan:
	$(MAKE) O=build-asan BIN=build-asan/mxfb CFLAGS="$(ASAN_FLAGS)" \
	    LDFLAGS="-fsanitize=address,undefined" STATIC= check

# libFuzzer targets (clang only); FUZZ_TIME seconds each.
FUZZ_TIME ?= 20
fuzz:
	$(MAKE) O=build-fuzz CC=clang STATIC= \
	    CFLAGS="-O1 -g -fsanitize=fuzzer-no-link,address,undefined" \
	    build-fuzz/libmxfb.a
	@set -e; for f in $(FUZZ_SRC); do \
	    n=$$(basename $$f .c); \
	    clang $(filter-out -Werror,$(ALL_CFLAGS)) -O1 -g \
		-fsanitize=fuzzer,address,undefined -o build-fuzz/$$n $$f \
		build-fuzz/libmxfb.a $(DYN_LIBS); \
	    mkdir -p build-fuzz/corpus-$$n; \
	    cp -n tests/fuzz/corpus/$$n/* build-fuzz/corpus-$$n/ 2>/dev/null || true; \
	    echo "== $$n ($(FUZZ_TIME)s)"; \
	    build-fuzz/$$n -max_total_time=$(FUZZ_TIME) -print_final_stats=0 \
		build-fuzz/corpus-$$n >build-fuzz/$$n.log 2>&1 || \
		{ tail -40 build-fuzz/$$n.log; exit 1; }; \
	done

install: $(BIN)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
	    $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR)
	install -m 755 $(BIN) $(DESTDIR)$(BINDIR)/mxfb
	for c in $(COMMANDS); do ln -sf mxfb $(DESTDIR)$(BINDIR)/mxfb-$$c; done
	sed 's|/etc/mxfb/|$(SYSCONFDIR)/mxfb/|g' mxfb.1 \
	    >$(DESTDIR)$(MANDIR)/man1/mxfb.1
	chmod 644 $(DESTDIR)$(MANDIR)/man1/mxfb.1
	install -m 644 completions/mxfb.bash $(DESTDIR)$(BASHCOMPDIR)/mxfb
	for c in $(COMMANDS); do \
	    ln -sf mxfb $(DESTDIR)$(BASHCOMPDIR)/mxfb-$$c; done
	install -m 644 completions/_mxfb $(DESTDIR)$(ZSHCOMPDIR)/_mxfb

DEBS = build-essential pkg-config clang libbsd-dev libldns-dev libsodium-dev \
       libssl-dev liblmdb-dev libcmocka-dev python3 python3-pytest python3-aiosmtpd \
       python3-dnslib python3-flufl.bounce swaks ucspi-tcp socat \
       libclang-rt-14-dev zsh strace dovecot-imapd python3-prometheus-client \
       python3-dkim
deps:
	@missing=""; for p in $(DEBS); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | \
		grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "deps: all installed"; \
	elif [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq $$missing; \
	else echo "run as root: apt-get install -y$$missing"; exit 1; fi

# mxfb vs a private Postfix and the disk's fsync limit (tests/bench/README).
# BENCH_QUICK=1 for a short smoke run.  Where the archives exist, a
# STATIC=1 copy is built into $(O)-static and measured beside this build.
BENCH_STATIC_BIN = $(if $(HAVE_STATIC),$(abspath $(O)-static/mxfb))
bench: $(BIN)
	$(if $(BENCH_STATIC_BIN),$(MAKE) O=$(O)-static \
	    BIN=$(O)-static/mxfb STATIC=1)
	MXFB_BIN=$(abspath $(BIN)) MXFB_STATIC_BIN=$(BENCH_STATIC_BIN) \
	    $(PYTHON) tests/bench/bench.py

clean:
	rm -rf build build-asan build-fuzz build-static mxfb

.PHONY: all layers funclen unit integration check demo asan fuzz install deps \
	clean bench \
	FORCE
