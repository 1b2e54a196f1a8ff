# moat — build, run, test.  `make run` and `make test` are the two entry points.
CC      ?= cc
PKGS    := libssl libcrypto libevent libevent_openssl libevent_pthreads jansson sqlite3 libsodium libcurl liburing
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wno-unused-parameter -Isrc/lib
CFLAGS  += $(EXTRA_CFLAGS)
ifeq ($(WERROR),1)
CFLAGS  += -Werror
endif
ifeq ($(SANITIZE),1)
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -O1
LDFLAGS += -fsanitize=address,undefined
BUILD   ?= build-asan
endif
BUILD   ?= build
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS  += $(PKG_CFLAGS)
LIBS     = $(PKG_LIBS) -lpthread

LIB_SRC    := $(wildcard src/lib/*.c)
# moatd's folders follow its architecture: control/ (writers, API,
# deferred replies), apply/ (the store watch's consumer), data/ (proxy,
# shards), web/ (HTTPS listeners); schema and lifecycle at the top.
MOATD_DIRS := src/moatd src/moatd/control src/moatd/apply src/moatd/data src/moatd/web
MOATD_SRC  := $(foreach d,$(MOATD_DIRS),$(wildcard $(d)/*.c))
ADM_SRC    := $(wildcard src/moatadm/*.c)
UNIT_SRC   := $(wildcard tests/unit/test_*.c)

LIB_OBJ    := $(LIB_SRC:%.c=$(BUILD)/%.o)
MOATD_OBJ  := $(MOATD_SRC:%.c=$(BUILD)/%.o)
ADM_OBJ    := $(ADM_SRC:%.c=$(BUILD)/%.o)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

PY       := /usr/bin/python3
DATA_DIR ?= $(CURDIR)/run
ADDR     ?= 127.0.0.1
API_PORT ?= 9443

.PHONY: all deps run test unit integration clean bench fuzz fuzz-run replay
all: deps-check $(BUILD)/moatd $(BUILD)/moatadm

# Fail early, with the fix, when a -dev package is missing.
deps-check:
	@pkg-config --exists $(PKGS) || { echo "missing build dependencies: run scripts/deps" >&2; exit 1; }

deps:
	scripts/deps

MOATD_INC  := $(addprefix -I,$(MOATD_DIRS))

# The flags a build was made with: a change of flags (WERROR=1,
# SANITIZE=1, CFLAGS=...) rebuilds everything, not only what changed.
FLAGS_STAMP := $(BUILD)/.flags
$(shell mkdir -p $(BUILD); echo '$(CC) $(CFLAGS) $(LDFLAGS)' | cmp -s - $(FLAGS_STAMP) || echo '$(CC) $(CFLAGS) $(LDFLAGS)' > $(FLAGS_STAMP))

$(BUILD)/src/moatd/%.o: src/moatd/%.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(MOATD_INC) -MMD -MP -c -o $@ $<

$(BUILD)/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/libmoat.a: $(LIB_OBJ)
	ar rcs $@ $^

# The UI's files, embedded into moatd (tools/embed.c writes the table).
UI_FILES   := $(sort $(wildcard ui/*.html ui/*.js ui/*.css ui/*.svg ui/*.png ui/*.ico))
$(BUILD)/embed: tools/embed.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -o $@ $<
$(BUILD)/ui_assets.c: $(UI_FILES) $(BUILD)/embed Makefile
	$(BUILD)/embed $(UI_FILES) > $@.tmp && mv $@.tmp $@
$(BUILD)/ui_assets.o: $(BUILD)/ui_assets.c
	$(CC) $(CFLAGS) -Isrc/moatd/web -c -o $@ $<

$(BUILD)/moatd: $(MOATD_OBJ) $(BUILD)/ui_assets.o $(BUILD)/libmoat.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/moatadm: $(ADM_OBJ) $(BUILD)/libmoat.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) -ledit

# A unit test may include a moatd source to see its insides (test_proxy,
# test_shards): -MMD tracks that include too.
$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libmoat.a $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(MOATD_INC) $(LDFLAGS) -MMD -MP -Itests/unit -o $@ $< $(BUILD)/libmoat.a $(LIBS)

# Fuzzing (tests/fuzz): each harness with the objects it exercises.
# `make test` replays every corpus (the inputs found so far, and every
# crash kept) with the project's compiler and flags; `make fuzz` runs
# libFuzzer (Debian's clang) for FUZZ_SECONDS per harness.
FUZZ_NAMES       := x509 cron schema grammar http
FUZZ_OBJ_x509    :=
FUZZ_OBJ_cron    := $(BUILD)/src/moatd/control/cron.o
# (alerts.o reaches much of moatd through the OCSP alerts: link it all.)
FUZZ_OBJ_moatd   := $(filter-out $(BUILD)/src/moatd/main.o,$(MOATD_OBJ)) \
	$(BUILD)/ui_assets.o
FUZZ_OBJ_schema  := $(FUZZ_OBJ_moatd)
FUZZ_OBJ_grammar := $(filter-out $(BUILD)/src/moatadm/main.o,$(ADM_OBJ))
FUZZ_OBJ_http    := $(FUZZ_OBJ_moatd)
FUZZ_INC         := $(MOATD_INC) -Isrc/moatadm
FUZZ_REPLAY      := $(FUZZ_NAMES:%=$(BUILD)/fuzz/replay_%)
FUZZ_SECONDS     ?= 60

define fuzz_rules
$(BUILD)/fuzz/replay_$(1): tests/fuzz/fuzz_$(1).c tests/fuzz/replay.c $(FUZZ_OBJ_$(1)) $(BUILD)/libmoat.a $(FLAGS_STAMP)
	@mkdir -p $$(dir $$@)
	$(CC) $(CFLAGS) $(FUZZ_INC) $(LDFLAGS) -o $$@ tests/fuzz/fuzz_$(1).c tests/fuzz/replay.c $(FUZZ_OBJ_$(1)) $(BUILD)/libmoat.a $(LIBS) -ledit
$(BUILD)/fuzz/fuzz_$(1): tests/fuzz/fuzz_$(1).c $(FUZZ_OBJ_$(1)) $(BUILD)/libmoat.a $(FLAGS_STAMP)
	@mkdir -p $$(dir $$@)
	$(CC) $(CFLAGS) $(FUZZ_INC) -fsanitize=fuzzer,address,undefined -o $$@ tests/fuzz/fuzz_$(1).c $(FUZZ_OBJ_$(1)) $(BUILD)/libmoat.a $(LIBS) -ledit
endef
$(foreach f,$(FUZZ_NAMES),$(eval $(call fuzz_rules,$(f))))

# (The harnesses' own messages, moatadm's usage errors say, go to a log
# that is shown when a replay fails.)
replay: $(FUZZ_REPLAY)
	@for f in $(FUZZ_NAMES); do \
		$(BUILD)/fuzz/replay_$$f tests/fuzz/corpus/$$f \
		    2>$(BUILD)/fuzz/replay_$$f.log || \
		    { cat $(BUILD)/fuzz/replay_$$f.log; exit 1; }; \
	done

fuzz:
	scripts/deps fuzz
	$(MAKE) BUILD=build-fuzz CC=clang \
	    EXTRA_CFLAGS="-fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined" \
	    fuzz-run

fuzz-run: $(FUZZ_NAMES:%=$(BUILD)/fuzz/fuzz_%)
	@mkdir -p tests/fuzz/crashes; for f in $(FUZZ_NAMES); do \
		echo "== fuzz_$$f for $(FUZZ_SECONDS) s"; \
		if ! $(BUILD)/fuzz/fuzz_$$f -max_total_time=$(FUZZ_SECONDS) \
		    -artifact_prefix=tests/fuzz/crashes/$$f- \
		    tests/fuzz/corpus/$$f > $(BUILD)/fuzz/$$f.log 2>&1; then \
			tail -40 $(BUILD)/fuzz/$$f.log; \
			echo "fuzz_$$f found a crash: tests/fuzz/crashes/"; \
			exit 1; \
		fi; \
		grep -E '^Done|cov:' $(BUILD)/fuzz/$$f.log | tail -2; \
	done

unit: all $(UNIT_BIN) replay
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done
	@echo "== $(BUILD)/tests/test_store against etcd"
	@tests/unit/with-etcd $(BUILD)/tests/test_store

# The data path's own tests run again on the other path (moatd's
# --data-path; the default is io_uring): both stay supported.
DATA_PATH_TESTS := test_proxy.py test_proxy_rotation.py test_slow_clients.py \
	test_client_cert_rules.py test_many_connections.py test_policy.py \
	test_hot_swap.py test_data_async.py
# Two test processes (python3-pytest-xdist): every test picks its own
# ports and directories, and the suite takes half the time.
PYTEST_JOBS ?= 2
integration: all
	MOAT_BUILD=$(CURDIR)/$(BUILD) $(PY) -m pytest -q -x -n $(PYTEST_JOBS) \
	    tests/integration
	cd tests/integration && MOAT_BUILD=$(CURDIR)/$(BUILD) \
	    MOAT_DATA_PATH=epoll $(PY) -m pytest -q -x -n $(PYTEST_JOBS) \
	    $(DATA_PATH_TESTS)

test:
	scripts/deps test
	$(MAKE) unit integration

run: deps
	$(MAKE) all
	scripts/run-node $(BUILD) $(DATA_DIR) $(ADDR) $(API_PORT)

bench: deps all
	bench/run

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
