// Package procbench holds the process-level benchmark: it builds the real
// binary and the floor programs in testdata/bench and times warm, cold and
// storm runs against each other. It is a test behind the procbench build tag
// so that `make test` never runs it; `make bench` does:
//
//	go test -tags procbench -run TestProcessBench -v ./internal/procbench
//
// It prints a markdown table and asserts only correctness (one token request
// per storm), never timings: the machines it runs on are shared and noisy.
package procbench
