# yubin — top-level build.  See README.md.
#
#   make            build every program and libyubin into $(B)/
#   make install    install into $(DESTDIR)$(PREFIX) (bin, man)
#   make run        install deps, build, start a local instance under s6
#   make test       deps, build (normal + ASan/UBSan), every test
#   make bench      yubin against Postfix, printed as ratios
#   make unit       build the C unit tests (tests/*/t-*.c) into $(B)/unit/
#   make fuzz       build the libFuzzer targets (tests/fuzz/fuzz-*.c) with
#                   clang into build/fuzz/
#
# How a program is made (the skalibs way):
#   - every <dir>/yubin-NAME.c in PROGDIRS is one program, yubin-NAME;
#   - <dir>/deps-exe/yubin-NAME, if present, lists the other modules it
#     links, one source path per line (from the top of the tree), '#'
#     starts a comment;
#   - every program also links libyubin.a, made of common/*.c: the code
#     that two or more programs share, and nothing else;
#   - C unit tests tests/<dir>/t-NAME.c and fuzz targets
#     tests/fuzz/fuzz-NAME.c list their modules the same way, in
#     tests/<dir>/deps-exe/t-NAME and tests/fuzz/deps-exe/fuzz-NAME.
# Headers: common/ is on the include path; a module of a program folder is
# included with its path from the top ("smtpd/address.h") by outsiders.
# The compiler flags are written here and only here: the test and fuzz
# scripts build through this Makefile.

B       ?= build
PREFIX  ?= /usr/local
DESTDIR ?=
ROOT    ?= /var/yubin
CC      ?= cc
SAN     ?=
FUZZ    ?=

# the programs every daemon relies on live in folders of their own in common/
PROGDIRS := smtpd qmgr remote local pop3d imapd banwatch \
            $(patsubst %/,%,$(wildcard common/*/))
PROGSRC  := $(sort $(foreach d,$(PROGDIRS),$(wildcard $(d)/yubin-*.c)))
PROGS    := $(patsubst %.c,$(B)/bin/%,$(notdir $(PROGSRC)))
LIBSRC   := $(sort $(wildcard common/*.c))
LIB      := $(B)/libyubin.a
UNITSRC  := $(sort $(wildcard tests/*/t-*.c))
UNITS    := $(patsubst %.c,$(B)/unit/%,$(notdir $(UNITSRC)))
FUZZSRC  := $(sort $(wildcard tests/fuzz/fuzz-*.c))
FUZZERS  := $(patsubst %.c,$(B)/%,$(notdir $(FUZZSRC)))

WARN     := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
CPPFLAGS += -D_GNU_SOURCE -I. -Icommon -DYUBIN_ROOT_DEFAULT='"$(ROOT)"'
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 $(WARN) -fno-strict-aliasing
ifeq ($(SAN),1)
CFLAGS   += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
endif
ifeq ($(FUZZ),1)
CC       := clang
CFLAGS   += -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=fuzzer,address,undefined
endif
# skalibs statically (start-up cost is on the hot path), OpenSSL only where used.
LDLIBS   += -Wl,--as-needed -l:libskarnet.a -lcrypto

# $(call modules,dir/NAME.c): dir/NAME.c and the modules in dir/deps-exe/NAME
modules = $(1) $(shell sed 's/\#.*//' $(dir $(1))deps-exe/$(basename $(notdir $(1))) 2>/dev/null)
objects = $(patsubst %.c,$(B)/obj/%.o,$(call modules,$(1)))

.PHONY: all install run test bench soak clean fuzz fuzz-targets unit asan
all: $(PROGS)

$(B)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<
-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)

$(LIB): $(patsubst %.c,$(B)/obj/%.o,$(LIBSRC))
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

# LINK_RULE target source: the target links the source's modules and libyubin
define LINK_RULE
$(1): $(call objects,$(2)) $(LIB)
	@mkdir -p $$(@D)
	$$(CC) $$(LDFLAGS) -o $$@ $$(filter %.o,$$^) $(LIB) $$(LDLIBS)
endef
$(foreach s,$(PROGSRC),$(eval $(call LINK_RULE,$(B)/bin/$(notdir $(basename $(s))),$(s))))
$(foreach s,$(UNITSRC),$(eval $(call LINK_RULE,$(B)/unit/$(notdir $(basename $(s))),$(s))))
$(foreach s,$(FUZZSRC),$(eval $(call LINK_RULE,$(B)/$(notdir $(basename $(s))),$(s))))

unit: $(UNITS)
fuzz-targets: $(FUZZERS)
fuzz:
	$(MAKE) B=build/fuzz FUZZ=1 fuzz-targets
# yubin-tlsd is the only program that links libssl (DESIGN.md: TLS in its own process).
# It starts once per TLS connection, and OpenSSL 3 as a shared library costs
# about 3 ms of dynamic linking and start-up per process here: it is linked
# statically (TLS_STATIC=1, the default), so after a Debian OpenSSL security
# update rebuild and reinstall it (make && make install, or make run).
# TLS_STATIC=0 links OpenSSL as a shared library instead.
TLS_STATIC ?= 1
ifeq ($(TLS_STATIC)$(SAN),1)
$(B)/bin/yubin-tlsd: LDFLAGS += -static
$(B)/bin/yubin-tlsd: LDLIBS := -l:libskarnet.a -l:libssl.a -l:libcrypto.a -lpthread
else
$(B)/bin/yubin-tlsd: LDLIBS += -lssl
endif
# The programs exec'd once per connection, message or delivery are linked
# statically: no dynamic loader at start-up (about 0.1 ms of CPU per exec
# here, measured with posix_spawn of a static and a dynamic empty program);
# yubin-lspawn too, which forks once per delivery (a smaller address space
# to copy); yubin-checkpassword runs once per AUTH and would otherwise load
# the shared libcrypto each time (rebuild it after an OpenSSL update, as
# yubin-tlsd); yubin-connlimit starts every network session (static: about
# 0.3 ms less per connection, measured).
HOTPATH := yubin-smtpd yubin-queue yubin-local yubin-lspawn yubin-checkpassword yubin-connlimit yubin-pop3d yubin-pop3mbox yubin-imapd yubin-imapmail
ifneq ($(SAN),1)
$(patsubst %,$(B)/bin/%,$(HOTPATH)): LDFLAGS += -static
endif

# yubin-remote and its spawner resolve with libunbound and speak TLS as a
# client (no key: no separate TLS process, DESIGN.md); the unit tests of
# the resolver link libunbound too.
REMOTE_LIBS := -lunbound -lssl
$(B)/bin/yubin-remote $(B)/bin/yubin-rspawn $(B)/unit/t-route: LDLIBS += $(REMOTE_LIBS)

MANPAGES := $(sort $(foreach d,$(PROGDIRS),$(wildcard $(d)/*.[1-9])))

# make install: the programs (0755, nothing set-id) and yubin-qmail-check
# into $(DESTDIR)$(PREFIX)/bin, the man pages, and the kit package/setup
# needs (package/, banwatch/conf/) into $(PREFIX)/share/yubin/; then
# package/install makes the instance at YUBIN_ROOT (default ROOT) with
# package/setup (users, owners, set-id bits, services), links the qmail
# names in <root>/bin (and QMAIL_COMPAT/bin) and the services into SCANDIR.
# With DESTDIR it makes nothing else and prints what a postinst must run.
# README.md, "Installing" and "Migrating from qmail".
YUBIN_ROOT   ?= $(ROOT)
SCANDIR      ?=
QMAIL_COMPAT ?=
INSTALLKIT   := package/setup package/install package/tcp.smtp \
                $(wildcard package/services/*/run package/services/*/log/run) \
                $(wildcard banwatch/conf/*.conf banwatch/conf/filter.d/*.conf)
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 755 $(PROGS) package/yubin-qmail-check $(DESTDIR)$(PREFIX)/bin/
	for m in $(MANPAGES) package/yubin-qmail-check.8; do s=$${m##*.}; install -m 644 $$m $(DESTDIR)$(PREFIX)/share/man/man$$s/; done
	for f in $(INSTALLKIT); do if [ -x $$f ]; then m=755; else m=644; fi; \
	  install -D -m $$m $$f $(DESTDIR)$(PREFIX)/share/yubin/$$f || exit 1; done
	DESTDIR='$(DESTDIR)' PREFIX='$(PREFIX)' ROOT='$(ROOT)' YUBIN_ROOT='$(YUBIN_ROOT)' \
	  SCANDIR='$(SCANDIR)' QMAIL_COMPAT='$(QMAIL_COMPAT)' sh package/install

asan:
	$(MAKE) B=build/asan SAN=1 all unit

run:
	sh package/deps
	$(MAKE) all
	sh package/run

test:
	sh package/deps
	$(MAKE) all unit
	$(MAKE) asan
	sh tests/run

bench:
	sh package/deps
	$(MAKE) all
	sh bench/run

soak:
	sh package/deps
	$(MAKE) all
	sh tests/run --soak


clean:
	rm -rf build
