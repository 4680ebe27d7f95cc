package schemacheck

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestCheckAcceptsValidManifests(t *testing.T) {
	tests := []struct {
		file  string
		kinds []string
	}{
		{"valid.yaml", []string{"Namespace", "ServiceAccount", "ConfigMap", "Deployment", "Service", "NetworkPolicy", "PodDisruptionBudget", "ServiceMonitor", "PrometheusRule"}},
		{"minimal-valid.yaml", []string{"Deployment"}},
		{"valid-backplane.yaml", []string{"Deployment", "PodDisruptionBudget", "StatefulSet", "Service", "NetworkPolicy"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			objs, err := Check(readTestdata(t, tt.file))
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			var kinds []string
			for _, o := range objs {
				kinds = append(kinds, o.Obj.GetObjectKind().GroupVersionKind().Kind)
			}
			if !slices.Equal(kinds, tt.kinds) {
				t.Errorf("decoded kinds %v, want %v", kinds, tt.kinds)
			}
		})
	}
}

// Each broken file is minimal-valid.yaml (or valid.yaml's or
// valid-backplane.yaml's objects) with one mistake; the check must report
// exactly that mistake and nothing else.
func TestCheckRejectsBrokenManifests(t *testing.T) {
	tests := []struct {
		file string
		want string
	}{
		{"broken-misspelt-field.yaml", `unknown field "spec.template.spec.containers[0].ports[0].contianerPort"`},
		{"broken-wrong-case.yaml", `unknown field "spec.template.spec.containers[0].ports[0].ContainerPort"`},
		{"broken-wrong-type.yaml", `cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32`},
		{"broken-unknown-kind.yaml", `no kind "Deploymnet" is registered for version "apps/v1"`},
		{"broken-duplicate-field.yaml", `key "replicas" already set in map`},
		{"broken-servicemonitor-field.yaml", `unknown field "spec.endpoints[0].intervall"`},
		{"broken-prometheusrule-field.yaml", `unknown field "spec.groups[0].rules[0].annotation"`},
		{"broken-invalid-label.yaml", `metadata.labels: Invalid value: "pub sub"`},
		{"broken-selector-mismatch.yaml", `selector does not match the pod template's labels`},
		{"broken-not-restricted.yaml", `violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false`},
		{"broken-probe-port.yaml", `livenessProbe.port: Not found: "htp"`},
		{"broken-dangling-targetport.yaml", `Service/demo: targetPort "htp" is not a container port of Deployment/demo`},
		{"broken-statefulset-service.yaml", `StatefulSet/demo-redis: serviceName "demo-redis": the governing Service must be headless`},
		{"broken-replicas-memory-broker.yaml", `Deployment/demo: container demo: 2 replicas on the in-memory broker (PUBSUB_BROKER unset)`},
		{"broken-pdb-min-available.yaml", `Deployment/demo: PodDisruptionBudget/demo sets minAvailable 2 for 3 replicas: use maxUnavailable`},
		{"broken-redis-eviction.yaml", `StatefulSet/demo-redis: container redis: maxmemory-policy "allkeys-lru": pubsub needs noeviction`},
		{"broken-redis-no-aof.yaml", `StatefulSet/demo-redis: container redis: appendonly "no": pubsub needs AOF`},
		{"broken-redis-maxmemory.yaml", `StatefulSet/demo-redis: container redis: maxmemory 512mb is above 3/4 of the memory limit 600Mi`},
	}
	files, err := filepath.Glob("testdata/broken-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(tests) {
		t.Errorf("testdata has %d broken-*.yaml files, the table covers %d: add the new file to the table", len(files), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := Check(readTestdata(t, tt.file))
			if err == nil {
				t.Fatal("Check passed a broken manifest")
			}
			var joined interface{ Unwrap() []error }
			if errors.As(err, &joined) && len(joined.Unwrap()) != 1 {
				t.Errorf("want exactly one problem, got %d:\n%v", len(joined.Unwrap()), err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error does not mention %q:\n%v", tt.want, err)
			}
		})
	}
}

func TestCheckRejectsEmptyStream(t *testing.T) {
	if _, err := Check([]byte("# nothing but a comment\n---\n")); err == nil {
		t.Fatal("Check accepted a stream with no objects")
	}
}

func TestSplit(t *testing.T) {
	stream := "---\n# leading separator and a comment-only document\n---\na: 1\n---\nb: 2\n...\n---\n\n"
	docs, err := Split([]byte(stream))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 {
		t.Fatalf("got %d documents %q, want 2", len(docs), docs)
	}
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
