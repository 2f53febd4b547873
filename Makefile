# Berth's entry points. `make up` tries Berth locally; `make test` runs every test.
.PHONY: up tools release test check fmt clippy

# Build whatever is missing, then start the local control plane in the foreground.
up: tools release
	./target/release/berth up

# The local control plane and the pinned helm and kustomize, into tools/bin.
tools:
	testenv/build.sh

# The release binary at target/release/berth (copied there when CARGO_TARGET_DIR points elsewhere).
release:
	@echo "==> building berth (release); a first build takes about 7 minutes on 2 cores" >&2
	cargo build --release --locked -p berth
	@out="$${CARGO_TARGET_DIR:-target}/release/berth"; \
	if [ "$$out" != "target/release/berth" ] && [ "$$(realpath $$out)" != "$$(realpath -m target/release/berth)" ]; then \
		mkdir -p target/release && cp "$$out" target/release/berth; fi

# Every test, against one local control plane started for the run.
test:
	scripts/test.sh

check:
	cargo check --workspace --all-targets

fmt:
	cargo fmt --all

clippy:
	cargo clippy --workspace --all-targets -- -D warnings
