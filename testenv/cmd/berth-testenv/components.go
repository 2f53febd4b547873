package main

// The control-plane components, each run in this process from the official
// Kubernetes command packages. We build each component's options the way its
// cobra command does, but skip the command itself: the commands install
// process-wide signal handlers (which panic when installed twice) and
// reconfigure logging, neither of which works with three components in one
// process.

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"
	"go.etcd.io/etcd/server/v3/embed"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/rest"
	cliflag "k8s.io/component-base/cli/flag"
	apiserverapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
	apiserveroptions "k8s.io/kubernetes/cmd/kube-apiserver/app/options"
	cmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	cmoptions "k8s.io/kubernetes/cmd/kube-controller-manager/app/options"
	schedulerapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
	scheduleroptions "k8s.io/kubernetes/cmd/kube-scheduler/app/options"
)

// serviceIP is the first address of the service range: the `kubernetes`
// Service's ClusterIP, which the serving certificate must name.
const (
	serviceCIDR = "10.96.0.0/16"
	serviceIP   = "10.96.0.1"
)

// startEtcd starts an embedded single-member etcd keeping its data in dir.
func startEtcd(dir string, clientPort, peerPort int, logFile string) (*embed.Etcd, error) {
	cfg := embed.NewConfig()
	cfg.Name = "berth-testenv"
	cfg.Dir = dir
	clientURL := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", clientPort)}
	peerURL := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", peerPort)}
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "error"
	cfg.LogOutputs = []string{logFile}
	// A test cluster holds little: keep etcd's memory small and its history
	// short so that idle memory stays low.
	cfg.QuotaBackendBytes = 2 << 30
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = "5m"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start etcd in %s: %w", dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("etcd failed: %w", err)
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("etcd did not become ready within 60s (data dir %s)", dir)
	}
}

// parseNamed builds one flag set out of a component's named flag sets and
// parses args into it.
func parseNamed(name string, nfs cliflag.NamedFlagSets, args []string) error {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	for _, f := range nfs.FlagSets {
		fs.AddFlagSet(f)
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%s flags: %w", name, err)
	}
	return nil
}

// apiserverArgs are the kube-apiserver flags for one instance.
func apiserverArgs(p *pki, dataDir string, port, etcdPort int, certFile, keyFile string) []string {
	return []string{
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", etcdPort),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", port),
		"--tls-cert-file=" + certFile,
		"--tls-private-key-file=" + keyFile,
		"--cert-dir=" + filepath.Join(dataDir, "pki"),
		"--client-ca-file=" + p.path("ca.crt"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + p.path("sa.pub"),
		"--service-account-signing-key-file=" + p.path("sa.key"),
		"--service-cluster-ip-range=" + serviceCIDR,
		"--authorization-mode=Node,RBAC",
		// The `kubernetes` Service would list 127.0.0.1 as its endpoint, which
		// Endpoints validation refuses; nothing in a simulated cluster dials it.
		"--endpoint-reconciler-type=none",
		"--allow-privileged=true",
		"--profiling=false",
		"--enable-priority-and-fairness=true",
	}
}

// parseAPIServer builds kube-apiserver's options from args.
func parseAPIServer(args []string) (*apiserveroptions.ServerRunOptions, error) {
	s := apiserveroptions.NewServerRunOptions()
	if err := parseNamed("kube-apiserver", s.Flags(), args); err != nil {
		return nil, err
	}
	return s, nil
}

// runAPIServer runs kube-apiserver until ctx is done.
func runAPIServer(ctx context.Context, s *apiserveroptions.ServerRunOptions) error {
	if err := s.GenericServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	rest.SetDefaultWarningHandler(rest.NoWarnings{})
	completed, err := s.Complete(ctx)
	if err != nil {
		return err
	}
	if errs := completed.Validate(); len(errs) != 0 {
		return utilerrors.NewAggregate(errs)
	}
	return apiserverapp.Run(ctx, completed)
}

// controllerManagerArgs are the kube-controller-manager flags.
//
// Node lifecycle is off because simulated nodes send no heartbeats; node IPAM
// and the cloud controllers have nothing to manage here.
func controllerManagerArgs(p *pki, kubeconfig string) []string {
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--controllers=*,-node-lifecycle-controller,-node-ipam-controller,-taint-eviction-controller,-device-taint-eviction-controller,-persistentvolume-attach-detach-controller,-persistentvolume-expander-controller,-selinux-warning-controller",
		"--root-ca-file=" + p.path("ca.crt"),
		"--service-account-private-key-file=" + p.path("sa.key"),
		"--cluster-signing-cert-file=" + p.path("ca.crt"),
		"--cluster-signing-key-file=" + p.path("ca.key"),
		"--service-cluster-ip-range=" + serviceCIDR,
		"--use-service-account-credentials=false",
		"--profiling=false",
		// Quick garbage collection and pod cleanup keep tests short.
		"--concurrent-gc-syncs=10",
		"--terminated-pod-gc-threshold=100",
	}
}

// parseControllerManager builds kube-controller-manager's options from args.
//
// It must run before the other components' flags are built: it changes a
// feature gate's default, which the shared feature-gate registry refuses once
// the gates have been added to any flag set.
func parseControllerManager(args []string) (*cmoptions.KubeControllerManagerOptions, error) {
	s, err := cmoptions.NewKubeControllerManagerOptions()
	if err != nil {
		return nil, err
	}
	nfs := s.Flags(cmapp.KnownControllers(), cmapp.ControllersDisabledByDefault(), cmapp.ControllerAliases())
	s.ParsedFlags = &nfs
	if err := parseNamed("kube-controller-manager", nfs, args); err != nil {
		return nil, err
	}
	return s, nil
}

// runControllerManager runs kube-controller-manager until ctx is done.
func runControllerManager(ctx context.Context, s *cmoptions.KubeControllerManagerOptions) error {
	if err := s.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	c, err := s.Config(ctx, cmapp.KnownControllers(), cmapp.ControllersDisabledByDefault(), cmapp.ControllerAliases())
	if err != nil {
		return err
	}
	return cmapp.Run(ctx, c.Complete())
}

// parseScheduler builds kube-scheduler's options.
func parseScheduler(kubeconfig string) (*scheduleroptions.Options, error) {
	opts := scheduleroptions.NewOptions()
	args := []string{
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--profiling=false",
	}
	if err := parseNamed("kube-scheduler", *opts.Flags, args); err != nil {
		return nil, err
	}
	return opts, nil
}

// runScheduler runs kube-scheduler until ctx is done.
func runScheduler(ctx context.Context, opts *scheduleroptions.Options) error {
	if err := opts.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	cc, sched, err := schedulerapp.Setup(ctx, opts)
	if err != nil {
		return err
	}
	return schedulerapp.Run(ctx, cc, sched)
}
