# yubin — top-level build.  See README.md.
#
#   make            build every program and libyubin into $(B)/
#   make install    install into $(DESTDIR)$(PREFIX) (bin, man)
#   make run        install deps, build, start a local instance under s6
#   make test       deps, build (normal + ASan/UBSan), every test
#   make bench      yubin against Postfix, printed as ratios
#
# Programs are found, not listed: every <dir>/yubin-*.c is one program,
# linked with libyubin (common/*.c) and skalibs (static).

B       ?= build
PREFIX  ?= /usr/local
DESTDIR ?=
ROOT    ?= /var/yubin
CC      ?= cc
SAN     ?=

PROGDIRS := smtpd qmgr remote local pop3d imapd banwatch common
PROGSRC  := $(sort $(foreach d,$(PROGDIRS),$(wildcard $(d)/yubin-*.c)))
PROGS    := $(patsubst %.c,$(B)/bin/%,$(notdir $(PROGSRC)))
LIBSRC   := $(sort $(filter-out common/yubin-%.c,$(wildcard common/*.c)))
LIBOBJ   := $(patsubst %.c,$(B)/obj/%.o,$(LIBSRC))
LIB      := $(B)/libyubin.a

WARN     := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
CPPFLAGS += -D_GNU_SOURCE -Icommon -DYUBIN_ROOT_DEFAULT='"$(ROOT)"'
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 $(WARN) -fno-strict-aliasing
ifeq ($(SAN),1)
CFLAGS   += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
endif
# skalibs statically (start-up cost is on the hot path), OpenSSL only where used.
LDLIBS   += -Wl,--as-needed -l:libskarnet.a -lcrypto

.PHONY: all install run test bench soak clean fuzz asan
all: $(PROGS)

$(B)/obj/%.o: %.c $(wildcard common/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(LIB): $(LIBOBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

define PROG_RULE
$(B)/bin/$(notdir $(basename $(1))): $(B)/obj/$(basename $(1)).o $(LIB)
	@mkdir -p $(B)/bin
	$$(CC) $$(LDFLAGS) -o $$@ $$< $(LIB) $$(LDLIBS)
endef
$(foreach s,$(PROGSRC),$(eval $(call PROG_RULE,$(s))))
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
# yubin-tlsd).
# yubin-tlsd stays dynamic so that it gets Debian's OpenSSL security updates.
HOTPATH := yubin-smtpd yubin-queue yubin-local yubin-lspawn yubin-checkpassword
ifneq ($(SAN),1)
$(patsubst %,$(B)/bin/%,$(HOTPATH)): LDFLAGS += -static
endif

MANPAGES := $(sort $(foreach d,$(PROGDIRS),$(wildcard $(d)/*.[1-9])))

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 755 $(PROGS) $(DESTDIR)$(PREFIX)/bin/
	for m in $(MANPAGES); do s=$${m##*.}; install -m 644 $$m $(DESTDIR)$(PREFIX)/share/man/man$$s/; done

asan:
	$(MAKE) B=build/asan SAN=1 all

run:
	sh package/deps
	$(MAKE) all
	sh package/run

test:
	sh package/deps
	$(MAKE) all
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

fuzz:
	sh tests/fuzz/build

clean:
	rm -rf build
