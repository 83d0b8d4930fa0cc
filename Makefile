# Thin wrapper over CMake. The README's two commands: `make run` and `make test`.
BUILD ?= build
TYPE ?= Debug
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build run test test-asan bench format clean

all: build

deps:
	@scripts/deps.sh build

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(TYPE) $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/switchboard serve

# Every test: unit, integration, end-to-end, under the ASan+UBSan build too.
test:
	@scripts/deps.sh test
	@scripts/test.sh

bench:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory build BUILD=build-release TYPE=Release
	@bench/run.sh build-release

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-release build-asan
