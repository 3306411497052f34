# infergate: the two commands a newcomer needs are `make demo` and `make test`.
BUILD ?= build
JOBS ?= $(shell nproc)

.PHONY: all build deps test unit integration demo bench fuzz clean format

all: build

deps:
	@bash scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test:
	@bash scripts/test.sh all

unit:
	@bash scripts/test.sh unit

integration:
	@bash scripts/test.sh integration

demo: build
	@bash scripts/demo.sh

bench:
	@bash scripts/deps.sh bench
	@bash bench/proxy-overhead.sh

fuzz:
	@bash scripts/test.sh fuzz

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-*
