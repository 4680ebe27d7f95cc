package schemacheck

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// overlays lists the kustomizations that reach a cluster: every overlay,
// not the base, which leaves limits and the Go runtime to them.
func overlays(t *testing.T) map[string]string {
	t.Helper()
	dirs := kustomizations(t)
	delete(dirs, "base")
	return dirs
}

// TestOverlaysPassReview holds every overlay, dev as much as prod, to the
// reviewer's rules (reviewOverlay).
func TestOverlaysPassReview(t *testing.T) {
	for name, dir := range overlays(t) {
		t.Run(name, func(t *testing.T) {
			objs := render(t, dir)
			for _, err := range reviewOverlay(objs) {
				t.Error(err)
			}
			c := find[*appsv1.Deployment](t, objs, "pubsub").Spec.Template.Spec.Containers[0]
			env, err := literalEnv(objs, c)
			if err != nil {
				t.Fatal(err)
			}
			if worst, err := memoryBound(env); err == nil {
				t.Logf("worst case %.1f MiB; GOMEMLIMIT %s, limit %s", float64(worst)/(1<<20),
					c.Resources.Requests.Memory().String(), c.Resources.Limits.Memory().String())
			}
		})
	}
}

// reviewOverlay applies the rules a reviewer holds every overlay to, beyond
// what the API server enforces, and returns every breach:
//   - every pod states its terminationGracePeriodSeconds (the default is
//     nobody's decision), and every container has CPU and memory requests
//     and limits (an unbounded container takes its node down with it) and a
//     liveness and a readiness probe;
//   - the pubsub container's Go runtime follows its resources: GOMAXPROCS
//     from the CPU limit, GOMEMLIMIT from the memory request, which sits
//     below the memory limit;
//   - the worst case the service's limits allow (memoryBound) fits under
//     GOMEMLIMIT with 10% to spare.
func reviewOverlay(objs []Object) []error {
	var errs []error
	fail := func(o Object, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{o}, args...)...))
	}
	for _, o := range objs {
		d, ok := o.Obj.(*appsv1.Deployment)
		if !ok {
			continue
		}
		spec := d.Spec.Template.Spec
		if spec.TerminationGracePeriodSeconds == nil {
			fail(o, "set terminationGracePeriodSeconds explicitly")
		}
		for _, c := range spec.Containers {
			for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				if _, ok := c.Resources.Requests[res]; !ok {
					fail(o, "container %s has no %s request", c.Name, res)
				}
				if _, ok := c.Resources.Limits[res]; !ok {
					fail(o, "container %s has no %s limit", c.Name, res)
				}
			}
			if c.LivenessProbe == nil {
				fail(o, "container %s has no livenessProbe", c.Name)
			}
			if c.ReadinessProbe == nil {
				fail(o, "container %s has no readinessProbe", c.Name)
			}
		}
		if d.Name != "pubsub" || len(spec.Containers) == 0 {
			continue
		}
		c := spec.Containers[0]
		for _, err := range goRuntimeProblems(c) {
			fail(o, "container %s: %w", c.Name, err)
		}
		env, err := literalEnv(objs, c)
		if err != nil {
			fail(o, "container %s: %w", c.Name, err)
			continue
		}
		worst, err := memoryBound(env)
		if err != nil {
			fail(o, "container %s: %w", c.Name, err)
			continue
		}
		goMemLimit := c.Resources.Requests[corev1.ResourceMemory]
		if float64(worst) > 0.9*float64(goMemLimit.Value()) {
			fail(o, "worst case %.1f MiB is above 90%% of GOMEMLIMIT (%s): lower PUBSUB_MAX_* or raise the memory request and limit",
				float64(worst)/(1<<20), goMemLimit.String())
		}
	}
	return errs
}

// goRuntimeProblems: GOMAXPROCS must come from the CPU limit and GOMEMLIMIT
// from the memory request, in plain units; GOMEMLIMIT is the soft target the
// GC works to stay under, so it must sit below the hard limit at which the
// kernel kills the container.
func goRuntimeProblems(c corev1.Container) []error {
	var errs []error
	memReq, hasReq := c.Resources.Requests[corev1.ResourceMemory]
	memLim, hasLim := c.Resources.Limits[corev1.ResourceMemory]
	if hasReq && hasLim && memReq.Cmp(memLim) >= 0 {
		errs = append(errs, fmt.Errorf("memory request %s must be below the limit %s (GOMEMLIMIT is taken from the request)", memReq.String(), memLim.String()))
	}
	want := map[string]string{"GOMAXPROCS": "limits.cpu", "GOMEMLIMIT": "requests.memory"}
	for _, e := range c.Env {
		res, ok := want[e.Name]
		if !ok {
			continue
		}
		delete(want, e.Name)
		ref := e.ValueFrom
		if ref == nil || ref.ResourceFieldRef == nil || ref.ResourceFieldRef.Resource != res {
			errs = append(errs, fmt.Errorf("%s must come from resourceFieldRef %s, got %+v", e.Name, res, ref))
			continue
		}
		// Divisor 1: whole CPUs for GOMAXPROCS, plain bytes for GOMEMLIMIT.
		if !ref.ResourceFieldRef.Divisor.Equal(resource.MustParse("1")) {
			errs = append(errs, fmt.Errorf("%s divisor %s, want 1", e.Name, ref.ResourceFieldRef.Divisor.String()))
		}
	}
	for _, name := range []string{"GOMAXPROCS", "GOMEMLIMIT"} {
		if _, missed := want[name]; missed {
			errs = append(errs, fmt.Errorf("%s is not set", name))
		}
	}
	return errs
}

// memoryBound recomputes the worst case the service's limits allow (the
// README's formula) from the variables a container sees. Every term must be
// set in the overlay rather than taken from the service's defaults, so the
// bound is checked against what really runs and a default changing in the
// code cannot move it unseen.
func memoryBound(env map[string]string) (int64, error) {
	const (
		kib  = 1 << 10
		mib  = 1 << 20
		base = 30 * mib // runtime, code, telemetry, an idle service
		// Measured: an idle connection holds 8.3 KiB (README, Performance), and a busy one
		// its 16 KiB read and 16 KiB write allowances besides; a topic 1.25 KiB; a
		// subscription about 300 B plus 8 B a queue slot once its queue has grown.
		perConn     = 41 * kib
		perTopic    = 1280
		perSubscrpt = 320
		perSlot     = 8
	)
	var errs []error
	size := func(name string) int64 {
		v, ok := env[name]
		if !ok {
			errs = append(errs, fmt.Errorf("%s is not set: the memory bound must be computed from what runs, not from the service's default", name))
			return 0
		}
		n, err := parseBytes(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%s: %w", name, v, err))
			return 0
		}
		if n == 0 {
			errs = append(errs, fmt.Errorf("%s=0 means no limit: memory would have no bound", name))
		}
		return n
	}
	worst := base + size("PUBSUB_MAX_EVENT_BYTES") + size("PUBSUB_MAX_BUFFER_BYTES") +
		size("PUBSUB_MAX_CONNECTIONS")*(perConn+size("PUBSUB_MAX_REPLY_BYTES")) +
		size("PUBSUB_MAX_TOPICS")*perTopic +
		size("PUBSUB_MAX_SUBSCRIPTIONS")*(perSubscrpt+perSlot*size("PUBSUB_MAX_QUEUE_SIZE"))
	return worst, errors.Join(errs...)
}

// literalEnv resolves the literal variables a container sees, as the
// kubelet does: the ConfigMaps of envFrom in order (a later one wins), then
// env over them. A variable set from a field or resource (valueFrom) is not
// a literal and is left out.
func literalEnv(objs []Object, c corev1.Container) (map[string]string, error) {
	env := map[string]string{}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef == nil {
			continue
		}
		cm := findConfigMap(objs, ef.ConfigMapRef.Name)
		if cm == nil {
			return nil, fmt.Errorf("envFrom ConfigMap %q is not in the render", ef.ConfigMapRef.Name)
		}
		for k, v := range cm.Data {
			env[ef.Prefix+k] = v
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			env[e.Name] = e.Value
		} else {
			delete(env, e.Name)
		}
	}
	return env, nil
}

func findConfigMap(objs []Object, name string) *corev1.ConfigMap {
	for _, o := range objs {
		if cm, ok := o.Obj.(*corev1.ConfigMap); ok && cm.Name == name {
			return cm
		}
	}
	return nil
}

// TestReviewRejects shows each rule failing: the dev overlay as rendered,
// with one thing taken away or changed, must draw a complaint naming it.
// The base, which leaves resources to the overlays, must fail.
func TestReviewRejects(t *testing.T) {
	dev := render(t, "../overlays/dev")
	if errs := reviewOverlay(dev); len(errs) != 0 {
		t.Fatalf("the dev overlay does not pass the review: %v", errs)
	}
	pubsub := func(objs []Object) *corev1.Container {
		return &find[*appsv1.Deployment](t, objs, "pubsub").Spec.Template.Spec.Containers[0]
	}
	jaeger := func(objs []Object) *corev1.PodSpec {
		return &find[*appsv1.Deployment](t, objs, "jaeger").Spec.Template.Spec
	}
	config := func(objs []Object) map[string]string {
		return findConfigMap(objs, pubsub(objs).EnvFrom[0].ConfigMapRef.Name).Data
	}
	tests := []struct {
		name   string
		change func(objs []Object)
		want   string
	}{
		{"pubsub without limits (dev before #14)", func(objs []Object) {
			c := pubsub(objs)
			c.Resources.Limits = nil
			// As then: nothing derived from the limits either.
			c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "GOMAXPROCS" || e.Name == "GOMEMLIMIT" })
		}, "container pubsub has no cpu limit"},
		{"jaeger without a liveness probe", func(objs []Object) { jaeger(objs).Containers[0].LivenessProbe = nil },
			"Deployment/jaeger: container jaeger has no livenessProbe"},
		{"jaeger without a readiness probe", func(objs []Object) { jaeger(objs).Containers[0].ReadinessProbe = nil },
			"Deployment/jaeger: container jaeger has no readinessProbe"},
		{"jaeger with the default grace period", func(objs []Object) { jaeger(objs).TerminationGracePeriodSeconds = nil },
			"Deployment/jaeger: set terminationGracePeriodSeconds explicitly"},
		{"jaeger without a CPU request", func(objs []Object) { delete(jaeger(objs).Containers[0].Resources.Requests, corev1.ResourceCPU) },
			"container jaeger has no cpu request"},
		{"GOMEMLIMIT from the limit", func(objs []Object) {
			c := pubsub(objs)
			for i := range c.Env {
				if c.Env[i].Name == "GOMEMLIMIT" {
					c.Env[i].ValueFrom.ResourceFieldRef.Resource = "limits.memory"
				}
			}
		}, "GOMEMLIMIT must come from resourceFieldRef requests.memory"},
		{"memory request at the limit", func(objs []Object) {
			c := pubsub(objs)
			c.Resources.Requests[corev1.ResourceMemory] = c.Resources.Limits[corev1.ResourceMemory]
		}, "must be below the limit 256Mi"},
		{"ten times the connections", func(objs []Object) { config(objs)["PUBSUB_MAX_CONNECTIONS"] = "10000" },
			"above 90% of GOMEMLIMIT (230Mi)"},
		{"a term left to the service's default", func(objs []Object) { delete(config(objs), "PUBSUB_MAX_TOPICS") },
			"PUBSUB_MAX_TOPICS is not set"},
		{"a term turned off", func(objs []Object) { config(objs)["PUBSUB_MAX_EVENT_BYTES"] = "0" },
			"PUBSUB_MAX_EVENT_BYTES=0 means no limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := make([]Object, len(dev))
			for i, o := range dev {
				objs[i] = Object{Index: o.Index, Obj: o.Obj.DeepCopyObject()}
			}
			tt.change(objs)
			errs := reviewOverlay(objs)
			if len(errs) == 0 {
				t.Fatal("the review passed")
			}
			var found bool
			for _, err := range errs {
				found = found || strings.Contains(err.Error(), tt.want)
			}
			if !found {
				t.Errorf("no complaint mentions %q: %v", tt.want, errs)
			}
		})
	}

	if errs := reviewOverlay(render(t, "../base")); len(errs) == 0 {
		t.Error("the base, with no limits, passed the review")
	}
}
