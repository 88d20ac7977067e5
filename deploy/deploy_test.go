// Package deploy checks the shipped deployment files: the Kubernetes
// manifests decode strictly into the Kubernetes API types, the
// configuration they carry passes the connector's own validation, and the
// alert rules load with Prometheus's rule parser and name only metrics the
// connector exports. It is a module of its own, so that the Kubernetes and
// Prometheus libraries never enter the connector's build.
package deploy

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/cdc-indexer/cdc-indexer/internal/config"
	"github.com/cdc-indexer/cdc-indexer/internal/metrics"
)

// documents splits a multi-document YAML file.
func documents(t *testing.T, path string) [][]byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(raw), -1) {
		if strings.TrimSpace(stripComments(doc)) != "" {
			out = append(out, []byte(doc))
		}
	}
	return out
}

func stripComments(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// decodeStrict decodes one manifest into the Kubernetes type of its kind;
// an unknown field is an error.
func decodeStrict(t *testing.T, path string, doc []byte) (kind string, obj any) {
	t.Helper()
	var head struct {
		Kind string `json:"kind"`
	}
	if err := yaml.Unmarshal(doc, &head); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	switch head.Kind {
	case "Deployment":
		obj = &appsv1.Deployment{}
	case "Service":
		obj = &corev1.Service{}
	case "Secret":
		obj = &corev1.Secret{}
	case "ConfigMap":
		obj = &corev1.ConfigMap{}
	case "PrometheusRule":
		return head.Kind, nil // checked below
	default:
		t.Fatalf("%s: unexpected kind %q", path, head.Kind)
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		t.Fatalf("%s: %s: %v", path, head.Kind, err)
	}
	return head.Kind, obj
}

// checkConfig requires a config.yaml to pass the connector's validation.
func checkConfig(t *testing.T, where, text string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(config.EnvName("postgres.dsn"), "postgres://u:p@db:5432/app") // from the Secret
	cfg, err := config.Load(path)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		t.Fatalf("%s: the configuration does not validate: %v", where, err)
	}
}

// checkContainer requires the connector's container to run `run
// --standby` with a config file, probe the observability port, and leave
// the stop within the grace period.
func checkContainer(t *testing.T, where string, d *appsv1.Deployment) {
	t.Helper()
	spec := d.Spec.Template.Spec
	i := slices.IndexFunc(spec.Containers, func(c corev1.Container) bool { return c.Name == "cdc-indexer" })
	if i < 0 {
		t.Fatalf("%s: no cdc-indexer container", where)
	}
	c := spec.Containers[i]
	if !slices.Equal(c.Args[:2], []string{"run", "--standby"}) || !slices.Contains(c.Args, "--config") {
		t.Errorf("%s: args %v, want run --standby --config ...", where, c.Args)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("%s: the liveness probe is not /healthz", where)
	}
	if spec.TerminationGracePeriodSeconds == nil || *spec.TerminationGracePeriodSeconds < 35 {
		t.Errorf("%s: terminationGracePeriodSeconds below pipeline.shutdown_timeout (30s) plus a margin", where)
	}
	if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "GOMEMLIMIT" }) {
		t.Errorf("%s: GOMEMLIMIT is not set", where)
	}
}

func TestSidecarExample(t *testing.T) {
	path := filepath.Join("kubernetes", "sidecar.yaml")
	seen := 0
	for _, doc := range documents(t, path) {
		kind, obj := decodeStrict(t, path, doc)
		switch o := obj.(type) {
		case *appsv1.Deployment:
			checkContainer(t, path, o)
		case *corev1.ConfigMap:
			checkConfig(t, path, o.Data["config.yaml"])
		}
		if kind != "" {
			seen++
		}
	}
	if seen != 3 {
		t.Fatalf("%s: %d manifests, want Secret, ConfigMap and Deployment", path, seen)
	}
}

// The standalone base is built by kustomize itself (what `kubectl apply
// -k` runs), and every resource it renders, the generated ConfigMap
// included, decodes strictly and carries a valid configuration.
func TestStandaloneKustomization(t *testing.T) {
	dir := filepath.Join("kubernetes", "standalone")
	built, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	kinds := map[string]bool{}
	for _, res := range built.Resources() {
		doc, err := res.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		where := dir + ": " + res.CurId().String()
		kind, obj := decodeStrict(t, where, doc)
		kinds[kind] = true
		if res.GetLabels()["app.kubernetes.io/name"] != "cdc-indexer" {
			t.Errorf("%s: without the app.kubernetes.io/name label", where)
		}
		switch o := obj.(type) {
		case *appsv1.Deployment:
			checkContainer(t, where, o)
			if o.Spec.Replicas == nil || *o.Spec.Replicas < 2 {
				t.Errorf("%s: fewer than 2 replicas: no standby", where)
			}
			checkMountsGeneratedConfig(t, where, o, built)
		case *corev1.ConfigMap:
			checkConfig(t, where, o.Data["config.yaml"])
		}
	}
	for _, want := range []string{"Deployment", "Service", "Secret", "ConfigMap", "PrometheusRule"} {
		if !kinds[want] {
			t.Errorf("the kustomization renders no %s", want)
		}
	}
}

// checkMountsGeneratedConfig requires the Deployment to mount the
// ConfigMap under the name kustomize generated (with its content hash), so
// a configuration change rolls the pods.
func checkMountsGeneratedConfig(t *testing.T, where string, d *appsv1.Deployment, built resmap.ResMap) {
	t.Helper()
	var generated string
	for _, res := range built.Resources() {
		if res.GetKind() == "ConfigMap" {
			generated = res.GetName()
		}
	}
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name == generated && generated != "cdc-indexer" {
			return
		}
	}
	t.Errorf("%s: mounts no ConfigMap named %q (the generated, hashed name)", where, generated)
}

// The alert rules load with Prometheus's parser, and every metric they
// name is one the connector exports.
func TestAlertRules(t *testing.T) {
	path := filepath.Join("kubernetes", "standalone", "prometheus-rules.yaml")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rule struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			Groups []any `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.UnmarshalStrict(raw, &rule); err != nil {
		t.Fatal(err)
	}
	if rule.APIVersion != "monitoring.coreos.com/v1" || rule.Kind != "PrometheusRule" {
		t.Fatalf("%s: %s %s", path, rule.APIVersion, rule.Kind)
	}
	groupsYAML, err := yaml.Marshal(map[string]any{"groups": rule.Spec.Groups})
	if err != nil {
		t.Fatal(err)
	}
	groups, errs := rulefmt.Parse(groupsYAML, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		t.Fatalf("%s: %v", path, errors.Join(errs...))
	}

	exported := map[string]bool{}
	for _, name := range metrics.New().Names() {
		exported[name] = true
	}
	alerts := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts++
			expr, err := parser.NewParser(parser.Options{}).ParseExpr(r.Expr)
			if err != nil {
				t.Fatalf("%s: %v", r.Alert, err)
			}
			parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
				if vs, ok := node.(*parser.VectorSelector); ok {
					name := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(vs.Name, "_bucket"), "_sum"), "_count")
					if !exported[name] && !exported[vs.Name] {
						t.Errorf("alert %s uses %s, which the connector does not export", r.Alert, vs.Name)
					}
				}
				return nil
			})
			if r.Annotations["summary"] == "" || r.Labels["severity"] == "" {
				t.Errorf("alert %s lacks a summary or a severity", r.Alert)
			}
		}
	}
	if alerts < 6 {
		t.Fatalf("%d alerts, want the lag, retained WAL, dead letters, breaker, freshness and standby ones", alerts)
	}
}
