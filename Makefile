# promptvault — build, test, benchmark and demo targets.
GO       ?= go
BIN      ?= bin/promptvault
PKGS     := ./...

.PHONY: all build test vet fmt-check sdk-test sdk-go-test sdk-python-test sdk-typescript-test bench bench-index bench-sdk demo clean vendor-editor fuzz

all: build

build:
	$(GO) build -o $(BIN) ./cmd/promptvault

# test: formatting, vet, then every test (real git repos, SQLite files, HTTP
# servers), including sdk/conformance, which runs the Go, Python and
# TypeScript SDKs against a real serve; then each SDK's own suite.
test: fmt-check vet sdk/typescript/node_modules
	$(GO) test -count=1 -timeout 25m $(PKGS)
	$(MAKE) sdk-test

# fuzz: each native fuzz target for FUZZTIME (their seed corpora, f.Add and
# testdata/fuzz/, already run as ordinary tests in make test). New failing
# inputs land in testdata/fuzz/<target>/; commit them with the fix.
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) .
	$(GO) test -run '^$$' -fuzz '^FuzzTemplate$$' -fuzztime $(FUZZTIME) .
	$(GO) test -run '^$$' -fuzz '^FuzzKey$$' -fuzztime $(FUZZTIME) .
	$(GO) test -run '^$$' -fuzz '^FuzzPayload$$' -fuzztime $(FUZZTIME) ./webhook

vet:
	$(GO) vet $(PKGS)
	cd sdk/go && $(GO) vet ./...

# The SDKs' own suites. sdk/go is its own module, so ./... above skips it.
# Python and Node are optional on a developer machine: a missing one is
# reported and skipped here, as the conformance test skips it; CI has both.
sdk-test: sdk-go-test sdk-python-test sdk-typescript-test

sdk-go-test:
	cd sdk/go && $(GO) test -count=1 ./...

sdk-python-test:
	@if command -v python3 >/dev/null; then \
		cd sdk/python && python3 -X dev -m unittest discover -s tests -v; \
	else echo "SKIP sdk/python: python3 is not installed"; fi

sdk-typescript-test: sdk/typescript/node_modules
	@if command -v node >/dev/null; then \
		cd sdk/typescript && npm test; \
	else echo "SKIP sdk/typescript: node is not installed"; fi

# npm ci installs the pinned TypeScript compiler (a dev dependency; the SDK
# has no runtime dependencies) from package-lock.json.
sdk/typescript/node_modules: sdk/typescript/package-lock.json
	@if command -v npm >/dev/null; then \
		cd sdk/typescript && npm ci --no-audit --no-fund && touch node_modules; \
	else echo "SKIP sdk/typescript: npm is not installed"; fi

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# bench: Go benchmarks (each with its baseline in the same run), then
# pvbench: indexing vs git log on a generated repository (PV_BENCH_PROMPTS x
# PV_BENCH_COMMITS, default 2000 x 40000; generated once into $TMPDIR/pv-bench)
# serve's RSS, idle CPU and CLI-change -> read latency on that repository, and
# serve vs a bare net/http server under wrk (needs wrk: apt-get install wrk).
bench: build
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)
	$(GO) run ./cmd/pvbench index -bin $(BIN)
	$(GO) run ./cmd/pvbench serve -bin $(BIN)
	$(GO) run ./cmd/pvbench http -bin $(BIN)

# bench-sdk: each SDK against a real serve: a cached get (ns/op beside a
# lock-guarded map read in the same language) and promote -> new version in
# get, p50/p99 over 100 promotions beside a bare SSE subscriber.
bench-sdk:
	cd sdk/go && $(GO) test -run '^$$' -bench . -benchmem ./...
	$(GO) test -run '^$$' -bench BenchmarkSDK -benchtime 100x ./sdk/conformance/

# vendor-editor rebuilds the dashboard's editor (CodeMirror 6 + YAML) from the
# pinned package-lock.json into resolver/admin/ui/vendor/editor.js, with the
# bundled packages' licences beside it. The result is committed, so go build
# needs no npm.
vendor-editor:
	cd resolver/admin/editor && npm ci --no-audit --no-fund && npm run build

demo: build
	$(BIN) demo

clean:
	rm -rf bin
