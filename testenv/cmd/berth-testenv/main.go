// Command berth-testenv runs a real local Kubernetes control plane in one
// process: embedded etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler from the official Kubernetes modules, plus a node and pod
// simulator standing in for kubelets. Berth's tests and `berth up` use it.
//
//	berth-testenv run --data-dir DIR [--port N] [--nodes 3] [--pod-ready-delay 1s] [--exit-with-stdin]
//	berth-testenv issue-user --data-dir DIR --name NAME [--groups G1,G2] --out KUBECONFIG
//	berth-testenv version
//
// `run` prints `kubeconfig: ABSOLUTE_PATH` on stdout once the API server is
// ready, the nodes are Ready and the `default` service account exists. Logs of
// the components go to DIR/logs/, this program's own messages to stderr.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/component-base/version"
	"k8s.io/klog/v2"
)

func main() {
	args := os.Args[1:]
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "run":
		err = cmdRun(args)
	case "issue-user":
		err = cmdIssueUser(args)
	case "version":
		fmt.Println(version.Get().GitVersion)
	default:
		fmt.Fprintf(os.Stderr, "berth-testenv: unknown command %q (run, issue-user, version)\n", cmd)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "berth-testenv: %v\n", err)
		os.Exit(1)
	}
}

// state is what a data directory remembers between runs, so that a restart
// keeps the same address and every kubeconfig stays valid.
type state struct {
	APIServerPort  int `json:"apiserverPort"`
	EtcdClientPort int `json:"etcdClientPort"`
	EtcdPeerPort   int `json:"etcdPeerPort"`
}

func cmdRun(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "", "directory for etcd data, PKI and kubeconfigs (default: a new temporary directory, removed on exit)")
	port := fs.Int("port", 0, "API server port (default: the port of the last run on this data dir if free, else any free port)")
	nodes := fs.Int("nodes", 3, "number of simulated nodes")
	podDelay := fs.Duration("pod-ready-delay", time.Second, "how long simulated containers take to start")
	exitWithStdin := fs.Bool("exit-with-stdin", false, "stop when standard input closes (so the control plane dies with its parent)")
	verbosity := fs.Int("v", 0, "log verbosity of the Kubernetes components")
	if err := fs.Parse(args); err != nil {
		return err
	}
	started := time.Now()

	dir := *dataDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "berth-testenv-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o700); err != nil {
		return err
	}
	unlock, err := lockDataDir(dir)
	if err != nil {
		return err
	}
	defer unlock()

	if err := setupLogging(filepath.Join(dir, "logs", "control-plane.log"), *verbosity); err != nil {
		return err
	}
	defer klog.Flush()

	st := loadState(dir)
	if *port != 0 {
		st.APIServerPort = *port
	} else if st.APIServerPort, err = reusePort(st.APIServerPort); err != nil {
		return err
	}
	if st.EtcdClientPort, err = reusePort(st.EtcdClientPort, st.APIServerPort); err != nil {
		return err
	}
	if st.EtcdPeerPort, err = reusePort(st.EtcdPeerPort, st.APIServerPort, st.EtcdClientPort); err != nil {
		return err
	}
	if err := saveState(dir, st); err != nil {
		return err
	}

	p, err := loadOrCreatePKI(filepath.Join(dir, "pki"))
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	certFile, keyFile, err := p.servingCert()
	if err != nil {
		return fmt.Errorf("serving certificate: %w", err)
	}
	server := fmt.Sprintf("https://127.0.0.1:%d", st.APIServerPort)
	kubeconfig := filepath.Join(dir, "kubeconfig")
	adminCert, adminKey, err := p.clientCert("admin", "admin", []string{"system:masters"})
	if err != nil {
		return err
	}
	if err := writeKubeconfig(kubeconfig, server, p.caPEM, adminCert, adminKey, "admin"); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := make(chan string, 4)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() { s := <-sigs; stop <- "signal " + s.String() }()
	if *exitWithStdin {
		go func() {
			_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
			stop <- "standard input closed"
		}()
	}

	etcd, err := startEtcd(filepath.Join(dir, "etcd"), st.EtcdClientPort, st.EtcdPeerPort, filepath.Join(dir, "logs", "etcd.log"))
	if err != nil {
		return err
	}
	defer etcd.Close()

	// Order matters: see parseControllerManager.
	cmOpts, err := parseControllerManager(controllerManagerArgs(p, kubeconfig))
	if err != nil {
		return err
	}
	schedOpts, err := parseScheduler(kubeconfig)
	if err != nil {
		return err
	}
	apiOpts, err := parseAPIServer(apiserverArgs(p, dir, st.APIServerPort, st.EtcdClientPort, certFile, keyFile))
	if err != nil {
		return err
	}

	failed := make(chan error, 4)
	apiDone := make(chan struct{})
	go func() {
		defer close(apiDone)
		if err := runAPIServer(ctx, apiOpts); err != nil {
			failed <- fmt.Errorf("kube-apiserver: %w", err)
		}
	}()

	restCfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	restCfg.QPS, restCfg.Burst = 200, 400
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return err
	}
	if err := waitFor(ctx, failed, stop, 120*time.Second, "API server /readyz", func() bool {
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && string(body) == "ok"
	}); err != nil {
		return err
	}
	klog.InfoS("api server ready", "server", server, "elapsed", time.Since(started))

	go func() {
		if err := runControllerManager(ctx, cmOpts); err != nil && ctx.Err() == nil {
			failed <- fmt.Errorf("kube-controller-manager: %w", err)
		}
	}()
	go func() {
		if err := runScheduler(ctx, schedOpts); err != nil && ctx.Err() == nil {
			failed <- fmt.Errorf("kube-scheduler: %w", err)
		}
	}()
	sim := newSimulator(client, *nodes, *podDelay)
	go func() {
		if err := sim.run(ctx); err != nil && ctx.Err() == nil {
			failed <- fmt.Errorf("node simulator: %w", err)
		}
	}()

	if err := waitFor(ctx, failed, stop, 120*time.Second, "nodes Ready and the default service account", func() bool {
		list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil || len(list.Items) < *nodes {
			return false
		}
		for _, n := range list.Items {
			if !nodeReady(&n) {
				return false
			}
		}
		_, err = client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	}); err != nil {
		return err
	}

	fmt.Printf("kubeconfig: %s\n", kubeconfig)
	fmt.Fprintf(os.Stderr, "berth-testenv: ready in %.1fs at %s (kubeconfig %s, logs in %s)\n",
		time.Since(started).Seconds(), server, kubeconfig, filepath.Join(dir, "logs"))

	var runErr error
	select {
	case why := <-stop:
		fmt.Fprintf(os.Stderr, "berth-testenv: stopping (%s)\n", why)
	case runErr = <-failed:
	}
	cancel()
	select {
	case <-apiDone:
	case <-time.After(15 * time.Second):
		klog.InfoS("api server did not stop within 15s; stopping etcd anyway")
	}
	return runErr
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue && len(n.Spec.Taints) == 0
		}
	}
	return false
}

// waitFor polls cond until it holds, a component fails, a stop is requested
// or the timeout passes.
func waitFor(ctx context.Context, failed <-chan error, stop <-chan string, timeout time.Duration, what string, cond func() bool) error {
	deadline := time.After(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if cond() {
			return nil
		}
		select {
		case err := <-failed:
			return err
		case why := <-stop:
			return fmt.Errorf("stopped (%s) while waiting for %s", why, what)
		case <-deadline:
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func setupLogging(path string, v int) error {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	for k, val := range map[string]string{
		"logtostderr": "false", "alsologtostderr": "false", "log_file": path,
		"one_output": "true", "v": strconv.Itoa(v), "stderrthreshold": "FATAL",
	} {
		if err := fs.Set(k, val); err != nil {
			return err
		}
	}
	return nil
}

func loadState(dir string) state {
	var st state
	if data, err := os.ReadFile(filepath.Join(dir, "state.json")); err == nil {
		_ = json.Unmarshal(data, &st)
	}
	return st
}

func saveState(dir string, st state) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, "state.json"), data, 0o600)
}

// reusePort returns port if it is free on loopback and not one of taken,
// otherwise a free port that is not one of taken.
func reusePort(port int, taken ...int) (int, error) {
	used := func(p int) bool {
		for _, t := range taken {
			if p == t {
				return true
			}
		}
		return false
	}
	if port > 0 && !used(port) {
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			l.Close()
			return port, nil
		}
	}
	// A port the kernel just gave out and took back can come again at
	// once: those already chosen for this control plane are skipped.
	for i := 0; i < 100; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !used(p) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("no free port distinct from %v", taken)
}

// lockDataDir takes an exclusive lock on dir, so two control planes never
// share one etcd data directory.
func lockDataDir(dir string) (func(), error) {
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data dir %s is in use by another control plane; stop it or pick another --data-dir", dir)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

func cmdIssueUser(args []string) error {
	fs := flag.NewFlagSet("issue-user", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "", "data directory of a control plane started with `run` (required)")
	name := fs.String("name", "", "user name, the certificate's common name (required)")
	groups := fs.String("groups", "", "comma-separated groups, the certificate's organizations")
	out := fs.String("out", "", "where to write the kubeconfig (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dataDir == "" || *name == "" || *out == "" {
		return errors.New("issue-user needs --data-dir, --name and --out")
	}
	p, err := loadOrCreatePKI(filepath.Join(*dataDir, "pki"))
	if err != nil {
		return err
	}
	st := loadState(*dataDir)
	if st.APIServerPort == 0 {
		return fmt.Errorf("%s has no control plane state; start one with `berth-testenv run --data-dir %s` first", *dataDir, *dataDir)
	}
	var gs []string
	for _, g := range strings.Split(*groups, ",") {
		if g = strings.TrimSpace(g); g != "" {
			gs = append(gs, g)
		}
	}
	file := "user-" + strings.NewReplacer("/", "_", ":", "_").Replace(*name)
	// Issue afresh each time: the groups may differ from an earlier call.
	_ = os.Remove(p.path(file + ".crt"))
	cert, key, err := p.clientCert(file, *name, gs)
	if err != nil {
		return err
	}
	return writeKubeconfig(*out, fmt.Sprintf("https://127.0.0.1:%d", st.APIServerPort), p.caPEM, cert, key, *name)
}
