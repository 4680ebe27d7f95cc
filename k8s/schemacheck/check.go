package schemacheck

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	k8sjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
)

// scheme holds every kind the manifests may contain. A kind missing here is
// rejected on purpose: adding one is a decision to check it, not an accident.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(corev1.AddToScheme(s))
	utilruntime.Must(appsv1.AddToScheme(s))
	utilruntime.Must(policyv1.AddToScheme(s))
	utilruntime.Must(networkingv1.AddToScheme(s))
	utilruntime.Must(monitoringv1.AddToScheme(s))
	return s
}()

// strictDecoder is the API machinery's own JSON/YAML serializer in strict
// mode: case-sensitive field names, no unknown fields, no duplicate fields.
var strictDecoder = k8sjson.NewSerializerWithOptions(
	k8sjson.DefaultMetaFactory, scheme, scheme,
	k8sjson.SerializerOptions{Yaml: true, Strict: true},
)

// Object is one decoded manifest. Obj is a pointer to the typed API struct
// (*appsv1.Deployment, *monitoringv1.ServiceMonitor, ...).
type Object struct {
	// Index is the object's position in the rendered stream, from 0.
	Index int
	Obj   runtime.Object
}

// String names the object as kubectl would: Kind/name.
func (o Object) String() string {
	kind := o.Obj.GetObjectKind().GroupVersionKind().Kind
	name := "?"
	if m, err := meta.Accessor(o.Obj); err == nil {
		name = m.GetName()
	}
	return kind + "/" + name
}

// Render runs `kubectl kustomize dir` and returns the rendered stream. ctx
// bounds the run.
func Render(ctx context.Context, dir string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "kubectl", "kustomize", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("kubectl kustomize %s: %w: %s", dir, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Split cuts a multi-document YAML stream at its "---" separators and drops
// documents that hold nothing but comments, markers or whitespace.
func Split(stream []byte) ([][]byte, error) {
	r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(stream)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("splitting YAML stream: %w", err)
		}
		if hasContent(doc) {
			docs = append(docs, doc)
		}
	}
}

func hasContent(doc []byte) bool {
	for line := range strings.SplitSeq(string(doc), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && line != "---" && line != "..." && !strings.HasPrefix(line, "#") {
			return true
		}
	}
	return false
}

// Decode decodes one YAML document strictly into its typed API struct. It
// fails on a missing or unknown apiVersion/kind, an unknown or duplicated
// field, and a value of the wrong type.
func Decode(doc []byte) (runtime.Object, error) {
	obj, _, err := strictDecoder.Decode(doc, nil, nil)
	if err != nil {
		return nil, err
	}
	return obj, nil
}

// Check decodes every document of a rendered stream strictly, validates each
// object and the references between them, and returns the decoded objects.
// The error joins every problem found, each naming its object, so one run
// shows them all.
func Check(stream []byte) ([]Object, error) {
	docs, err := Split(stream)
	if err != nil {
		return nil, err
	}
	if len(docs) == 0 {
		return nil, errors.New("no objects in the stream")
	}
	var objs []Object
	var errs []error
	for i, doc := range docs {
		obj, err := Decode(doc)
		if err != nil {
			errs = append(errs, fmt.Errorf("document %d (%s): %w", i, describe(doc), err))
			continue
		}
		o := Object{Index: i, Obj: obj}
		for _, e := range validateObject(obj) {
			errs = append(errs, fmt.Errorf("%s: %w", o, e))
		}
		objs = append(objs, o)
	}
	errs = append(errs, crossCheck(objs)...)
	errs = append(errs, backplaneCheck(objs)...)
	return objs, errors.Join(errs...)
}

// describe names an undecodable document by the kind and name it claims,
// read loosely, so the error says where to look.
func describe(doc []byte) string {
	var head struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := k8syaml.Unmarshal(doc, &head); err != nil || head.Kind == "" {
		return "unreadable"
	}
	return head.Kind + "/" + head.Metadata.Name
}
