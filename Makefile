# ponder — build, test, install.  See README.md and DESIGN.md.
#   make            build ./ponder
#   make check      every test (PONDER_TESTDATA, default ../shared/testdata)
#   make asan       the tests under AddressSanitizer + UBSan
#   make deps       install the Debian packages the build and tests need
#   make bench      benchmark models of the R1-Distill-Qwen-1.5B shape
#   make run        build and start the chat
#   make demo-model train share/models/ponder-demo.gguf again (needs python3-torch)

CC      ?= cc
PREFIX  ?= /usr/local
BUILD   ?= build
PONDER_TESTDATA ?= ../shared/testdata
export PONDER_TESTDATA

# POSIX 2008 + the ncursesw wide-char API
CFLAGS  ?= -O2 -g
override CFLAGS += -std=c11 -D_XOPEN_SOURCE=700 -D_DEFAULT_SOURCE -Wall -Wextra -Wpedantic \
           -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wvla \
           -pthread -MMD -MP -I.
ifeq ($(CI),true)
override CFLAGS += -Werror
endif
ifdef SAN
override CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif
LDLIBS  += -lncursesw -lreadline -lsqlite3 -lvulkan -lutf8proc -ljansson -lmicrohttpd -lcurl -lm -pthread

DEPS_DEB = build-essential pkg-config libncurses-dev libreadline-dev libsqlite3-dev \
           libvulkan-dev glslc mesa-vulkan-drivers vulkan-validationlayers \
           libcmocka-dev tmux libutf8proc-dev libjansson-dev libmicrohttpd-dev \
           libcurl4-openssl-dev

INFER_SRC   := $(wildcard infer/*.c infer/arch/*.c infer/cpu/*.c infer/vulkan/*.c)
HISTORY_SRC := $(wildcard history/*.c)
UI_SRC      := $(wildcard ui/*.c)
APP_SRC     := $(filter-out app/main.c,$(wildcard app/*.c))
LIB_SRC     := $(INFER_SRC) $(HISTORY_SRC) $(UI_SRC) $(APP_SRC)
LIB_OBJ     := $(LIB_SRC:%.c=$(BUILD)/%.o)
FX_SRC      := $(wildcard tests/fx_*.c)
FX_OBJ      := $(FX_SRC:%.c=$(BUILD)/%.o)
TEST_SRC    := $(wildcard tests/test_*.c)
TEST_BIN    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TOOL_SRC    := $(wildcard tools/*.c)
TOOL_BIN    := $(TOOL_SRC:tools/%.c=$(BUILD)/tools/%)

# SIMD kernels get their own instruction sets; cpu_select() picks at run time.
$(BUILD)/infer/cpu/cpu_avx2.o:   override CFLAGS += -mavx2 -mfma -mf16c
$(BUILD)/infer/cpu/cpu_avx512.o: override CFLAGS += -mavx512f -mavx512bw -mavx512vl -mavx512dq \
                                           -mavx512vnni -mavx2 -mfma -mf16c

# a binary built elsewhere (BUILD=/tmp/x) still finds the demo model of this tree
$(BUILD)/app/cli.o: override CFLAGS += -DPONDER_SOURCE_SHARE='"$(CURDIR)/share"'

.PHONY: all check asan deps run bench install clean tests tools demo-model
all: ponder tools

# shader compilation and embedding (glslc), owned by the Vulkan backend
-include shaders/shaders.mk

ponder: $(BUILD)/ponder
	cp $< $@

$(BUILD)/ponder: $(BUILD)/app/main.o $(BUILD)/libponder.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/libponder.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/test_%: $(BUILD)/tests/test_%.o $(FX_OBJ) $(BUILD)/libponder.a
	$(CC) $(LDFLAGS) -o $@ $^ -lcmocka $(LDLIBS)

$(BUILD)/tools/%: $(BUILD)/tools/%.o $(FX_OBJ) $(BUILD)/libponder.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

tests: $(TEST_BIN)
tools: $(TOOL_BIN)

check: $(BUILD)/ponder tests tools
	@PONDER=$(BUILD)/ponder BUILD=$(BUILD) sh tests/run.sh $(TEST_BIN)

asan:
	$(MAKE) BUILD=build-asan SAN=1 CFLAGS="-O1 -g" check

deps:
	@missing=""; for p in $(DEPS_DEB); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	else echo "all build and test packages are installed"; fi
	@# the API tests use the official openai client from the npm registry
	@if ! command -v npm >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm; fi
	cd tests/node && npm install --no-audit --no-fund --loglevel=error

run: deps ponder
	./ponder

bench: ponder tools
	BUILD=$(BUILD) sh tools/bench.sh

# Trains the demo model again (CI does not: it tests the committed file).
demo-model:
	@/usr/bin/python3 -c 'import torch' 2>/dev/null || { echo "make demo-model needs PyTorch: apt-get install python3-torch libopenblas0-pthread (CI does not train)"; exit 1; }
	/usr/bin/python3 tools/train_demo.py --out share/models --fixtures tests/data

install: ponder
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/ponder/models
	install -m 755 ponder $(DESTDIR)$(PREFIX)/bin/ponder
	if [ -f man/ponder.1 ]; then install -m 644 man/ponder.1 $(DESTDIR)$(PREFIX)/share/man/man1/; fi
	for f in share/models/*.gguf; do [ -f "$$f" ] && install -m 644 "$$f" $(DESTDIR)$(PREFIX)/share/ponder/models/ || true; done

clean:
	rm -rf build build-asan ponder

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
