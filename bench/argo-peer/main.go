// Command argo-peer runs Argo CD's own health assessment and diff over the
// objects of Berth's engine benchmark (crates/berth-engine/benches/engine.rs,
// dumped with BERTH_BENCH_DUMP), so that the two engines can be compared on
// exactly the same input, on one core.
//
//	GOMAXPROCS=1 argo-peer [-rounds N] [-lua=false] [-cpuprofile FILE] OBJECTS.jsonl
//
// Each line of OBJECTS.jsonl is {"desired": {...}, "live": {...}}.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/argoproj/gitops-engine/pkg/health"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/argoproj/argo-cd/v3/common"
	"github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	argodiff "github.com/argoproj/argo-cd/v3/util/argo/diff"
	"github.com/argoproj/argo-cd/v3/util/argo/normalizers"
	"github.com/argoproj/argo-cd/v3/util/lua"
)

func main() {
	rounds := flag.Int("rounds", 10, "timed rounds per measurement")
	withLua := flag.Bool("lua", true, "health through Argo CD's Lua resource customizations too (as its controller does)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the measured rounds to this file, to see where Argo CD spends the time")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: argo-peer [-rounds N] [-lua=false] [-cpuprofile FILE] OBJECTS.jsonl")
		os.Exit(2)
	}
	// One core, like the Rust benchmark; GOMAXPROCS=1 in the environment
	// also keeps the runtime from starting with more before this line.
	runtime.GOMAXPROCS(1)

	desired, live, err := load(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	n := len(live)

	// Argo CD's defaults with an empty argocd-cm: resource.compareoptions
	// is ignoreAggregatedRoles: false and ignoreResourceStatusField: all,
	// which the settings turn into an override ignoring /status on */*
	// (util/settings: GetDefaultDiffOptions, GetResourceOverrides).
	overrides := map[string]v1alpha1.ResourceOverride{
		"*/*": {IgnoreDifferences: v1alpha1.OverrideIgnoreDiff{JSONPointers: []string{"/status"}}},
	}
	// The same builder calls as controller/state.go CompareAppState, for an
	// application without ignoreDifferences, with annotation tracking (the
	// v3 default), no diff cache (the cache would skip the work being
	// measured), client-side apply and so no server-side or structured-merge
	// diff: the three-way diff against kubectl's last-applied annotation,
	// or a two-way diff where there is none. The zero normalizer options are
	// the controller's flag defaults.
	diffConfig, err := argodiff.NewDiffConfigBuilder().
		WithDiffSettings(nil, overrides, false, normalizers.IgnoreNormalizerOpts{}).
		WithTracking(common.LabelKeyAppInstance, string(v1alpha1.TrackingMethodAnnotation)).
		WithNoCache().
		WithManager(common.ArgoCDSSAManager).
		WithServerSideDiff(false).
		Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}

	// The controller passes the Lua overrides to every health call
	// (controller/health.go); with none configured, only the scripts built
	// into Argo CD (resource_customizations) apply, which is where
	// cert-manager's Certificate gets its health. Without them, health is
	// gitops-engine's built-in Go checks alone.
	var luaOverride health.HealthOverride
	if *withLua {
		luaOverride = lua.ResourceHealthOverrides(overrides)
	}
	healthWith := func(override health.HealthOverride) func() int {
		return func() (withStatus int) {
			for _, l := range live {
				st, err := health.GetResourceHealth(l, override)
				if err != nil {
					fmt.Fprintln(os.Stderr, "health:", err)
					os.Exit(1)
				}
				if st != nil {
					withStatus++
				}
			}
			return withStatus
		}
	}
	healthy := healthWith(luaOverride)
	// One StateDiffs call over all objects, as the controller makes one per
	// application: normalization set up once, each pair copied, tracking
	// normalized, then diffed.
	diffed := func() (outOfSync int) {
		res, err := argodiff.StateDiffs(live, desired, diffConfig)
		if err != nil {
			fmt.Fprintln(os.Stderr, "diff:", err)
			os.Exit(1)
		}
		for _, d := range res.Diffs {
			if d.Modified {
				outOfSync++
			}
		}
		return outOfSync
	}
	// The controller's order: CompareAppState diffs, then sets health.
	both := func() int { diffed(); return healthy() }

	fmt.Printf("objects: %d, rounds: %d, GOMAXPROCS: %d, %s\n", n, *rounds, runtime.GOMAXPROCS(0), runtime.Version())
	for _, m := range deps() {
		fmt.Println(m)
	}
	fmt.Printf("out of sync: %d, with a health status: %d (Lua health: %v; %d with built-in checks only)\n\n",
		diffed(), healthy(), *withLua, healthWith(nil)())

	type step struct {
		name string
		run  func() int
	}
	steps := []step{{"health", healthy}, {"diff", diffed}, {"health+diff", both}}
	if *withLua {
		// The same without Lua, to show what the scripts cost.
		steps = append(steps, step{"health, built-in checks only", healthWith(nil)})
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Println("| step | median per round | fastest–slowest | objects/s | bytes/object | allocations/object |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, step := range steps {
		// Allocation of one round, measured outside the timed rounds
		// (ReadMemStats stops the world); it also warms up the caches.
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		step.run()
		runtime.ReadMemStats(&after)

		times := make([]time.Duration, *rounds)
		for i := range times {
			// Each round starts from a collected heap, so a collection
			// owed by an earlier round is not charged to this one; those
			// its own allocations cause are.
			runtime.GC()
			t := time.Now()
			step.run()
			times[i] = time.Since(t)
		}
		slices.Sort(times)
		med := times[len(times)/2]
		if len(times)%2 == 0 {
			med = (times[len(times)/2-1] + times[len(times)/2]) / 2
		}
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		fmt.Printf("| %s | %.2f ms | %.2f–%.2f ms | %.0f | %d B | %.1f |\n", step.name,
			ms(med), ms(times[0]), ms(times[len(times)-1]), float64(n)/med.Seconds(),
			(after.TotalAlloc-before.TotalAlloc)/uint64(n), float64(after.Mallocs-before.Mallocs)/float64(n))
	}
}

// load reads the pairs through unstructured's own JSON decoding, so that
// integers are int64 as in objects from the API server or Argo CD's cache.
func load(path string) (desired, live []*unstructured.Unstructured, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for line := 1; sc.Scan(); line++ {
		var pair struct{ Desired, Live json.RawMessage }
		if err := json.Unmarshal(sc.Bytes(), &pair); err != nil {
			return nil, nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		d, l := &unstructured.Unstructured{}, &unstructured.Unstructured{}
		if err := d.UnmarshalJSON(pair.Desired); err != nil {
			return nil, nil, fmt.Errorf("%s:%d: desired: %w", path, line, err)
		}
		if err := l.UnmarshalJSON(pair.Live); err != nil {
			return nil, nil, fmt.Errorf("%s:%d: live: %w", path, line, err)
		}
		desired, live = append(desired, d), append(live, l)
	}
	return desired, live, sc.Err()
}

// deps names the engine versions actually linked in.
func deps() []string {
	var out []string
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			switch m.Path {
			case "github.com/argoproj/gitops-engine", "github.com/argoproj/argo-cd/v3", "k8s.io/apimachinery":
				v := m.Version
				if m.Replace != nil {
					v = m.Replace.Version
				}
				out = append(out, m.Path+" "+v)
			}
		}
	}
	return out
}
