package schemacheck

import (
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// backplaneCheck holds the rules that let several pubsub replicas act as
// one service, which the API server cannot know:
//
//   - a pubsub workload with two or more replicas runs PUBSUB_BROKER=redis
//     and names its Redis: with the in-memory broker each replica would be
//     a broker of its own, and a publish on one would never reach a
//     subscriber on another;
//   - such a workload has a PodDisruptionBudget, and every budget over a
//     workload of two or more replicas uses maxUnavailable (at least 1):
//     minAvailable is a count that goes stale when the replicas change,
//     and maxUnavailable: 0 blocks every node drain;
//   - a Redis container runs with maxmemory-policy noeviction (an evicted
//     topic key is a topic silently lost), AOF on with fsync everysec or
//     always (topics and history survive a restart), and a maxmemory below
//     its memory limit with room for the fork of an AOF rewrite.
//
// A pubsub workload is one whose container sets a PUBSUB_* variable, by
// env or by a ConfigMap of the render; a Redis container is one running
// the image redis (any registry, tag or digest).
func backplaneCheck(objs []Object) []error {
	var errs []error
	fail := func(o Object, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{o}, args...)...))
	}
	configMaps := map[string]*corev1.ConfigMap{}
	var pdbs []*policyv1.PodDisruptionBudget
	for _, o := range objs {
		switch v := o.Obj.(type) {
		case *corev1.ConfigMap:
			configMaps[v.Namespace+"/"+v.Name] = v
		case *policyv1.PodDisruptionBudget:
			pdbs = append(pdbs, v)
		}
	}

	for _, w := range workloads(objs) {
		var budgets []*policyv1.PodDisruptionBudget
		for _, b := range pdbs {
			sel, err := metav1.LabelSelectorAsSelector(b.Spec.Selector)
			if err == nil && b.Namespace == w.namespace && sel.Matches(labels.Set(w.template.Labels)) {
				budgets = append(budgets, b)
			}
		}
		if w.replicas >= 2 {
			for _, b := range budgets {
				if b.Spec.MinAvailable != nil {
					fail(w.Object, "PodDisruptionBudget/%s sets minAvailable %s for %d replicas: use maxUnavailable, which stays right when the replica count changes", b.Name, b.Spec.MinAvailable.String(), w.replicas)
				} else if b.Spec.MaxUnavailable != nil && isZero(*b.Spec.MaxUnavailable) {
					fail(w.Object, "PodDisruptionBudget/%s sets maxUnavailable %s: no node holding one of these pods could ever be drained", b.Name, b.Spec.MaxUnavailable.String())
				}
			}
		}
		for _, c := range w.template.Spec.Containers {
			env := containerEnv(c, w.namespace, configMaps)
			if isPubsub(env) && w.replicas >= 2 {
				checkSharedBroker(w, c, env, len(budgets) > 0, fail)
			}
			if isRedisImage(c.Image) {
				for _, msg := range redisSettingProblems(c) {
					fail(w.Object, "container %s: %s", c.Name, msg)
				}
			}
		}
	}
	return errs
}

// envVar is a variable as a container sees it: a literal value, or a
// reference resolved only when the pod starts.
type envVar struct {
	value string
	from  *corev1.EnvVarSource
}

// containerEnv resolves the variables of c that this render can see: env
// entries win over envFrom ConfigMaps, as in the kubelet.
func containerEnv(c corev1.Container, ns string, configMaps map[string]*corev1.ConfigMap) map[string]envVar {
	env := map[string]envVar{}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef == nil {
			continue
		}
		if cm := configMaps[ns+"/"+ef.ConfigMapRef.Name]; cm != nil {
			for k, v := range cm.Data {
				env[ef.Prefix+k] = envVar{value: v}
			}
		}
	}
	for _, e := range c.Env {
		env[e.Name] = envVar{value: e.Value, from: e.ValueFrom}
	}
	return env
}

func isPubsub(env map[string]envVar) bool {
	for name := range env {
		if strings.HasPrefix(name, "PUBSUB_") {
			return true
		}
	}
	return false
}

// checkSharedBroker holds a pubsub container of a workload with two or more
// replicas to the Redis broker, with its address set, and its workload to a
// disruption budget.
func checkSharedBroker(w workload, c corev1.Container, env map[string]envVar, hasBudget bool, fail func(Object, string, ...any)) {
	broker, ok := env["PUBSUB_BROKER"]
	switch {
	case !ok:
		fail(w.Object, "container %s: %d replicas on the in-memory broker (PUBSUB_BROKER unset): each would be a broker of its own; set PUBSUB_BROKER=redis", c.Name, w.replicas)
		return
	case broker.from != nil:
		fail(w.Object, "container %s: PUBSUB_BROKER comes from a reference; %d replicas need the literal redis, which this check can read", c.Name, w.replicas)
		return
	case broker.value != "redis":
		fail(w.Object, "container %s: %d replicas on PUBSUB_BROKER=%s: each would be a broker of its own; set PUBSUB_BROKER=redis", c.Name, w.replicas, broker.value)
		return
	}
	url, hasURL := env["PUBSUB_REDIS_URL"]
	if _, hasSentinel := env["PUBSUB_REDIS_SENTINEL_ADDRS"]; !hasURL && !hasSentinel {
		fail(w.Object, "container %s: PUBSUB_BROKER=redis without PUBSUB_REDIS_URL or PUBSUB_REDIS_SENTINEL_ADDRS", c.Name)
	}
	if hasURL && url.from != nil && url.from.SecretKeyRef != nil && isTrue(url.from.SecretKeyRef.Optional) {
		fail(w.Object, "container %s: PUBSUB_REDIS_URL from an optional Secret: without it the pods would start and exit; make it optional: false so they wait for the Secret", c.Name)
	}
	if !hasBudget {
		fail(w.Object, "%d replicas and no PodDisruptionBudget: a node drain may evict them all at once", w.replicas)
	}
}

func isZero(v intstr.IntOrString) bool {
	if v.Type == intstr.Int {
		return v.IntVal == 0
	}
	return strings.TrimSpace(strings.TrimSuffix(v.StrVal, "%")) == "0"
}

// isRedisImage reports whether image is the redis image of any registry,
// at any tag or digest: docker.io/library/redis:7.4, redis@sha256:...
func isRedisImage(image string) bool {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndex(image, "/"); i >= 0 {
		image = image[i+1:]
	}
	if i := strings.Index(image, ":"); i >= 0 {
		image = image[:i]
	}
	return image == "redis"
}

// redisArgs reads redis-server's command line (command then args) into its
// settings: "--name value ..." pairs, a value being every word up to the
// next "--name". It reports false when the command line names a
// configuration file, whose settings this check cannot see.
func redisArgs(c corev1.Container) (map[string]string, bool) {
	words := append(append([]string(nil), c.Command...), c.Args...)
	if len(words) > 0 && (words[0] == "redis-server" || strings.HasSuffix(words[0], "/redis-server")) {
		words = words[1:]
	}
	settings := map[string]string{}
	var name string
	var value []string
	flush := func() {
		if name != "" {
			settings[name] = strings.Join(value, " ")
		}
	}
	for i, w := range words {
		if after, ok := strings.CutPrefix(w, "--"); ok {
			flush()
			name, value = strings.ToLower(after), nil
			continue
		}
		if name == "" {
			if i == 0 {
				return nil, false // a configuration file
			}
			continue
		}
		value = append(value, w)
	}
	flush()
	return settings, true
}

// redisSettingProblems lists what is missing from a Redis container's
// settings for pubsub's keys to be safe in it.
func redisSettingProblems(c corev1.Container) []string {
	settings, ok := redisArgs(c)
	if !ok {
		return []string{"Redis reads a configuration file: put maxmemory, maxmemory-policy, appendonly and appendfsync on the command line, where this check can see them"}
	}
	var out []string
	if p := settings["maxmemory-policy"]; p != "noeviction" {
		out = append(out, fmt.Sprintf("maxmemory-policy %q: pubsub needs noeviction (an evicted key is a topic or its history silently lost)", p))
	}
	if a := settings["appendonly"]; a != "yes" {
		out = append(out, fmt.Sprintf("appendonly %q: pubsub needs AOF (appendonly yes), or a restart loses every topic", a))
	}
	if f := settings["appendfsync"]; f != "everysec" && f != "always" {
		out = append(out, fmt.Sprintf("appendfsync %q: set everysec (at most a second lost in a crash) or always", f))
	}
	limit, hasLimit := c.Resources.Limits[corev1.ResourceMemory]
	raw, set := settings["maxmemory"]
	maxmemory, err := parseRedisBytes(raw)
	switch {
	case !set:
		out = append(out, "no maxmemory: Redis would grow until the kernel kills it; set it below the memory limit")
	case err != nil:
		out = append(out, fmt.Sprintf("maxmemory %q: %v", raw, err))
	case maxmemory == 0:
		out = append(out, "maxmemory 0 means no limit: set it below the memory limit")
	case !hasLimit:
		out = append(out, "no memory limit to hold maxmemory against")
	case 4*maxmemory > 3*limit.Value():
		// An AOF rewrite forks: the child's copy-on-write pages, client
		// output buffers and fragmentation all come on top of maxmemory.
		out = append(out, fmt.Sprintf("maxmemory %s is above 3/4 of the memory limit %s: leave room for the AOF rewrite's fork and the output buffers", raw, limit.String()))
	}
	return out
}

// parseRedisBytes reads a Redis memory size: a number with an optional
// unit, k/m/g for powers of 1000 and kb/mb/gb for powers of 1024, in any
// case (as redis.conf documents).
func parseRedisBytes(s string) (int64, error) {
	lower := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		n      int64
	}{{"kb", 1 << 10}, {"mb", 1 << 20}, {"gb", 1 << 30}, {"k", 1e3}, {"m", 1e6}, {"g", 1e9}, {"b", 1}} {
		if v, ok := strings.CutSuffix(lower, u.suffix); ok {
			lower, mult = v, u.n
			break
		}
	}
	n, err := strconv.ParseInt(lower, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("not a Redis memory size")
	}
	return n * mult, nil
}
