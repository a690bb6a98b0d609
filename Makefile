# ehub — build, run and test. `make help` lists the targets.
CC      ?= cc
PKGS    := libuv jansson openssl sqlite3 libpq libsodium libcurl hiredis
# OPT is what a caller may change (make OPT=-O0); the rest is required.
OPT     ?= -O2 -g
override CFLAGS := $(OPT) $(CFLAGS) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter \
           -Isrc -Ibuild/gen $(shell pkg-config --cflags $(PKGS))
LDLIBS  := $(shell pkg-config --libs $(PKGS)) -lhttp_parser -lwslay -lxgboost -lm -lpthread

B       ?= build
SRC     := $(shell find src -name '*.c' ! -name main.c | sort)
OBJ     := $(SRC:%.c=$(B)/obj/%.o) $(B)/obj/gen/sqlite_migrations.o $(B)/obj/gen/postgres_migrations.o \
           $(B)/obj/gen/coach_data.o $(B)/obj/gen/web_dist.o
UNIT    := $(patsubst tests/unit/%.c,$(B)/tests/%,$(wildcard tests/unit/test_*.c))

ASAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined

.PHONY: all build run test test-unit test-asan asan fuzz bench bench-ws clean deps help web
all build: $(B)/ehub $(UNIT) web/dist/index.html

# The dashboard (web/): npm ci when node_modules is missing or the lock
# changed, then esbuild (web/build.mjs) into web/dist, which ehub serves.
# A registry mirror that lacks some other platform's optional packages
# (rollup's, for vitest) makes npm ci refuse the lock: npm install, which
# keeps the locked versions, is the fallback.
WEB_SRC := $(shell find web/src -type f 2>/dev/null) web/index.html web/favicon.svg web/build.mjs
web: web/dist/index.html
web/node_modules/.installed: web/package.json web/package-lock.json
	cd web && (npm ci --no-audit --no-fund --loglevel=error 2>/dev/null || npm install --no-audit --no-fund --loglevel=error)
	@touch $@
web/dist/index.html: web/node_modules/.installed $(WEB_SRC)
	cd web && node build.mjs

help:
	@echo "make run        install deps, build, start ehub --demo on :8080"
	@echo "make test       install deps, build, run every test suite (unit, e2e SQLite, e2e PostgreSQL+Redis, ASan)"
	@echo "make asan       sanitizer build in build/asan"
	@echo "make fuzz       build and run the libFuzzer targets for a bounded time"
	@echo "make bench      run the benchmarks under bench/"
	@echo "make bench-ws   WebSocket fan-out, ehub next to the FastAPI peer (bench/ws_fanout.sh)"

deps:
	@scripts/deps.sh

$(B)/tools/ws_fanout: bench/ws_fanout.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $<

# In-process cost of a built-in model's scoring and drift binning per row
# (bench/rescore_bench.c): `make build/tools/rescore_bench`.
$(B)/tools/rescore_bench: bench/rescore_bench.c $(B)/libehub.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(B)/libehub.a $(LDLIBS)

# What the log module's PII redaction costs per line (bench/log_bench.c):
# `make build/tools/log_bench`.
$(B)/tools/log_bench: bench/log_bench.c $(B)/libehub.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(B)/libehub.a $(LDLIBS)

# Ed25519 verification, libsodium against auth/ed25519 (and OpenSSL), on
# ~1 KB webhook bodies (bench/sig_bench.c): `make build/tools/sig_bench`.
$(B)/tools/sig_bench: bench/sig_bench.c $(B)/libehub.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(B)/libehub.a $(LDLIBS)

$(B)/tools/embed: tools/embed.c
	@mkdir -p $(dir $@)
	$(CC) -O1 -o $@ $<

build/gen/%_migrations.c: $(B)/tools/embed $(wildcard src/store/migrations/*/*.sql)
	@mkdir -p $(dir $@)
	$(B)/tools/embed $@ $* $(sort $(wildcard src/store/migrations/$*/*.sql))

# The coaching lexicon, cues and default playbook (src/coach/data) are compiled in.
$(B)/tools/embed_data: tools/embed_data.c
	@mkdir -p $(dir $@)
	$(CC) -O1 -o $@ $<

build/gen/coach_data.c: $(B)/tools/embed_data $(wildcard src/coach/data/*)
	@mkdir -p $(dir $@)
	$(B)/tools/embed_data $@ coach_data src/coach/data/lexicon.tsv src/coach/data/cues.tsv src/coach/data/playbook.json

# The dashboard (web/dist) is compiled in too, served when --web-dir is not
# given. The generator runs on every build and rewrites its output only when
# web/dist changed (files added or removed included), so nothing recompiles
# otherwise. `make WEB_EMBED=` builds a binary that carries no dashboard.
WEB_EMBED ?= web/dist
$(B)/tools/embed_web: tools/embed_web.c
	@mkdir -p $(dir $@)
	$(CC) -O1 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -o $@ $<

# Under $(B), not build/gen: a build with another WEB_EMBED (B=build/noweb
# WEB_EMBED=) must not rewrite the copy another build compiles.
$(B)/gen/web_dist.c: $(B)/tools/embed_web $(if $(WEB_EMBED),$(WEB_EMBED)/index.html) FORCE
	@mkdir -p $(dir $@)
	@$(B)/tools/embed_web $@ $(WEB_EMBED)

$(B)/obj/gen/web_dist.o: $(B)/gen/web_dist.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

.PHONY: FORCE
FORCE:

$(B)/obj/gen/%.o: build/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(B)/libehub.a: $(OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/ehub: $(B)/obj/src/main.o $(B)/libehub.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(B)/tests/%: tests/unit/%.c $(B)/libehub.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(B)/libehub.a $(LDLIBS) -lcmocka

asan:
	$(MAKE) B=build/asan OPT="$(ASAN_FLAGS)" all

run: deps build
	$(B)/ehub serve --demo

test: deps
	$(MAKE) all asan
	scripts/test.sh

test-unit: all
	scripts/test.sh unit

fuzz:
	scripts/fuzz.sh

bench: deps build
	scripts/deps.sh --bench
	bench/http.sh

bench-ws: build $(B)/tools/ws_fanout
	bench/ws_fanout.sh

clean:
	rm -rf build web/dist

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)
