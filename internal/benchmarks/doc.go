// Package benchmarks measures the assembled publish path (service, in-memory broker, wire encoder,
// telemetry) in process, without sockets: the cost a publisher pays per subscriber, with telemetry
// off, on with the default sampler, and on with every trace sampled. It holds no production code.
package benchmarks
