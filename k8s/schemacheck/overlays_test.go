package schemacheck

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// kustomizations lists the base and every overlay: a new overlay is checked
// without anyone remembering to add it here.
func kustomizations(t *testing.T) map[string]string {
	t.Helper()
	dirs := map[string]string{"base": "../base"}
	found, err := filepath.Glob("../overlays/*/kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		dir := filepath.Dir(f)
		dirs["overlays/"+filepath.Base(dir)] = dir
	}
	for _, want := range []string{"overlays/dev", "overlays/prod"} {
		if dirs[want] == "" {
			t.Fatalf("%s is missing", want)
		}
	}
	return dirs
}

// render runs kubectl kustomize on dir and checks the result strictly.
func render(t *testing.T, dir string) []Object {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stream, err := Render(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := Check(stream)
	if err != nil {
		t.Fatalf("%s does not pass the schema check:\n%v", dir, err)
	}
	return objs
}

// find returns the object of type T called name, failing the test if absent.
func find[T interface {
	*E
	metav1.Object
}, E any](t *testing.T, objs []Object, name string) T {
	t.Helper()
	for _, o := range objs {
		if v, ok := o.Obj.(T); ok && v.GetName() == name {
			return v
		}
	}
	var zero E
	t.Fatalf("no %T named %q in the rendered objects", &zero, name)
	return nil
}

func count[T any](objs []Object) int {
	n := 0
	for _, o := range objs {
		if _, ok := o.Obj.(T); ok {
			n++
		}
	}
	return n
}

// TestKustomizationsRender renders every kustomization and holds the
// objects every environment shares to what the service needs.
func TestKustomizationsRender(t *testing.T) {
	for name, dir := range kustomizations(t) {
		t.Run(name, func(t *testing.T) {
			objs := render(t, dir)
			checkLabels(t, objs)
			checkPubsubPod(t, objs)
			checkPubsubNetworkPolicy(t, objs)
			checkAdminListener(t, objs)
			// Keys and token secrets are created by the operator, never
			// committed: a Secret in a render is one in git.
			if n := count[*corev1.Secret](objs); n != 0 {
				t.Errorf("%d Secrets in the render: secrets must not live in the manifests", n)
			}
			sa := find[*corev1.ServiceAccount](t, objs, "pubsub")
			if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
				t.Error("ServiceAccount pubsub must set automountServiceAccountToken: false")
			}
		})
	}
}

func checkLabels(t *testing.T, objs []Object) {
	t.Helper()
	for _, o := range objs {
		m := o.Obj.(metav1.Object)
		want := []string{"app.kubernetes.io/part-of", "app.kubernetes.io/managed-by"}
		if _, isNS := o.Obj.(*corev1.Namespace); !isNS {
			want = append(want, "app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component")
		}
		for _, l := range want {
			if m.GetLabels()[l] == "" {
				t.Errorf("%s lacks label %s", o, l)
			}
		}
		if d, ok := o.Obj.(*appsv1.Deployment); ok {
			for _, l := range want {
				if d.Spec.Template.Labels[l] == "" {
					t.Errorf("%s pod template lacks label %s", o, l)
				}
			}
		}
	}
}

func checkPubsubPod(t *testing.T, objs []Object) {
	t.Helper()
	d := find[*appsv1.Deployment](t, objs, "pubsub")
	spec := d.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("pubsub pod has %d containers, want 1", len(spec.Containers))
	}
	c := spec.Containers[0]
	if !strings.HasPrefix(c.Image, "ghcr.io/pubsubd/pubsub:") && !strings.HasPrefix(c.Image, "ghcr.io/pubsubd/pubsub@") {
		t.Errorf("image %q: the kustomize images: entry did not apply", c.Image)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["http"] != 8080 || ports["metrics"] != 9464 {
		t.Errorf("container ports %v, want http:8080 and metrics:9464", ports)
	}
	probes := []struct {
		name string
		p    *corev1.Probe
		path string
	}{
		{"startupProbe", c.StartupProbe, "/livez"},
		{"livenessProbe", c.LivenessProbe, "/livez"},
		{"readinessProbe", c.ReadinessProbe, "/readyz"},
	}
	for _, pr := range probes {
		switch {
		case pr.p == nil || pr.p.HTTPGet == nil:
			t.Errorf("%s: want an HTTP GET probe", pr.name)
		case pr.p.HTTPGet.Path != pr.path || pr.p.HTTPGet.Port != intstr.FromString("http"):
			t.Errorf("%s probes %s on %s, want %s on http", pr.name, pr.p.HTTPGet.Path, pr.p.HTTPGet.Port.String(), pr.path)
		}
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("pod must set automountServiceAccountToken: false")
	}
	if spec.ServiceAccountName != "pubsub" {
		t.Errorf("serviceAccountName %q, want pubsub", spec.ServiceAccountName)
	}
	// Service links would inject PUBSUB_PORT=tcp://... for the Service
	// named pubsub, clashing with the service's configuration variable.
	if spec.EnableServiceLinks == nil || *spec.EnableServiceLinks {
		t.Error("pod must set enableServiceLinks: false")
	}
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("container must set readOnlyRootFilesystem: true")
	}

	// The shutdown budget: endpoints drop during the preStop pause, then
	// SIGTERM starts a drain bounded by PUBSUB_DRAIN_TIMEOUT, all inside the
	// grace period, or the kubelet kills the process mid-drain.
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
		t.Fatal("want a preStop sleep action (the image has no shell)")
	}
	preStop := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	drain, err := time.ParseDuration(envValue(t, objs, c, "PUBSUB_DRAIN_TIMEOUT"))
	if err != nil {
		t.Fatalf("PUBSUB_DRAIN_TIMEOUT: %v", err)
	}
	if spec.TerminationGracePeriodSeconds == nil {
		t.Fatal("set terminationGracePeriodSeconds explicitly")
	}
	grace := time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
	if grace <= preStop+drain {
		t.Errorf("terminationGracePeriodSeconds %v must exceed preStop %v + PUBSUB_DRAIN_TIMEOUT %v", grace, preStop, drain)
	}
}

// envValue resolves a variable the container sees: env wins over envFrom.
func envValue(t *testing.T, objs []Object, c corev1.Container, name string) string {
	t.Helper()
	v, ok := lookupEnv(t, objs, c, name)
	if !ok {
		t.Fatalf("container %s does not set %s", c.Name, name)
	}
	return v
}

// lookupEnv is envValue for a variable that may be absent.
func lookupEnv(t *testing.T, objs []Object, c corev1.Container, name string) (string, bool) {
	t.Helper()
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom != nil {
			t.Fatalf("%s comes from %v, not a literal", name, e.ValueFrom)
		}
	}
	env, err := literalEnv(objs, c)
	if err != nil {
		t.Fatalf("container %s: %v", c.Name, err)
	}
	v, ok := env[name]
	return v, ok
}

// checkAdminListener: the service's admin listener defaults to loopback,
// where Prometheus cannot reach it, so the manifests must move it to the
// metrics container port on every interface; and /debug/pprof stays off.
func checkAdminListener(t *testing.T, objs []Object) {
	t.Helper()
	c := find[*appsv1.Deployment](t, objs, "pubsub").Spec.Template.Spec.Containers[0]
	addr := envValue(t, objs, c, "PUBSUB_ADMIN_ADDR")
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("PUBSUB_ADMIN_ADDR %q: %v", addr, err)
	}
	var metrics int32
	for _, p := range c.Ports {
		if p.Name == "metrics" {
			metrics = p.ContainerPort
		}
	}
	if host != "" || port != fmt.Sprint(metrics) {
		t.Errorf("PUBSUB_ADMIN_ADDR=%s, want :%d (every interface, the metrics port Prometheus scrapes)", addr, metrics)
	}
	if v, ok := lookupEnv(t, objs, c, "PUBSUB_PPROF"); ok && v != "false" {
		t.Errorf("PUBSUB_PPROF=%s: profiling is for a port-forward on a developer's request, not on by default", v)
	}
}

func checkPubsubNetworkPolicy(t *testing.T, objs []Object) {
	t.Helper()
	np := find[*networkingv1.NetworkPolicy](t, objs, "pubsub")
	from := map[string][]networkingv1.NetworkPolicyPeer{}
	for _, rule := range np.Spec.Ingress {
		for _, p := range rule.Ports {
			if p.Port != nil {
				from[p.Port.String()] = rule.From
			}
		}
	}
	if peers, ok := from["http"]; !ok || len(peers) != 0 {
		t.Errorf("the http port must be open to every source, got from=%v", peers)
	}
	peers, ok := from["metrics"]
	if !ok || len(peers) == 0 {
		t.Fatal("the metrics port must be limited to the monitoring namespace")
	}
	for _, p := range peers {
		if p.NamespaceSelector == nil || len(p.NamespaceSelector.MatchLabels) == 0 || p.PodSelector != nil || p.IPBlock != nil {
			t.Errorf("metrics port peer %+v: want a namespaceSelector on a label only", p)
		}
	}
}

func TestProdOverlay(t *testing.T) {
	objs := render(t, "../overlays/prod")
	d := find[*appsv1.Deployment](t, objs, "pubsub")
	if d.Namespace != "pubsub" {
		t.Errorf("namespace %q, want pubsub", d.Namespace)
	}
	ru := d.Spec.Strategy.RollingUpdate
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || ru == nil ||
		ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 || ru.MaxSurge == nil || ru.MaxSurge.IntValue() < 1 {
		t.Errorf("strategy %+v: want a rolling update with maxUnavailable 0 and a surge", d.Spec.Strategy)
	}

	// Resources, the Go runtime and the memory bound: TestOverlaysPassReview.
	checkProdAuth(t, objs, d)

	pdb := find[*policyv1.PodDisruptionBudget](t, objs, "pubsub")
	if pdb.Spec.UnhealthyPodEvictionPolicy == nil || *pdb.Spec.UnhealthyPodEvictionPolicy != policyv1.AlwaysAllow {
		t.Error("PodDisruptionBudget: an unready pod must never block a drain (unhealthyPodEvictionPolicy: AlwaysAllow)")
	}

	sm := find[*monitoringv1.ServiceMonitor](t, objs, "pubsub")
	svc := find[*corev1.Service](t, objs, "pubsub")
	// The alert rules select job="pubsub"; the ServiceMonitor takes the job
	// from this Service label.
	if sm.Spec.JobLabel == "" || svc.Labels[sm.Spec.JobLabel] != "pubsub" {
		t.Errorf("ServiceMonitor jobLabel %q gives job=%q, the rules expect pubsub", sm.Spec.JobLabel, svc.Labels[sm.Spec.JobLabel])
	}
	if sm.Spec.ScrapeClassicHistograms == nil || !*sm.Spec.ScrapeClassicHistograms {
		t.Error("ServiceMonitor must keep classic histograms: the latency alert reads _bucket series")
	}
	if n := count[*monitoringv1.PrometheusRule](objs); n != 1 {
		t.Errorf("%d PrometheusRules, want 1", n)
	}
}

func TestDevOverlay(t *testing.T) {
	objs := render(t, "../overlays/dev")
	d := find[*appsv1.Deployment](t, objs, "pubsub")
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		t.Errorf("dev runs %v replicas, want 1", d.Spec.Replicas)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if lvl := envValue(t, objs, c, "PUBSUB_LOG_LEVEL"); lvl != "DEBUG" {
		t.Errorf("PUBSUB_LOG_LEVEL=%s, want DEBUG", lvl)
	}
	ns := find[*corev1.Namespace](t, objs, d.Namespace)
	if ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("namespace %s should enforce the restricted Pod Security profile", ns.Name)
	}

	// The OTLP endpoint must name a Service of this render on a port it
	// exposes, which forwards to the Jaeger pod.
	endpoint := envValue(t, objs, c, "OTEL_EXPORTER_OTLP_ENDPOINT")
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatalf("OTEL_EXPORTER_OTLP_ENDPOINT %q: %v", endpoint, err)
	}
	svc := find[*corev1.Service](t, objs, u.Hostname())
	var exposed bool
	for _, p := range svc.Spec.Ports {
		exposed = exposed || fmt.Sprint(p.Port) == u.Port()
	}
	if !exposed {
		t.Errorf("Service %s does not expose port %s of %s", svc.Name, u.Port(), endpoint)
	}
	if proto := envValue(t, objs, c, "OTEL_EXPORTER_OTLP_PROTOCOL"); (proto == "grpc") != (u.Port() == "4317") {
		t.Errorf("OTLP protocol %s does not match port %s", proto, u.Port())
	}
	// A developer's cluster keeps the in-memory default: no keys to create.
	for _, name := range []string{"PUBSUB_API_KEY", "PUBSUB_API_KEYS_FILE", "PUBSUB_TOKEN_KEY_FILE"} {
		if _, ok := lookupEnv(t, objs, c, name); ok {
			t.Errorf("dev sets %s: authentication stays off in dev", name)
		}
	}
	find[*appsv1.Deployment](t, objs, "jaeger")
	if n := count[*monitoringv1.ServiceMonitor](objs); n != 0 {
		t.Errorf("dev must not need the Prometheus Operator's CRDs, found %d ServiceMonitors", n)
	}
}

// authSecret is the Secret the operator creates for production (README:
// "Kubernetes: the pubsub-auth Secret"), and where the pod mounts it.
const (
	authSecret = "pubsub-auth"
	authDir    = "/etc/pubsub/auth"
)

// checkProdAuth: production runs with authentication on, its files read
// from the operator's Secret, mounted read-only, and the pod does not start
// at all without that Secret (rather than start open to anyone).
func checkProdAuth(t *testing.T, objs []Object, d *appsv1.Deployment) {
	t.Helper()
	spec := d.Spec.Template.Spec
	c := spec.Containers[0]
	var vol *corev1.Volume
	for i := range spec.Volumes {
		if s := spec.Volumes[i].Secret; s != nil && s.SecretName == authSecret {
			vol = &spec.Volumes[i]
		}
	}
	if vol == nil {
		t.Fatalf("no volume of Secret %s", authSecret)
	}
	if o := vol.Secret.Optional; o == nil || *o {
		t.Errorf("Secret %s must be optional: false, so a missing Secret stops the pod instead of starting it unauthenticated", authSecret)
	}
	if m := vol.Secret.DefaultMode; m == nil || *m&0o007 != 0 {
		t.Errorf("Secret %s files must not be world-readable (defaultMode %v)", authSecret, m)
	}
	var mounted bool
	for _, m := range c.VolumeMounts {
		if m.Name == vol.Name {
			mounted = true
			if m.MountPath != authDir || !m.ReadOnly {
				t.Errorf("Secret %s mounted at %s (readOnly %v), want %s read-only", authSecret, m.MountPath, m.ReadOnly, authDir)
			}
		}
	}
	if !mounted {
		t.Fatalf("volume %s is not mounted in container %s", vol.Name, c.Name)
	}
	keys := map[string]string{}
	for _, it := range vol.Secret.Items {
		keys[path.Join(authDir, it.Path)] = it.Key
	}
	for name, key := range map[string]string{"PUBSUB_API_KEYS_FILE": "keys.json", "PUBSUB_TOKEN_KEY_FILE": "token.key"} {
		file := envValue(t, objs, c, name)
		if keys[file] != key {
			t.Errorf("%s=%s, want the Secret's key %s mounted there (mounted: %v)", name, file, key, keys)
		}
	}
	if _, ok := lookupEnv(t, objs, c, "PUBSUB_API_KEY"); ok {
		t.Error("PUBSUB_API_KEY in a manifest is a secret in git: use the Secret's keys.json")
	}
}

// parseBytes reads a byte count the way the service's configuration does:
// a plain number or one with a KiB, MiB or GiB suffix.
func parseBytes(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		n      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = v, u.n
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("not a byte count: %q", s)
	}
	return n * mult, nil
}
