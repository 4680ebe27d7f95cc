package schemacheck

import (
	"fmt"
	"slices"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// pod is a pod template and the object that owns it.
type pod struct {
	owner     string
	namespace string
	labels    labels.Set
	spec      *corev1.PodSpec
}

// workload is an object that runs pods from a template: a Deployment or a
// StatefulSet.
type workload struct {
	Object
	namespace string
	// replicas is what the object asks for; the API server's default of 1
	// when the field is left out.
	replicas int32
	template *corev1.PodTemplateSpec
}

// workloads lists the Deployments and StatefulSets among objs.
func workloads(objs []Object) []workload {
	var out []workload
	for _, o := range objs {
		var (
			ns       string
			replicas *int32
			tmpl     *corev1.PodTemplateSpec
		)
		switch v := o.Obj.(type) {
		case *appsv1.Deployment:
			ns, replicas, tmpl = v.Namespace, v.Spec.Replicas, &v.Spec.Template
		case *appsv1.StatefulSet:
			ns, replicas, tmpl = v.Namespace, v.Spec.Replicas, &v.Spec.Template
		default:
			continue
		}
		n := int32(1)
		if replicas != nil {
			n = *replicas
		}
		out = append(out, workload{Object: o, namespace: ns, replicas: n, template: tmpl})
	}
	return out
}

func (w workload) pod() pod {
	return pod{owner: w.String(), namespace: w.namespace, labels: w.template.Labels, spec: &w.template.Spec}
}

// portNames lists the container port names a pod declares.
func (p pod) portNames() []string {
	var names []string
	for _, c := range p.spec.Containers {
		for _, port := range c.Ports {
			if port.Name != "" {
				names = append(names, port.Name)
			}
		}
	}
	return names
}

// crossCheck finds references between objects that point at nothing: the
// API server accepts them, and the result fails quietly at run time (a
// Service with no endpoints, a pod stuck in CreateContainerConfigError, a
// ServiceMonitor that scrapes nothing).
func crossCheck(objs []Object) []error {
	byKind := map[string]map[string]bool{} // "ConfigMap" -> "ns/name"
	var pods []pod
	var services []*corev1.Service
	for _, o := range objs {
		m := o.Obj.(metav1.Object)
		kind := o.Obj.GetObjectKind().GroupVersionKind().Kind
		if byKind[kind] == nil {
			byKind[kind] = map[string]bool{}
		}
		byKind[kind][m.GetNamespace()+"/"+m.GetName()] = true
		if v, ok := o.Obj.(*corev1.Service); ok {
			services = append(services, v)
		}
	}
	for _, w := range workloads(objs) {
		pods = append(pods, w.pod())
	}
	exists := func(kind, ns, name string) bool { return byKind[kind][ns+"/"+name] }

	var errs []error
	fail := func(o Object, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{o}, args...)...))
	}
	selectPods := func(ns string, sel labels.Selector) []pod {
		var out []pod
		for _, p := range pods {
			if p.namespace == ns && sel.Matches(p.labels) {
				out = append(out, p)
			}
		}
		return out
	}
	// checkPorts requires each named port to exist in every selected pod.
	checkPorts := func(o Object, what string, ports []intstr.IntOrString, selected []pod) {
		for _, ref := range ports {
			if ref.Type != intstr.String {
				continue
			}
			for _, p := range selected {
				if !slices.Contains(p.portNames(), ref.StrVal) {
					fail(o, "%s %q is not a container port of %s (it has %v)", what, ref.StrVal, p.owner, p.portNames())
				}
			}
		}
	}

	for _, w := range workloads(objs) {
		o, ns, spec := w.Object, w.namespace, &w.template.Spec
		if sa := spec.ServiceAccountName; sa != "" && sa != "default" && !exists("ServiceAccount", ns, sa) {
			fail(o, "serviceAccountName %q: ServiceAccount not in the rendered objects", sa)
		}
		for _, c := range spec.Containers {
			for _, ef := range c.EnvFrom {
				if r := ef.ConfigMapRef; r != nil && !isTrue(r.Optional) && !exists("ConfigMap", ns, r.Name) {
					fail(o, "container %s: envFrom ConfigMap %q not in the rendered objects", c.Name, r.Name)
				}
				if r := ef.SecretRef; r != nil && !isTrue(r.Optional) && !exists("Secret", ns, r.Name) {
					fail(o, "container %s: envFrom Secret %q not in the rendered objects", c.Name, r.Name)
				}
			}
			for _, e := range c.Env {
				if e.ValueFrom == nil {
					continue
				}
				if r := e.ValueFrom.ConfigMapKeyRef; r != nil && !isTrue(r.Optional) && !exists("ConfigMap", ns, r.Name) {
					fail(o, "container %s: env %s: ConfigMap %q not in the rendered objects", c.Name, e.Name, r.Name)
				}
			}
		}
		// A StatefulSet's pods get their DNS names from a headless Service
		// that must exist before they do.
		if ss, ok := o.Obj.(*appsv1.StatefulSet); ok {
			var governing *corev1.Service
			for _, svc := range services {
				if svc.Namespace == ns && svc.Name == ss.Spec.ServiceName {
					governing = svc
				}
			}
			switch {
			case ss.Spec.ServiceName == "":
				fail(o, "serviceName is empty: name the headless Service that governs the pods")
			case governing == nil:
				fail(o, "serviceName %q: Service not in the rendered objects", ss.Spec.ServiceName)
			case governing.Spec.ClusterIP != corev1.ClusterIPNone:
				fail(o, "serviceName %q: the governing Service must be headless (clusterIP: None)", ss.Spec.ServiceName)
			}
		}
	}

	for _, o := range objs {
		switch v := o.Obj.(type) {
		case *corev1.Service:
			if len(v.Spec.Selector) == 0 {
				continue // a selector-less Service has hand-managed endpoints
			}
			selected := selectPods(v.Namespace, labels.SelectorFromSet(v.Spec.Selector))
			if len(selected) == 0 {
				fail(o, "selector %v matches no pod template", v.Spec.Selector)
			}
			var ports []intstr.IntOrString
			for _, p := range v.Spec.Ports {
				ports = append(ports, p.TargetPort)
			}
			checkPorts(o, "targetPort", ports, selected)
		case *networkingv1.NetworkPolicy:
			sel, err := metav1.LabelSelectorAsSelector(&v.Spec.PodSelector)
			if err != nil {
				continue // validateObject reports it
			}
			selected := selectPods(v.Namespace, sel)
			if len(selected) == 0 {
				fail(o, "podSelector matches no pod template")
			}
			// A peer given by pod labels alone (no namespaceSelector) means
			// pods of this namespace: one that matches none admits nobody.
			for i, rule := range v.Spec.Ingress {
				for j, peer := range rule.From {
					if peer.PodSelector == nil || peer.NamespaceSelector != nil {
						continue
					}
					peerSel, err := metav1.LabelSelectorAsSelector(peer.PodSelector)
					if err != nil {
						continue
					}
					if len(selectPods(v.Namespace, peerSel)) == 0 {
						fail(o, "ingress[%d].from[%d].podSelector matches no pod template", i, j)
					}
				}
			}
			var ports []intstr.IntOrString
			for _, rule := range v.Spec.Ingress {
				for _, p := range rule.Ports {
					if p.Port != nil {
						ports = append(ports, *p.Port)
					}
				}
			}
			checkPorts(o, "ingress port", ports, selected)
		case *policyv1.PodDisruptionBudget:
			sel, err := metav1.LabelSelectorAsSelector(v.Spec.Selector)
			if err != nil {
				continue
			}
			if len(selectPods(v.Namespace, sel)) == 0 {
				fail(o, "selector matches no pod template")
			}
		case *monitoringv1.ServiceMonitor:
			sel, err := metav1.LabelSelectorAsSelector(&v.Spec.Selector)
			if err != nil {
				continue
			}
			var selected []*corev1.Service
			for _, s := range services {
				if s.Namespace == v.Namespace && sel.Matches(labels.Set(s.Labels)) {
					selected = append(selected, s)
				}
			}
			if len(selected) == 0 {
				fail(o, "selector matches no Service")
			}
			for _, ep := range v.Spec.Endpoints {
				if ep.Port == "" {
					continue
				}
				for _, s := range selected {
					if !slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port }) {
						fail(o, "endpoint port %q is not a port of Service/%s", ep.Port, s.Name)
					}
				}
			}
		}
	}
	return errs
}

func isTrue(b *bool) bool { return b != nil && *b }
