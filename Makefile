# SkyEdge. `make help` lists the targets.

GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
BUILD     := CGO_ENABLED=0 $(GO) build -trimpath -ldflags="$(LDFLAGS)"
BINARIES  := skyedge-agent=./agent/cmd/skyedge-agent cloudcore-bridge=./cloudcore-bridge/cmd/cloudcore-bridge skyedge=./cmd/skyedge

DEMO_DIR  ?= .demo
DEMO_HTTP ?= 127.0.0.1:8080
DEMO_MQTT ?= 127.0.0.1:8883
HELLO_DOCKER_IMAGE := skyedge/hello-docker:1

.PHONY: help build build-arm64 build-armv7 test test-go test-arm demo hello-docker-image proto lint bench clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/skyedge-agent, bin/cloudcore-bridge and bin/skyedge for this machine
	@mkdir -p bin
	@for b in $(BINARIES); do $(BUILD) -o bin/$${b%%=*} $${b#*=} || exit 1; done

build-arm64: ## cross-build the static agent for linux/arm64 into bin/linux-arm64/
	@mkdir -p bin/linux-arm64
	GOOS=linux GOARCH=arm64 $(BUILD) -o bin/linux-arm64/skyedge-agent ./agent/cmd/skyedge-agent

build-armv7: ## cross-build the static agent for linux/arm (GOARM=7) into bin/linux-armv7/
	@mkdir -p bin/linux-armv7
	GOOS=linux GOARCH=arm GOARM=7 $(BUILD) -o bin/linux-armv7/skyedge-agent ./agent/cmd/skyedge-agent

test: test-go test-arm ## vet, then every test, then the agent's tests on arm64 and armv7 under qemu

test-go:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 12m ./...

test-arm: ## the agent's tests cross-compiled for arm64 and armv7, run under qemu-user
	./scripts/qemu-test.sh arm64 ./agent/... ./protocol/... ./sync/...
	./scripts/qemu-test.sh armv7 ./agent/... ./protocol/... ./sync/...

demo: build ## run the bridge, four agents and the example workloads; Ctrl-C deletes the workloads and stops all
	@if docker info >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory hello-docker-image; \
	else \
		echo "demo: Docker is not available (docker info failed): not building $(HELLO_DOCKER_IMAGE);"; \
		echo "demo: the hello-docker workload will report failed, Docker unavailable. The other workloads need no Docker."; \
	fi
	@$(BUILD) -o bin/quickstart ./examples/quickstart
	bin/quickstart -bin bin -dir $(DEMO_DIR) -http $(DEMO_HTTP) -mqtt $(DEMO_MQTT) -examples examples

hello-docker-image: ## build the example image skyedge/hello-docker:1 (a static Go binary FROM scratch) with docker
	@rm -rf bin/hello-docker && mkdir -p bin/hello-docker
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o bin/hello-docker/hello-docker ./examples/workloads/hello-docker
	docker build -q -f examples/workloads/hello-docker/Dockerfile -t $(HELLO_DOCKER_IMAGE) bin/hello-docker

proto: ## regenerate protocol/skyedgev1 from protocol/proto (protoc + pinned protoc-gen-go and vtprotobuf)
	protoc --plugin=protoc-gen-go=$$($(GO) tool -n protoc-gen-go) \
		--plugin=protoc-gen-go-vtproto=$$($(GO) tool -n protoc-gen-go-vtproto) \
		--go_out=. --go_opt=module=github.com/skyedge/skyedge \
		--go-vtproto_out=. --go-vtproto_opt=module=github.com/skyedge/skyedge,features=unmarshal+size \
		-I protocol/proto protocol/proto/skyedge/v1/skyedge.proto

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean: ## remove build outputs (not the demo's data)
	rm -rf bin

bench: build ## run a quick version of every `skyedge bench` scenario; rewrites the results in BENCHMARKS.md
	bin/skyedge bench suite --markdown BENCHMARKS.md

.PHONY: docker-images
docker-images: build ## build the FROM-scratch images skyedge/cloudcore-bridge and skyedge/agent (deploy/*.Dockerfile)
	@rm -rf bin/docker && mkdir -p bin/docker/empty
	cp bin/cloudcore-bridge bin/skyedge-agent bin/docker/
	docker build -q -f deploy/bridge.Dockerfile -t skyedge/cloudcore-bridge:$(VERSION) bin/docker
	docker build -q -f deploy/agent.Dockerfile -t skyedge/agent:$(VERSION) bin/docker
