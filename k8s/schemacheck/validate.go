package schemacheck

import (
	"fmt"
	"regexp"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	psaapi "k8s.io/pod-security-admission/api"
	psapolicy "k8s.io/pod-security-admission/policy"
)

// podSecurity is the Pod Security admission controller's own evaluator, so
// "restricted" here means exactly what a namespace labelled
// pod-security.kubernetes.io/enforce=restricted enforces.
var podSecurity = func() psapolicy.Evaluator {
	e, err := psapolicy.NewEvaluator(psapolicy.DefaultChecks(), nil)
	if err != nil {
		panic(fmt.Sprintf("pod security checks: %v", err))
	}
	return e
}()

var restrictedLatest = psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: psaapi.LatestVersion()}

// validateObject runs the checks that need only the object itself.
func validateObject(obj runtime.Object) []error {
	var errs field.ErrorList
	errs = append(errs, validateMeta(obj)...)
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		for k := range o.Data {
			for _, msg := range validation.IsConfigMapKey(k) {
				errs = append(errs, field.Invalid(field.NewPath("data").Key(k), k, msg))
			}
		}
	case *corev1.Service:
		errs = append(errs, validateService(o)...)
	case *appsv1.Deployment:
		errs = append(errs, validateSelector(o.Spec.Selector, o.Spec.Template.Labels, field.NewPath("spec", "selector"))...)
		errs = append(errs, validatePodTemplate(&o.Spec.Template, nil, field.NewPath("spec", "template"))...)
	case *appsv1.StatefulSet:
		errs = append(errs, validateStatefulSet(o)...)
	case *policyv1.PodDisruptionBudget:
		p := field.NewPath("spec")
		if (o.Spec.MinAvailable == nil) == (o.Spec.MaxUnavailable == nil) {
			errs = append(errs, field.Invalid(p, "", "set exactly one of minAvailable and maxUnavailable"))
		}
		errs = append(errs, validateSelector(o.Spec.Selector, nil, p.Child("selector"))...)
	case *networkingv1.NetworkPolicy:
		p := field.NewPath("spec")
		errs = append(errs, metav1validation.ValidateLabelSelector(&o.Spec.PodSelector, metav1validation.LabelSelectorValidationOptions{}, p.Child("podSelector"))...)
		for i, rule := range o.Spec.Ingress {
			for j, peer := range rule.From {
				pp := p.Child("ingress").Index(i).Child("from").Index(j)
				errs = append(errs, metav1validation.ValidateLabelSelector(peer.NamespaceSelector, metav1validation.LabelSelectorValidationOptions{}, pp.Child("namespaceSelector"))...)
				errs = append(errs, metav1validation.ValidateLabelSelector(peer.PodSelector, metav1validation.LabelSelectorValidationOptions{}, pp.Child("podSelector"))...)
			}
		}
	case *monitoringv1.ServiceMonitor:
		p := field.NewPath("spec")
		errs = append(errs, validateSelector(&o.Spec.Selector, nil, p.Child("selector"))...)
		if len(o.Spec.Endpoints) == 0 {
			errs = append(errs, field.Required(p.Child("endpoints"), "a ServiceMonitor without endpoints scrapes nothing"))
		}
		for i, ep := range o.Spec.Endpoints {
			if ep.Port == "" && ep.TargetPort == nil {
				errs = append(errs, field.Required(p.Child("endpoints").Index(i).Child("port"), "name the Service port to scrape"))
			}
		}
	case *monitoringv1.PrometheusRule:
		errs = append(errs, validateRuleSpec(&o.Spec, field.NewPath("spec"))...)
	}
	return toErrors(errs)
}

// validateMeta applies the API server's object-metadata rules: name format
// for the kind, label and annotation syntax. A namespaced object may leave
// its namespace empty (kubectl then uses the context's namespace).
func validateMeta(obj runtime.Object) field.ErrorList {
	m, err := meta.Accessor(obj)
	if err != nil {
		return field.ErrorList{field.InternalError(field.NewPath("metadata"), err)}
	}
	nameFn := apivalidation.NameIsDNSSubdomain
	switch obj.(type) {
	case *corev1.Namespace:
		nameFn = apivalidation.NameIsDNSLabel
	case *corev1.Service:
		// Service names become DNS labels and environment variable prefixes.
		nameFn = apivalidation.NameIsDNS1035Label
	}
	requiresNamespace := m.GetNamespace() != ""
	if _, ok := obj.(*corev1.Namespace); ok {
		requiresNamespace = false
	}
	return apivalidation.ValidateObjectMetaAccessor(m, requiresNamespace, nameFn, field.NewPath("metadata"))
}

// validateSelector requires a non-empty, well-formed selector and, when
// template labels are given, that the selector matches them (the API server
// refuses a Deployment whose selector does not select its own pods).
func validateSelector(sel *metav1.LabelSelector, templateLabels map[string]string, p *field.Path) field.ErrorList {
	if sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		return field.ErrorList{field.Required(p, "an empty selector selects everything")}
	}
	errs := metav1validation.ValidateLabelSelector(sel, metav1validation.LabelSelectorValidationOptions{}, p)
	if templateLabels == nil {
		return errs
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return append(errs, field.Invalid(p, sel, err.Error()))
	}
	if !s.Matches(labels.Set(templateLabels)) {
		errs = append(errs, field.Invalid(p, sel, "selector does not match the pod template's labels"))
	}
	return errs
}

func validateService(s *corev1.Service) field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("spec", "ports")
	names := map[string]bool{}
	for i, port := range s.Spec.Ports {
		pp := p.Index(i)
		if len(s.Spec.Ports) > 1 && port.Name == "" {
			errs = append(errs, field.Required(pp.Child("name"), "required when a Service has several ports"))
		}
		if port.Name != "" {
			for _, msg := range validation.IsValidPortName(port.Name) {
				errs = append(errs, field.Invalid(pp.Child("name"), port.Name, msg))
			}
			if names[port.Name] {
				errs = append(errs, field.Duplicate(pp.Child("name"), port.Name))
			}
			names[port.Name] = true
		}
		for _, msg := range validation.IsValidPortNum(int(port.Port)) {
			errs = append(errs, field.Invalid(pp.Child("port"), port.Port, msg))
		}
		errs = append(errs, validatePortRef(port.TargetPort, pp.Child("targetPort"))...)
	}
	errs = append(errs, metav1validation.ValidateLabels(s.Spec.Selector, field.NewPath("spec", "selector"))...)
	return errs
}

func validatePortRef(ref intstr.IntOrString, p *field.Path) field.ErrorList {
	var msgs []string
	switch {
	case ref.Type == intstr.String:
		msgs = validation.IsValidPortName(ref.StrVal)
	case ref.IntVal != 0: // 0 means "same as port" on a Service
		msgs = validation.IsValidPortNum(int(ref.IntVal))
	}
	var errs field.ErrorList
	for _, msg := range msgs {
		errs = append(errs, field.Invalid(p, ref.String(), msg))
	}
	return errs
}

// validatePodTemplate checks the parts of a pod that fail only once the pod
// runs (a probe on a port name no container declares never succeeds) plus
// the restricted Pod Security profile.
//
// claims names the volumes a StatefulSet's volumeClaimTemplates add to each
// pod, which a container may mount beside the template's own volumes.
func validatePodTemplate(t *corev1.PodTemplateSpec, claims []string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, metav1validation.ValidateLabels(t.Labels, p.Child("metadata", "labels"))...)
	spec := &t.Spec
	sp := p.Child("spec")
	if len(spec.Containers) == 0 {
		errs = append(errs, field.Required(sp.Child("containers"), ""))
	}
	volumes := map[string]bool{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = true
	}
	for _, name := range claims {
		volumes[name] = true
	}
	grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
	if spec.TerminationGracePeriodSeconds != nil {
		grace = *spec.TerminationGracePeriodSeconds
	}
	containerNames := map[string]bool{}
	portNames := map[string]bool{}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		cp := sp.Child("containers").Index(i)
		for _, msg := range validation.IsDNS1123Label(c.Name) {
			errs = append(errs, field.Invalid(cp.Child("name"), c.Name, msg))
		}
		if containerNames[c.Name] {
			errs = append(errs, field.Duplicate(cp.Child("name"), c.Name))
		}
		containerNames[c.Name] = true
		if c.Image == "" {
			errs = append(errs, field.Required(cp.Child("image"), ""))
		}
		own := map[string]bool{}
		for j, port := range c.Ports {
			pp := cp.Child("ports").Index(j)
			for _, msg := range validation.IsValidPortNum(int(port.ContainerPort)) {
				errs = append(errs, field.Invalid(pp.Child("containerPort"), port.ContainerPort, msg))
			}
			if port.Name == "" {
				continue
			}
			for _, msg := range validation.IsValidPortName(port.Name) {
				errs = append(errs, field.Invalid(pp.Child("name"), port.Name, msg))
			}
			if portNames[port.Name] {
				errs = append(errs, field.Duplicate(pp.Child("name"), port.Name))
			}
			portNames[port.Name] = true
			own[port.Name] = true
		}
		for j, env := range c.Env {
			for _, msg := range validation.IsEnvVarName(env.Name) {
				errs = append(errs, field.Invalid(cp.Child("env").Index(j).Child("name"), env.Name, msg))
			}
		}
		for name, probe := range map[string]*corev1.Probe{"livenessProbe": c.LivenessProbe, "readinessProbe": c.ReadinessProbe, "startupProbe": c.StartupProbe} {
			if probe == nil {
				continue
			}
			var ref *intstr.IntOrString
			switch {
			case probe.HTTPGet != nil:
				ref = &probe.HTTPGet.Port
			case probe.TCPSocket != nil:
				ref = &probe.TCPSocket.Port
			}
			if ref != nil && ref.Type == intstr.String && !own[ref.StrVal] {
				errs = append(errs, field.NotFound(cp.Child(name, "port"), ref.StrVal))
			}
		}
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
			if s := c.Lifecycle.PreStop.Sleep.Seconds; s <= 0 || s > grace {
				errs = append(errs, field.Invalid(cp.Child("lifecycle", "preStop", "sleep", "seconds"), s,
					fmt.Sprintf("must be positive and at most terminationGracePeriodSeconds (%d)", grace)))
			}
		}
		for j, m := range c.VolumeMounts {
			if !volumes[m.Name] {
				errs = append(errs, field.NotFound(cp.Child("volumeMounts").Index(j).Child("name"), m.Name))
			}
		}
		for res, limit := range c.Resources.Limits {
			if req, ok := c.Resources.Requests[res]; ok && req.Cmp(limit) > 0 {
				errs = append(errs, field.Invalid(cp.Child("resources", "requests").Key(string(res)), req.String(),
					"must be less than or equal to the limit "+limit.String()))
			}
		}
	}
	results := podSecurity.EvaluatePod(restrictedLatest, &t.ObjectMeta, spec)
	if agg := psapolicy.AggregateCheckResults(results); !agg.Allowed {
		errs = append(errs, field.Forbidden(sp, "violates PodSecurity \"restricted:latest\": "+agg.ForbiddenDetail()))
	}
	return errs
}

// validateStatefulSet applies the API server's rules a StatefulSet adds to
// a pod template: a governing Service name, and claim templates that are
// well formed and do not clash with the template's own volumes.
func validateStatefulSet(o *appsv1.StatefulSet) field.ErrorList {
	p := field.NewPath("spec")
	var errs field.ErrorList
	errs = append(errs, validateSelector(o.Spec.Selector, o.Spec.Template.Labels, p.Child("selector"))...)
	if o.Spec.ServiceName != "" {
		for _, msg := range validation.IsDNS1123Label(o.Spec.ServiceName) {
			errs = append(errs, field.Invalid(p.Child("serviceName"), o.Spec.ServiceName, msg))
		}
	}
	own := map[string]bool{}
	for _, v := range o.Spec.Template.Spec.Volumes {
		own[v.Name] = true
	}
	var claims []string
	for i, c := range o.Spec.VolumeClaimTemplates {
		cp := p.Child("volumeClaimTemplates").Index(i)
		for _, msg := range validation.IsDNS1123Label(c.Name) {
			errs = append(errs, field.Invalid(cp.Child("metadata", "name"), c.Name, msg))
		}
		if own[c.Name] {
			errs = append(errs, field.Duplicate(cp.Child("metadata", "name"), c.Name))
		}
		if len(c.Spec.AccessModes) == 0 {
			errs = append(errs, field.Required(cp.Child("spec", "accessModes"), ""))
		}
		if q, ok := c.Spec.Resources.Requests[corev1.ResourceStorage]; !ok || q.Sign() <= 0 {
			errs = append(errs, field.Required(cp.Child("spec", "resources", "requests", "storage"), "a claim must request a positive size"))
		}
		claims = append(claims, c.Name)
	}
	errs = append(errs, validatePodTemplate(&o.Spec.Template, claims, p.Child("template"))...)
	return errs
}

// validateRuleSpec holds a PrometheusRule to what Prometheus itself refuses
// at load time, short of parsing PromQL (promtool does that on the source).
func validateRuleSpec(spec *monitoringv1.PrometheusRuleSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(spec.Groups) == 0 {
		errs = append(errs, field.Required(p.Child("groups"), ""))
	}
	groups := map[string]bool{}
	for i, g := range spec.Groups {
		gp := p.Child("groups").Index(i)
		if g.Name == "" {
			errs = append(errs, field.Required(gp.Child("name"), ""))
		}
		if groups[g.Name] {
			errs = append(errs, field.Duplicate(gp.Child("name"), g.Name))
		}
		groups[g.Name] = true
		for j, r := range g.Rules {
			rp := gp.Child("rules").Index(j)
			if (r.Alert == "") == (r.Record == "") {
				errs = append(errs, field.Invalid(rp, r.Alert+r.Record, "set exactly one of alert and record"))
			}
			if r.Expr.String() == "" {
				errs = append(errs, field.Required(rp.Child("expr"), ""))
			}
			for name := range r.Labels {
				if !promLabelName.MatchString(name) {
					errs = append(errs, field.Invalid(rp.Child("labels").Key(name), name, "not a Prometheus label name"))
				}
			}
		}
	}
	return errs
}

func toErrors(list field.ErrorList) []error {
	errs := make([]error, 0, len(list))
	for _, e := range list {
		errs = append(errs, e)
	}
	return errs
}

// promLabelName is Prometheus's label name syntax (not Kubernetes's).
var promLabelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
