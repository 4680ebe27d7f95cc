// Package crd holds no code: its import keeps the Prometheus Operator's API types, which
// controller-gen reads to write the CRDs, required by go.mod at the pinned version.
package crd

import _ "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
