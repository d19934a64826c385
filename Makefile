# code-interpreter build.
#   make deps   apt-install what is missing (Debian 12, as root)
#   make        build the binaries into build/
#   make run    build and serve on :$(APP_HTTP_PORT) (lighttpd + service, Ctrl-C stops both)
#   make test   unit tests (plain and ASan/UBSan) and end-to-end tests (both backends)
#   make k8s-test  the kubernetes backend against the API server double (tests/k8s)
#   make openapi-test  docs/openapi.json linted, and checked against the live service and GET /docs
#   make clients-test  the npm clients (beeai-framework, bee-agent-framework) against the service (tests/clients)
#   make soak   10,000 mixed requests at concurrency 16 (not part of make test)
#   make bench  latency, throughput and memory against a bare python3
#   make lint   cppcheck and a grep for banned functions
#   make images  the service and executor images (SERVICE_IMAGE, EXECUTOR_IMAGE below)
#               with podman, offline (not part of make test; scripts/images.sh):
#               installs what is missing of Debian's podman, buildah, runc, netavark,
#               iptables and debootstrap, builds a debian:12-slim base once, then both
#               images, then runs image-smoke
#   make image-smoke  the executor image runs print(1) as a pod would; the service
#               image answers health_check (against the API server double)
#   make image-test  the e2e suite and the pool checks with the kubernetes backend,
#               the API server double running each pod as a podman container of
#               EXECUTOR_IMAGE from the pod spec (user, read-only root, no
#               capabilities, no_new_privs, seccomp, emptyDirs as sized tmpfs, cgroup
#               limits, a network only the host reaches); needs make images first
#               (not part of make test; about 4 minutes on a 2-core VM)

BUILD   ?= build
CC      ?= cc
SAN     ?= 0

# the images make images builds (podman's local storage)
SERVICE_IMAGE  ?= localhost/code-interpreter:dev
EXECUTOR_IMAGE ?= localhost/code-interpreter-executor:dev
IMAGES_DIR     ?= $(BUILD)/images

WARN    = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
          -Wformat=2 -Wwrite-strings -Wvla
HARDEN  = -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
CFLAGS  ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -DDATADIR=\"$(CURDIR)\" $(WARN) $(HARDEN) $(CFLAGS) -Icommon -Istorage -Iexecutor -Ifcgi-app \
          $(shell pkg-config --cflags json-c libcurl sqlite3 libcrypto libseccomp libmicrohttpd 2>/dev/null)
ALL_LDFLAGS = -pie -Wl,-z,relro,-z,now $(LDFLAGS)
ifeq ($(SAN),1)
ALL_CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
ALL_LDFLAGS += -fsanitize=address,undefined
endif

LIBS_APP  = -lfcgi $(shell pkg-config --libs json-c libcurl sqlite3 libcrypto 2>/dev/null)
LIBS_EXEC = $(shell pkg-config --libs libseccomp libmicrohttpd json-c libcrypto 2>/dev/null)
LIBS_TEST = $(shell pkg-config --libs check 2>/dev/null) $(LIBS_APP) $(LIBS_EXEC)

COMMON_SRCS  = $(wildcard common/*.c)
STORAGE_SRCS = $(wildcard storage/*.c)
EXEC_SRCS    = $(filter-out executor/main.c executor/warm.c executor/warm_image.c,$(wildcard executor/*.c))
APP_SRCS     = $(filter-out fcgi-app/main.c fcgi-app/health_check.c,$(wildcard fcgi-app/*.c))
TEST_SRCS    = $(wildcard tests/unit/check_*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

BINS  = $(BUILD)/code-interpreter $(BUILD)/executor $(BUILD)/executor-warm $(BUILD)/health_check
TESTS = $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(TEST_SRCS))

.PHONY: all deps run test unit e2e soak bench lint clean compile_commands.json k8s-test docs-ui openapi-test clients-test \
        images image-smoke image-test
all: $(BINS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/libcommon.a: $(call obj,$(COMMON_SRCS))
$(BUILD)/libstorage.a: $(call obj,$(STORAGE_SRCS))
$(BUILD)/libexecutor.a: $(call obj,$(EXEC_SRCS))
$(BUILD)/libapp.a: $(call obj,$(APP_SRCS))
$(BUILD)/%.a:
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/code-interpreter: $(call obj,fcgi-app/main.c) $(BUILD)/libapp.a $(BUILD)/libstorage.a $(BUILD)/libcommon.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS_APP)

$(BUILD)/executor: $(call obj,executor/main.c) $(BUILD)/libexecutor.a $(BUILD)/libcommon.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS_EXEC)

# The zygote's warm interpreter embeds CPython: executor-warm is the only
# program that links libpython, and it links nothing of the executor server's.
PYCONFIG  ?= /usr/bin/python3.11-config
PY_CFLAGS  = $(patsubst -I%,-isystem %,$(filter -I%,$(shell $(PYCONFIG) --includes 2>/dev/null)))
PY_LIBS    = $(shell $(PYCONFIG) --embed --ldflags 2>/dev/null)

$(BUILD)/obj/executor/warm.o $(BUILD)/obj/executor/warm_image.o: ALL_CFLAGS += $(PY_CFLAGS)

$(BUILD)/executor-warm: $(call obj,executor/warm.c executor/warm_image.c) $(BUILD)/libexecutor.a $(BUILD)/libcommon.a
	$(CC) $(ALL_LDFLAGS) -Wl,--as-needed -o $@ $^ $(shell pkg-config --libs libseccomp json-c 2>/dev/null) $(PY_LIBS)

$(BUILD)/health_check: $(call obj,fcgi-app/health_check.c) $(BUILD)/libcommon.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(shell pkg-config --libs libcurl json-c)

$(BUILD)/tests/%: $(call obj,tests/unit/%.c) $(BUILD)/libapp.a $(BUILD)/libstorage.a $(BUILD)/libexecutor.a $(BUILD)/libcommon.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS_TEST)

# GET /openapi.json: fcgi-app/openapi.c builds docs/openapi.json into the binary.
$(BUILD)/obj/fcgi-app/openapi.o: docs/openapi.json
$(BUILD)/obj/fcgi-app/openapi.o: ALL_CFLAGS += -DOPENAPI_JSON=\"$(CURDIR)/docs/openapi.json\"

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

deps:
	@./scripts/deps.sh

run: deps all docs-ui
	exec ./$(BUILD)/code-interpreter

unit: all $(TESTS)
	@./tests/unit/run.sh $(BUILD)

e2e: all docs-ui
	@/usr/bin/python3 tests/e2e/run.py --build $(BUILD)

# Not a test: figures against a bare python3 (see bench/bench.py).
bench: deps all
	@./scripts/deps.sh --bench
	@/usr/bin/python3 bench/bench.py --build $(BUILD)

# not part of `make test`: 10,000 mixed requests, fds/RSS/storage checks
soak: all
	@/usr/bin/python3 tests/soak.py --build $(BUILD)

# The e2e suite with APP_EXECUTOR_BACKEND=kubernetes, then the pool behaviour
# tests; both against tests/k8s/apiserver.py. npm brings kubernetes-models for
# the schema checks (they skip without it).
k8s-test: all docs-ui
	@if command -v npm >/dev/null && [ ! -d tests/k8s/node_modules/kubernetes-models ]; then \
	  (cd tests/k8s && npm ci --no-audit --no-fund --silent) || echo "k8s-test: npm ci failed; schema checks will skip"; fi
	@/usr/bin/python3 tests/e2e/run.py --build $(BUILD) --backend kubernetes -q
	@/usr/bin/python3 tests/k8s/test_pool.py --build $(BUILD)

# GET /docs is Swagger UI, static files that lighttpd serves from docs/ui/:
# index.html and npm's swagger-ui-dist (docs/ui/package-lock.json). Without
# npm /docs does not render; nothing else needs it. --ignore-scripts: the
# install script of its dependency @scarf/scarf only reports the install.
NPM_CI = npm ci --ignore-scripts --no-audit --no-fund --silent
SWAGGER_UI = docs/ui/node_modules/swagger-ui-dist/swagger-ui-bundle.js
docs-ui:
	@[ -f $(SWAGGER_UI) ] || { command -v npm >/dev/null && (cd docs/ui && $(NPM_CI)); } || \
	  echo "docs-ui: npm ci in docs/ui failed or npm is missing; GET /docs will not render"

# docs/openapi.json linted by Redocly CLI (tests/openapi), then compared with
# what the live service answers, and GET /docs rendered by headless Chromium
# (tests/e2e/test_p13_openapi.py). Needs npm; takes seconds.
openapi-test: all
	@command -v npm >/dev/null || { echo "openapi-test: npm (Node.js) is needed"; exit 1; }
	@[ -d tests/openapi/node_modules/@redocly/cli ] || (cd tests/openapi && $(NPM_CI))
	@[ -f $(SWAGGER_UI) ] || (cd docs/ui && $(NPM_CI))
	@cd tests/openapi && REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
	  ./node_modules/.bin/redocly lint --config redocly.yaml ../../docs/openapi.json
	@/usr/bin/python3 tests/e2e/run.py --build $(BUILD) -k p13 -q

# beeai-framework's PythonTool (LocalPythonStorage shared through
# APP_FILE_STORAGE_GROUP, by a user that is not root; and an HTTP storage over
# /v1/files), callCodeInterpreter and CustomTool, and bee-agent-framework's,
# driven by node:test with no LLM. npm ci brings them (tests/clients/package-lock.json);
# skips only when npm or its registry cannot be reached.
clients-test: all
	@/usr/bin/python3 tests/clients/harness.py --build $(BUILD)

test: deps
	$(MAKE) BUILD=build all
	$(MAKE) BUILD=build unit
	$(MAKE) BUILD=build-asan SAN=1 unit
	$(MAKE) BUILD=build openapi-test
	$(MAKE) BUILD=build e2e
	$(MAKE) BUILD=build k8s-test
	$(MAKE) BUILD=build clients-test

# podman's settings for this host, the debootstrap log and the build logs go
# to $(IMAGES_DIR); nothing under /etc changes. Times of each step are printed.
IMAGES_ENV = SERVICE_IMAGE=$(SERVICE_IMAGE) EXECUTOR_IMAGE=$(EXECUTOR_IMAGE) IMAGES_DIR=$(IMAGES_DIR)
images:
	@$(IMAGES_ENV) ./scripts/images.sh base build smoke

image-smoke:
	@$(IMAGES_ENV) ./scripts/images.sh smoke

# the service from $(BUILD) on the host, its pods from $(EXECUTOR_IMAGE)
image-test: all docs-ui
	@$(IMAGES_ENV) BUILD=$(BUILD) ./scripts/images.sh test

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --std=c11 \
	  -Icommon -Istorage -Iexecutor -Ifcgi-app --suppress=missingIncludeSystem \
	  --suppress=varFuncNullUB \
	  common storage executor fcgi-app
	@! grep -nE '\b(sprintf|strcat|strncpy|strtok|atoi|gets)\s*\(' \
	  common/*.c storage/*.c executor/*.c fcgi-app/*.c || \
	  { echo "banned function used"; exit 1; }

compile_commands.json:
	$(MAKE) clean && bear -- $(MAKE) all

clean:
	rm -rf build build-asan
