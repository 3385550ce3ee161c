// Package scaleout checks the scale-out examples beside it (a GitHub
// Actions workflow and Kubernetes manifests) without a runner or a
// cluster: the manifests decode strictly into the Kubernetes API's own Go
// types, the shard counts agree, and every vmlab flag they pass is one
// vmlab has. docs/scale-out.md explains the examples.
package scaleout

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/vmlab/vmlab/internal/cli"
)

// objects is what the Kubernetes manifests declare, by kind and name.
type objects struct {
	jobs        map[string]*batchv1.Job
	claims      map[string]*corev1.PersistentVolumeClaim
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
}

// decodeManifests decodes every document of every k8s-*.yaml file into
// its API type, strictly: a misspelled or misplaced field is an error, as
// `kubectl apply --validate=strict` would make it.
func decodeManifests(t *testing.T) objects {
	t.Helper()
	files, err := filepath.Glob("k8s-*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no k8s-*.yaml manifests: %v", err)
	}
	o := objects{map[string]*batchv1.Job{}, map[string]*corev1.PersistentVolumeClaim{},
		map[string]*appsv1.Deployment{}, map[string]*corev1.Service{}}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range splitDocuments(data) {
			where := fmt.Sprintf("%s, document %d", file, i+1)
			var meta metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &meta); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			var obj interface{ GetName() string }
			switch meta.APIVersion + " " + meta.Kind {
			case "batch/v1 Job":
				obj = &batchv1.Job{}
			case "v1 PersistentVolumeClaim":
				obj = &corev1.PersistentVolumeClaim{}
			case "apps/v1 Deployment":
				obj = &appsv1.Deployment{}
			case "v1 Service":
				obj = &corev1.Service{}
			default:
				t.Fatalf("%s: unexpected kind %q %q", where, meta.APIVersion, meta.Kind)
			}
			if err := yaml.UnmarshalStrict(doc, obj); err != nil {
				t.Fatalf("%s: decoding %s: %v", where, meta.Kind, err)
			}
			switch v := obj.(type) {
			case *batchv1.Job:
				o.jobs[v.Name] = v
			case *corev1.PersistentVolumeClaim:
				o.claims[v.Name] = v
			case *appsv1.Deployment:
				o.deployments[v.Name] = v
			case *corev1.Service:
				o.services[v.Name] = v
			}
		}
	}
	return o
}

// splitDocuments splits a YAML stream at its "---" lines, leaving out
// documents with nothing but comments.
func splitDocuments(data []byte) [][]byte {
	var docs [][]byte
	for _, doc := range regexp.MustCompile(`(?m)^---[ \t]*$`).Split(string(data), -1) {
		for _, line := range strings.Split(doc, "\n") {
			if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
				docs = append(docs, []byte(doc))
				break
			}
		}
	}
	return docs
}

var autoTotal = regexp.MustCompile(`-shard auto/(\d+)\b`)

// TestKubernetesIndexedJob: the shards' Job is Indexed with one index per
// shard, all at once; its pods get /dev/kvm, write -out to the shared
// volume, and name only variables Kubernetes can expand; the merge Job
// reads that volume's shard directories.
func TestKubernetesIndexedJob(t *testing.T) {
	o := decodeManifests(t)
	job := o.jobs["vmlab-shards"]
	if job == nil {
		t.Fatalf("no Job vmlab-shards; jobs: %v", mapKeys(o.jobs))
	}
	spec := job.Spec
	if spec.CompletionMode == nil || *spec.CompletionMode != batchv1.IndexedCompletion {
		t.Errorf("completionMode: got %v, want Indexed", deref(spec.CompletionMode))
	}
	pod := spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("got %d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	script := strings.Join(append(slices.Clone(c.Command), c.Args...), "\n")
	m := autoTotal.FindStringSubmatch(script)
	if m == nil {
		t.Fatalf("the shard's command has no -shard auto/N:\n%s", script)
	}
	n, _ := strconv.Atoi(m[1])
	if got := deref(spec.Completions); got != int32(n) {
		t.Errorf("completions: got %d, want %d (-shard auto/%d)", got, n, n)
	}
	if got := deref(spec.Parallelism); got != int32(n) {
		t.Errorf("parallelism: got %d, want %d: every shard at once", got, n)
	}
	if pod.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy: got %q, want Never: a shard run again in the same pod would mix its outputs", pod.RestartPolicy)
	}

	kvm := corev1.ResourceName("devices.kubevirt.io/kvm")
	if q, ok := c.Resources.Limits[kvm]; !ok || q.Value() != 1 {
		t.Errorf("limits[%s]: got %v (set %v), want 1: the pod's /dev/kvm", kvm, q.String(), ok)
	}
	if c.Resources.Requests.Memory().IsZero() {
		t.Error("no memory request: the scheduler would put pods where their machines do not fit")
	}

	// $(VAR) is expanded from the container's env only; an undefined one
	// stays as it is, and the shell would run VAR as a command.
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	for _, ref := range regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`).FindAllStringSubmatch(script, -1) {
		if _, ok := env[ref[1]]; !ok {
			t.Errorf("the command names $(%s), which is not in the container's env", ref[1])
		}
	}
	if e := env["JOB_COMPLETION_INDEX"]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil ||
		e.ValueFrom.FieldRef.FieldPath != "metadata.annotations['batch.kubernetes.io/job-completion-index']" {
		t.Errorf("JOB_COMPLETION_INDEX: got %+v, want the completion index annotation", e)
	}

	out := flagValue(t, script, "out")
	if !strings.Contains(out, "$(JOB_COMPLETION_INDEX)") {
		t.Errorf("-out %s: want a directory per index", out)
	}
	mount := mountFor(c, out)
	if mount == nil {
		t.Fatalf("-out %s is on no volume the container mounts (%+v)", out, c.VolumeMounts)
	}
	claim := sharedClaim(t, o, pod, mount.Name)

	// The merge Job: the same claim, mounted where the shards wrote.
	merge := o.jobs["vmlab-merge"]
	if merge == nil {
		t.Fatalf("no Job vmlab-merge; jobs: %v", mapKeys(o.jobs))
	}
	mc := merge.Spec.Template.Spec.Containers[0]
	mscript := strings.Join(append(slices.Clone(mc.Command), mc.Args...), "\n")
	want := "vmlab report merge -out " + mount.MountPath + "/merged " + mount.MountPath + "/shard-*"
	if !strings.Contains(mscript, want) {
		t.Errorf("the merge Job's command does not run %q:\n%s", want, mscript)
	}
	mm := mountFor(mc, mount.MountPath+"/shard-0")
	if mm == nil || mm.MountPath != mount.MountPath {
		t.Fatalf("the merge Job does not mount %s (%+v)", mount.MountPath, mc.VolumeMounts)
	}
	if got := sharedClaim(t, o, merge.Spec.Template.Spec, mm.Name); got != claim {
		t.Errorf("the merge Job reads claim %q, the shards write %q", got, claim)
	}

	// -cache-url names the Service of k8s-cache.yaml.
	if u := flagValue(t, script, "cache-url"); u != "" {
		svc := o.services["vmlab-cache"]
		if svc == nil || !strings.HasPrefix(u, "http://vmlab-cache:"+strconv.Itoa(int(svc.Spec.Ports[0].Port))) {
			t.Errorf("-cache-url %s: want the vmlab-cache Service's address (%v)", u, svc)
		}
	}

	checkFlags(t, "k8s-indexed-job.yaml", script)
	checkFlags(t, "k8s-merge-job.yaml", mscript)
}

// sharedClaim returns the claim behind volume name of pod, which must be
// a ReadWriteMany claim the manifests declare.
func sharedClaim(t *testing.T, o objects, pod corev1.PodSpec, name string) string {
	t.Helper()
	for _, v := range pod.Volumes {
		if v.Name != name {
			continue
		}
		if v.PersistentVolumeClaim == nil {
			t.Fatalf("volume %s is not a PersistentVolumeClaim: the merge could not read it", name)
		}
		claim := o.claims[v.PersistentVolumeClaim.ClaimName]
		if claim == nil {
			t.Fatalf("volume %s: no PersistentVolumeClaim %q in the manifests", name, v.PersistentVolumeClaim.ClaimName)
		}
		if !slices.Contains(claim.Spec.AccessModes, corev1.ReadWriteMany) {
			t.Errorf("claim %s: access modes %v, want ReadWriteMany: the shards' pods write at once, from any node", claim.Name, claim.Spec.AccessModes)
		}
		return claim.Name
	}
	t.Fatalf("no volume %q in the pod", name)
	return ""
}

// mountFor returns the mount of c that holds path.
func mountFor(c corev1.Container, path string) *corev1.VolumeMount {
	for i, m := range c.VolumeMounts {
		if path == m.MountPath || strings.HasPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/") {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

// flagValue returns the value of -name in script's vmlab command ("" when
// absent).
func flagValue(t *testing.T, script, name string) string {
	t.Helper()
	m := regexp.MustCompile(`\s-` + regexp.QuoteMeta(name) + `[ =]("[^"]*"|\S+)`).FindStringSubmatch(script)
	if m == nil {
		return ""
	}
	return strings.Trim(m[1], `"`)
}

// workflow is the part of a GitHub Actions workflow the test reads.
type workflow struct {
	Env  map[string]string `json:"env"`
	Jobs map[string]struct {
		Needs    any               `json:"needs"` // a job's name or a list of them
		If       string            `json:"if"`
		Env      map[string]string `json:"env"`
		Strategy struct {
			FailFast *bool            `json:"fail-fast"`
			Matrix   map[string][]any `json:"matrix"`
		} `json:"strategy"`
		Steps []struct {
			Name string         `json:"name"`
			Uses string         `json:"uses"`
			If   string         `json:"if"`
			Run  string         `json:"run"`
			With map[string]any `json:"with"`
		} `json:"steps"`
	} `json:"jobs"`
}

// TestGitHubActionsWorkflow: the matrix has as many jobs as the shard
// total it passes says, a failing shard cancels no other, every shard's
// output is uploaded even when it failed, and the merge job waits for all
// of them and runs whatever they did.
func TestGitHubActionsWorkflow(t *testing.T) {
	data, err := os.ReadFile("github-actions.yml")
	if err != nil {
		t.Fatal(err)
	}
	var w workflow
	if err := yaml.Unmarshal(data, &w); err != nil {
		t.Fatalf("github-actions.yml: %v", err)
	}
	shard, ok := w.Jobs["shard"]
	if !ok {
		t.Fatalf("no job shard; jobs: %v", mapKeys(w.Jobs))
	}
	if len(shard.Strategy.Matrix) != 1 {
		t.Fatalf("matrix: got %v, want one dimension, the shards", shard.Strategy.Matrix)
	}
	for dim, values := range shard.Strategy.Matrix {
		// strategy.job-total is the number of the matrix's jobs.
		if len(values) != 4 {
			t.Errorf("matrix %s: got %d jobs, want 4", dim, len(values))
		}
	}
	for name, want := range map[string]string{
		"VMLAB_SHARD_INDEX": "${{ strategy.job-index }}",
		"VMLAB_SHARD_TOTAL": "${{ strategy.job-total }}",
	} {
		if got := shard.Env[name]; got != want {
			t.Errorf("shard env %s: got %q, want %q", name, got, want)
		}
	}
	// "Re-run failed jobs" reruns some shards in a new attempt: their
	// run.json must name the same run as the shards that passed.
	if got := w.Env["VMLAB_RUN_ID"]; got != "${{ github.run_id }}" {
		t.Errorf("VMLAB_RUN_ID: got %q, want ${{ github.run_id }}: without it a re-run shard's run id has the attempt in it, and merge refuses it", got)
	}
	if shard.Strategy.FailFast == nil || *shard.Strategy.FailFast {
		t.Error("the matrix does not set fail-fast: false: one failed test would cancel the other shards")
	}

	var runs, uploads []string
	for _, s := range shard.Steps {
		if strings.Contains(s.Run, "vmlab run") {
			runs = append(runs, s.Run)
		}
		if strings.HasPrefix(s.Uses, "actions/upload-artifact@") && s.With["path"] == "out/" {
			uploads = append(uploads, s.If)
		}
	}
	// The run proper is the vmlab run that writes -out (the other lists).
	var runLine string
	for _, line := range strings.Split(strings.Join(runs, "\n"), "\n") {
		if strings.Contains(line, "vmlab run") && strings.Contains(line, " -out ") {
			runLine = line
		}
	}
	if !strings.Contains(runLine, "-shard auto") || flagValue(t, runLine, "out") != "out" {
		t.Errorf("the shard job does not run vmlab run -shard auto -out out: %q", runLine)
	}
	// Every shard must split by the same timings: the plan job's. Not
	// the default file, which is in each shard's own ~/.cache/vmlab, nor
	// one a shard restores itself, which a concurrent merge may renew.
	if tf := flagValue(t, runLine, "timings"); tf == "" || strings.Contains(tf, ".cache") {
		t.Errorf("the shards' -timings is %q: want the file the plan job handed every shard", tf)
	}
	for _, s := range shard.Steps {
		if strings.HasPrefix(s.Uses, "actions/cache") && strings.Contains(fmt.Sprint(s.With["path"]), "timings") {
			t.Errorf("shard step %q restores timings itself: shards could split by different ones", s.Name)
		}
	}
	if len(uploads) != 1 || uploads[0] != "always()" {
		t.Errorf("uploads of out/: got ifs %q, want one with always(): a failed shard's output is what merge shows", uploads)
	}

	merge, ok := w.Jobs["merge"]
	if !ok {
		t.Fatalf("no job merge; jobs: %v", mapKeys(w.Jobs))
	}
	needs, _ := merge.Needs.([]any)
	if !slices.Contains(needs, any("shard")) {
		t.Errorf("merge needs %v, want the shard job among them", merge.Needs)
	}
	if merge.If != "always()" {
		t.Errorf("merge if: got %q, want always(): a failed shard is when the report matters", merge.If)
	}
	var mergeScript string
	for _, s := range merge.Steps {
		mergeScript += s.Run + "\n"
	}
	if !strings.Contains(mergeScript, "vmlab report merge -out merged shard-*") {
		t.Errorf("the merge job does not run vmlab report merge -out merged shard-*:\n%s", mergeScript)
	}

	for name, job := range w.Jobs {
		var script string
		for _, s := range job.Steps {
			script += s.Run + "\n"
		}
		checkFlags(t, "github-actions.yml job "+name, script)
	}
}

// vmlabCommand finds vmlab's run and report merge commands in a shell
// script, and flagName the flags in what follows them (also inside
// ${VAR:+-flag ...}).
var (
	vmlabCommand = regexp.MustCompile(`\bvmlab (run|report merge)\b([^\n]*)`)
	flagName     = regexp.MustCompile(`(?:^|[\s+"'])-([a-z][a-z0-9-]*)`)
)

// checkFlags fails when a vmlab command in script passes a flag that the
// command does not define, as its own help lists them.
func checkFlags(t *testing.T, where, script string) {
	t.Helper()
	script = strings.ReplaceAll(script, "\\\n", " ")
	for _, m := range vmlabCommand.FindAllStringSubmatch(script, -1) {
		defined := commandFlags(t, strings.Fields(m[1])...)
		for _, f := range flagName.FindAllStringSubmatch(m[2], -1) {
			if !defined[f[1]] {
				t.Errorf("%s: vmlab %s has no flag -%s (its help lists %v)", where, m[1], f[1], mapKeys(defined))
			}
		}
	}
}

// commandFlags returns the flags `vmlab COMMAND... -h` lists, asked of the
// CLI in this process.
func commandFlags(t *testing.T, command ...string) map[string]bool {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := cli.Main(append(command, "-h"), &stdout, &stderr); code != 0 {
		t.Fatalf("vmlab %s -h: exit %d\n%s%s", strings.Join(command, " "), code, stdout.String(), stderr.String())
	}
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z][a-z0-9-]*)`).FindAllStringSubmatch(stdout.String(), -1) {
		flags[m[1]] = true
	}
	if len(flags) == 0 {
		t.Fatalf("vmlab %s -h lists no flags:\n%s", strings.Join(command, " "), stdout.String())
	}
	return flags
}

func mapKeys[V any](m map[string]V) []string {
	return slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	})
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// TestKubernetesWaitEndsOnFailure: the steps in the manifest's comment and
// in docs/scale-out.md wait for the shards' Job to complete or to fail, so
// that the merge runs when a shard failed; and they say which Kubernetes
// the manifest needs. Before, they waited for condition=complete only: 2 h
// when the Job failed, then no merge.
func TestKubernetesWaitEndsOnFailure(t *testing.T) {
	for _, file := range []string{"k8s-indexed-job.yaml", "../../docs/scale-out.md"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		text := string(data)
		waits := regexp.MustCompile(`kubectl wait --for=condition=(\w+) [^\n]*`).FindAllStringSubmatch(text, -1)
		conds := map[string]bool{}
		for _, w := range waits {
			conds[w[1]] = true
		}
		if !conds["complete"] || !conds["failed"] || !strings.Contains(text, "wait -n") {
			t.Errorf("%s: the kubectl waits %q do not end on complete or failed, whichever comes first", file, waits)
		}
		for _, v := range []string{"1.29", "1.30"} {
			if !strings.Contains(text, v) {
				t.Errorf("%s does not say which Kubernetes the manifest needs (%s)", file, v)
			}
		}
	}
}

// TestGitHubActionsCacheEntries: the shards' large cache (kernel, images)
// is keyed by the test files, not by the run, and saved only when its key
// was not restored; what is saved every run is the small results store
// only. Before, the whole ~/.cache/vmlab was saved per shard, run and
// attempt: 4 new entries of images per run in the repository's 10 GB.
// Snapshots are not saved at all (a host's, and large once archived).
func TestGitHubActionsCacheEntries(t *testing.T) {
	data, err := os.ReadFile("github-actions.yml")
	if err != nil {
		t.Fatal(err)
	}
	var w workflow
	if err := yaml.Unmarshal(data, &w); err != nil {
		t.Fatalf("github-actions.yml: %v", err)
	}
	var saves int
	for _, s := range w.Jobs["shard"].Steps {
		if !strings.HasPrefix(s.Uses, "actions/cache/save@") {
			continue
		}
		saves++
		path, key := fmt.Sprint(s.With["path"]), fmt.Sprint(s.With["key"])
		if strings.TrimSpace(path) == "~/.cache/vmlab/results" {
			continue // small: saved every run
		}
		if strings.Contains(key, "github.run_id") || strings.Contains(key, "run_attempt") {
			t.Errorf("step %q saves %q under a key per run (%s): want one per set of test files", s.Name, path, key)
		}
		if !strings.Contains(path, "!~/.cache/vmlab/results") {
			t.Errorf("step %q saves the results with the images: %q", s.Name, path)
		}
		if !strings.Contains(path, "!~/.cache/vmlab/snapshots") {
			t.Errorf("step %q saves the machine snapshots (sparse memory files, the host's) with the images: %q", s.Name, path)
		}
		if !strings.Contains(s.If, "cache-hit != 'true'") {
			t.Errorf("step %q saves the images whether or not their key was restored (if: %q)", s.Name, s.If)
		}
	}
	if saves != 2 {
		t.Errorf("the shard job has %d cache saves, want 2 (images, results)", saves)
	}
}
