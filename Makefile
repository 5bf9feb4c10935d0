# koi — see README.md. `make run` builds and starts a server on config.hcl;
# `make test` runs every test (CI runs it with CI=true).
GO      ?= go
BIN     := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# The Go modules in this repository: koi, the SDK a plugin requires
# (github.com/koi-im/koi/sdk) and the third-party plugin example. `go vet
# ./...` and `go test ./...` stop at a module's boundary, so vet and test
# visit each.
MODULES := . sdk examples/plugins/htpasswd-auth

.PHONY: all build run test test-deps vet unit fuzz proto clean bench bench-archive ferretdb versitygw webchat

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/koi ./core/cmd/koi
	$(GO) build -o $(BIN)/koictl ./core/cmd/koictl
	$(GO) build -o $(BIN)/plugins/koi-backend-sql ./plugins/sql/cmd/koi-backend-sql
	$(GO) build -o $(BIN)/plugins/koi-backend-ldap ./plugins/ldap/cmd/koi-backend-ldap
	$(GO) build -o $(BIN)/plugins/koi-backend-mongo ./plugins/mongo/cmd/koi-backend-mongo
	$(GO) build -o $(BIN)/plugins/koi-backend-extauth ./plugins/extauth/cmd/koi-backend-extauth
	$(GO) build -o $(BIN)/plugins/koi-backend-http ./plugins/http/cmd/koi-backend-http
	$(GO) build -o $(BIN)/koi-bench ./tools/koi-bench
	$(GO) build -o $(BIN)/rest-backend ./examples/rest-backend

run: build
	$(BIN)/koi -config config.hcl

# Converse.js in the browser against a running koi (make run) with a
# websocket listener on 127.0.0.1:5280 that allows the origin 127.0.0.1:8080
# (see examples/webchat/README.md); open http://127.0.0.1:8080/.
WEBCHAT_WS ?= ws://127.0.0.1:5280/xmpp-websocket
webchat:
	cd examples/webchat && { [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund --ignore-scripts; }
	cd examples/webchat && $(GO) run . -listen 127.0.0.1:8080 -websocket $(WEBCHAT_WS) -domain localhost

vet:
	@rc=0; for m in $(MODULES); do echo "go vet ($$m)"; (cd $$m && $(GO) vet ./...) || rc=1; done; exit $$rc

# Unit, end-to-end, and fuzz seed-corpus tests of every module; a failing
# module does not stop the others. The end-to-end tests build and start the
# real binaries themselves.
# Test artefacts (the web chat test's screenshots) are kept under
# $(ARTIFACTS)/_artifacts; go test prints each test's directory.
ARTIFACTS ?= $(CURDIR)/bin/test-artifacts
test: build vet test-deps
	@mkdir -p $(ARTIFACTS); rc=0; for m in $(MODULES); do echo "go test ($$m)"; (cd $$m && $(GO) test -count=1 -timeout 15m -artifacts -outputdir $(ARTIFACTS) ./...) || rc=1; done; \
	$(MAKE) --no-print-directory fuzz FUZZTIME=$(TEST_FUZZTIME) FUZZFLAGS=-parallel=1 || rc=1; exit $$rc

# A fuzzing session per target (FUZZTIME=10m make fuzz for a long one);
# make test runs each for TEST_FUZZTIME on one worker, so that a crasher
# the seeds miss still has a chance to show up in every CI run. A crasher
# is written to the package's testdata/fuzz and fails the run. make test
# counts inputs, not seconds: Go 1.26's coordinator can report a bare
# "context deadline exceeded" when a -fuzztime duration ends while a
# worker is busy (go.dev/issue/75804, fixed in Go 1.27).
FUZZTIME ?= 10s
TEST_FUZZTIME ?= 10000x
FUZZFLAGS ?=
fuzz:
	$(GO) test ./core/xmlstream -run '^$$' -fuzz '^FuzzReader$$' -fuzztime $(FUZZTIME) $(FUZZFLAGS)
	$(GO) test ./core/xmlstream -run '^$$' -fuzz '^FuzzAgainstEncodingXML$$' -fuzztime $(FUZZTIME) $(FUZZFLAGS)
	$(GO) test ./core/xmlstream -run '^$$' -fuzz '^FuzzAppendEscaped$$' -fuzztime $(FUZZTIME) $(FUZZFLAGS)
	$(GO) test ./core/websocket -run '^$$' -fuzz '^FuzzTranslateInAgainstEncodingXML$$' -fuzztime $(FUZZTIME) $(FUZZFLAGS)
	$(GO) test ./core/jid -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) $(FUZZFLAGS)
	$(GO) test ./core/sasl -run '^$$' -fuzz '^FuzzStep$$' -fuzztime $(FUZZTIME) $(FUZZFLAGS)
	$(GO) test ./core/config -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) $(FUZZFLAGS)
	$(GO) test ./core/archive -run '^$$' -fuzz '^FuzzDecodeRecord$$' -fuzztime $(FUZZTIME) $(FUZZFLAGS)

# The standard benchmark suite against a koi on a temporary data dir (a few
# minutes; not part of test). BENCH_PROFILE=1 also saves server profiles.
bench: build
	scripts/bench.sh

# Message throughput between online pairs with the archive off, on SQLite,
# through the http plugin (examples/rest-backend) and on MongoDB
# (FerretDB), with koi-bench (a few minutes; not in test).
bench-archive: build
	scripts/bench-archive.sh

# Builds FerretDB into .cache/ferretdb for the MongoDB tests ahead of time;
# the tests otherwise build it on first use (about a minute, once).
ferretdb:
	scripts/ferretdb.sh

# Builds versitygw (an S3 server) into .cache/versitygw for the upload
# service's S3 tests. test builds it first, outside go test's timeout: the
# first build takes minutes; later runs only check the cache.
versitygw:
	@scripts/versitygw.sh >/dev/null

# What the tests need before they run (test does it first): the Debian
# packages they use, installed as root, and FerretDB and versitygw built,
# so that install and build minutes fall outside go test's time limits.
test-deps:
	@scripts/test-deps.sh

# Regenerates the gRPC code of the plugin protocol (committed).
proto:
	sdk/pb/gen.sh

clean:
	rm -rf $(BIN)
