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

// TestDockerfileGoIsTheScannedGo keeps one Go release for the image and the vulnerability scan:
// .ci/go-version is the toolchain .ci/vulncheck runs govulncheck with, and the Dockerfile's builder
// must be that exact release, or CI would vouch for a standard library the image does not ship.
// go.mod meanwhile stays at Go 1.26 without a toolchain line, so the README's commands still work
// with a plain Go 1.26 and never download another toolchain.
func TestDockerfileGoIsTheScannedGo(t *testing.T) {
	raw, err := os.ReadFile("../../.ci/go-version")
	if err != nil {
		t.Fatal(err)
	}
	scanned := strings.TrimSpace(string(raw))
	if !regexp.MustCompile(`^1\.\d+\.\d+$`).MatchString(scanned) {
		t.Fatalf(".ci/go-version holds %q, want a full release such as 1.27.3", scanned)
	}
	docker, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^FROM golang:(\S+?)(?:-\S+)? AS build$`).FindStringSubmatch(string(docker))
	if m == nil {
		t.Fatal("Dockerfile has no `FROM golang:<version>-... AS build` stage")
	}
	if m[1] != scanned {
		t.Errorf("Dockerfile builds with Go %s, CI scans Go %s (.ci/go-version): make them one release", m[1], scanned)
	}

	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^go 1\.26(\.\d+)?$`).Match(mod) {
		t.Error("go.mod's go line must stay 1.26.x: the README promises the build and tests work with Go 1.26")
	}
	if regexp.MustCompile(`(?m)^toolchain `).Match(mod) {
		t.Error("go.mod has a toolchain line: it would make Go 1.26 download another toolchain for the README's commands")
	}
}
