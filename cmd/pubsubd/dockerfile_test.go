package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// buildFlags pulls the flags of a `go build` line that builds ./cmd/pubsubd, with the values of
// -X variables reduced to their names: the README fills them from git, the Dockerfile from
// build arguments, and what must agree is the rest.
func buildFlags(t *testing.T, text, where string) string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^(?:RUN )?CGO_ENABLED=0 go build (.*) -o \S+ \./cmd/pubsubd\s*$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("%s has no `CGO_ENABLED=0 go build ... -o ... ./cmd/pubsubd` line", where)
	}
	x := regexp.MustCompile(`-X (main\.\w+)=(?:\$\([^)]*\)|\$\{\w+\}|[^"\s]+)`)
	return x.ReplaceAllString(m[1], "-X $1=…")
}

// TestDockerfileBuildsLikeTheREADME keeps the image and a local build made the same way: static
// (CGO_ENABLED=0), -trimpath, stripped, with the version variables set.
func TestDockerfileBuildsLikeTheREADME(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	docker, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	r := buildFlags(t, string(readme), "README.md")
	d := buildFlags(t, string(docker), "Dockerfile")
	if r != d {
		t.Fatalf("build flags differ:\nREADME:     %s\nDockerfile: %s", r, d)
	}
	for _, want := range []string{"-trimpath", "-s -w", "-X main.version=", "-X main.revision="} {
		if !strings.Contains(d, want) {
			t.Errorf("build flags %q lack %q", d, want)
		}
	}
	for _, want := range []string{"USER 65532", "EXPOSE 8080 9464", "FROM gcr.io/distroless/static", `ENTRYPOINT ["/pubsubd"]`} {
		if !strings.Contains(string(docker), want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if strings.Count(string(docker), "FROM ") < 2 {
		t.Error("Dockerfile is not multi-stage")
	}
}
