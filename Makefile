# promptvault — build, test, benchmark and demo targets.
GO       ?= go
BIN      ?= bin/promptvault
PKGS     := ./...

.PHONY: all build test vet fmt-check bench bench-index demo clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/promptvault

# test: formatting, vet, then every test (real git repos, SQLite files, HTTP servers).
test: fmt-check vet
	$(GO) test -count=1 $(PKGS)

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# bench: Go benchmarks (each with its baseline in the same run), then
# pvbench: indexing vs git log on a generated repository (PV_BENCH_PROMPTS x
# PV_BENCH_COMMITS, default 2000 x 40000; generated once into $TMPDIR/pv-bench)
# and serve vs a bare net/http server under wrk (needs wrk: apt-get install wrk).
bench: build
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)
	$(GO) run ./cmd/pvbench index -bin $(BIN)
	$(GO) run ./cmd/pvbench http -bin $(BIN)

demo: build
	$(BIN) demo

clean:
	rm -rf bin
