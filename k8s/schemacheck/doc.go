// Package schemacheck checks the Kubernetes manifests under k8s/ before
// anything reaches a cluster: it renders each kustomization with
// `kubectl kustomize`, decodes every object strictly into its typed Go API
// struct (an unknown or duplicated field, a wrong type or an unknown kind is
// an error, as it would be for `kubectl apply --validate=strict`), runs the
// cheap parts of the API server's validation (names, labels, selectors, port
// and variable names), holds every pod template to the restricted Pod
// Security profile, and checks that the objects refer to each other
// correctly (a Service's target port exists in the pods it selects, a
// ConfigMap named by envFrom is in the same render, and so on). Its tests
// also hold every overlay to the reviewer's rules (review_test.go): limits,
// probes, grace periods, the Go runtime and the memory bound.
//
// It also generates the Prometheus Operator's PrometheusRule from the plain
// Prometheus rules file, which stays the one source of the alert rules.
//
// It is its own Go module so that the service's go.mod does not carry the
// Kubernetes API types.
package schemacheck

//go:generate go run ./cmd/promrule -in ../monitoring/pubsub-rules.yaml -out ../monitoring/prometheusrule.yaml
